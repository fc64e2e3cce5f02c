"""Paper-size presets, checked without the hardware: the whole train step is
traced at 32x256x256, batch 8 (shapes only, no compute), and, in a slow test,
compiled ahead of time to read its memory footprint.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision import projects as tasks
from cvision.core import optimizer as optimizer_lib
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from experiments.configs import codec as codec_config

PAPER_PRESETS = ('cr30', 'cr236', 'cr236_time', 'cr256', 'cr384', 'cr475',
                 'cr768')
BATCH = {'video': jax.ShapeDtypeStruct((8, 32, 256, 256, 3), jnp.uint8)}


def _abstract_step(preset):
  config = codec_config.get_config(preset)
  task = tasks.build_task(config)
  tx = optimizer_lib.make_optimizer(config.optimizer, config.train.steps)
  state = sharding.unbox(
      train_step_lib.abstract_train_state(task, tx, BATCH, config.seed))
  step = functools.partial(train_step_lib.train_step, task=task, tx=tx,
                           grad_accum_steps=1, dtype=jnp.bfloat16)
  return config, state, step


@pytest.mark.parametrize('preset', PAPER_PRESETS)
def test_paper_preset_train_step_traces_at_paper_size(preset):
  config, state, step = _abstract_step(preset)
  new_state, metrics = jax.eval_shape(step, state, BATCH)
  assert jax.tree.map(lambda x: (x.shape, x.dtype), new_state.params) == \
      jax.tree.map(lambda x: (x.shape, x.dtype), state.params)
  assert metrics['loss'].shape == ()
  for n in range(config.model.num_codebooks):
    assert metrics[f'usage_{n}'].shape == ()


@pytest.mark.slow
def test_cr236_train_step_fits_an_h100():
  _, state, step = _abstract_step('cr236')
  compiled = jax.jit(step).lower(state, BATCH).compile()
  memory = compiled.memory_analysis()
  total = (memory.argument_size_in_bytes + memory.output_size_in_bytes
           + memory.temp_size_in_bytes)
  print(f'cr236 train step, batch 8 x 32x256x256: {total / 2**30:.1f} GiB')
  assert total < 78 * 2**30
  assert np.isfinite(total)
