r"""S3D on RGB against S3D on a real codec's codes: train-step clips/s, memory.

  nice -n 10 python benchmarks/s3d_speed.py --size=paper   # 32x256x256, b1
  python benchmarks/s3d_speed.py                           # 16x64x64, b2

Rows, one network each (paper App. E.1: only the stem differs):
  rgb         pixels `[B, T, H, W, 3]`, S3D's stem;
  codes       the code grid of `--codec_preset` (`experiments/configs/
              codec.py`; paper size: `cr256`, CR 256, 32x16x16 x 2 codebooks
              of 4096 x 128-d; cpu size: `cpu30`), grid from
              `compression_rate.code_grid_shape` of the preset's model and
              codebooks the shape its init gives; S3D's separable stem with
              the strides the codec already applied dropped
              (`s3d.stem_for_input`), as in the paper;
  codes 3x3x3 the same with one full 3x3x3 first conv (`s3d.py:codes`).
The code rows include the on-device codebook lookup. Train step: forward,
backward, Adam, as `s3d.py` trains. Each round times every row once, in
turn (`benchmarks/rounds.py`); the table prints the median over rounds with
the spread, and the ratio of medians RGB over codes. Memory is XLA's
footprint of the compiled train step (arguments + outputs + temporaries).
Random weights and inputs: speed does not depend on training.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import rounds as rounds_lib
from cvision.models import code_embedding
from cvision.projects.codec import compression_rate
from cvision.projects.codec import task as codec_task
from cvision.projects.s3d import task as s3d_task
from experiments.configs import codec as codec_config
from experiments.configs import s3d as s3d_config

_SIZE = flags.DEFINE_enum('size', 'cpu', ['cpu', 'paper'], 'Input size.')
_BATCH = flags.DEFINE_integer('batch', 0, 'Batch (0: the size\'s default).')
_ROUNDS = flags.DEFINE_integer('rounds', 5, 'Timed rounds.')
_DTYPE = flags.DEFINE_string('compute_dtype', 'float32', 'S3D compute dtype '
                             '(`s3d.py:paper` trains in bfloat16 on '
                             'accelerators; no faster on a CPU).')
_PRESET = flags.DEFINE_string('codec_preset', '', 'Codec preset whose code '
                              'grid the code rows read (default: the '
                              'size\'s).')

SIZES = {
    # name: ((T, H, W), batch, s3d.py preset, codec preset)
    'cpu': ((16, 64, 64), 2, '', 'cpu30'),
    'paper': ((32, 256, 256), 1, 'paper', 'cr256'),
}


def codec_codes(preset: str, thw):
  """(grid, codebook shape [N, K, D], CR) of a codec preset at `thw`."""
  model_config = codec_config.get_config(preset).model
  grid = compression_rate.code_grid_shape(thw, model_config)
  model = codec_task.build_model(model_config)
  # Shapes only: the codebook's shape is what the codec's init makes.
  variables = jax.eval_shape(lambda: model.init(
      {'params': jax.random.PRNGKey(0), 'vq': jax.random.PRNGKey(1)},
      jnp.zeros((1, *thw, 3), jnp.float32)))
  books = codec_task.get_codebook(variables).shape
  rate = compression_rate.compression_rate(
      thw, grid, model_config.num_codebooks, model_config.codebook_size)
  return grid, books, rate


def make_step(thw, batch, s3d_preset, books=None, grid=None,
              full_conv1=False):
  """(train step with no arguments, its compiled program, input shape)."""
  rng = np.random.default_rng(0)
  config = s3d_config.get_config(s3d_preset or None)
  config.model.num_classes = 400  # Kinetics-400's head.
  config.train.compute_dtype = _DTYPE.value
  if books is None:
    model, codebooks = s3d_task.build_model(config), None
    inputs = jnp.asarray(rng.random((batch, *thw, 3), np.float32))
  else:
    config.input = 'codes'
    config.model.stem_conv1_separable = not full_conv1
    config.model.stem_conv1_kernel = (3, 3, 3) if full_conv1 else (7, 7, 7)
    model = s3d_task.build_model(config, thw[1] // grid[1])
    codebooks = jnp.asarray(rng.normal(size=books).astype(np.float32))
    inputs = jnp.asarray(rng.integers(
        0, books[1], (batch, *grid, books[0])).astype(np.uint16))
  labels = jnp.asarray(rng.integers(0, 400, (batch,)))

  def features(x):
    return x if codebooks is None else code_embedding.embed_codes(codebooks,
                                                                  x)

  variables = jax.jit(lambda x: model.init(
      jax.random.key(0, impl='rbg'), features(x), train=False))(inputs)
  tx = optax.adam(1e-3)
  opt_state = tx.init(variables['params'])

  @jax.jit
  def train_step(variables, opt_state, x, y):
    def loss_fn(params):
      logits, updates = model.apply(
          {**variables, 'params': params}, features(x), train=True,
          mutable=['batch_stats'], rngs={'dropout': jax.random.PRNGKey(0)})
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, updates
    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        variables['params'])
    step, opt_state = tx.update(grads, opt_state, variables['params'])
    params = optax.apply_updates(variables['params'], step)
    return {**variables, **updates, 'params': params}, opt_state, loss

  args = (variables, opt_state, inputs, labels)
  program = rounds_lib.compiled(train_step, *args)
  return (lambda: program(*args)), program, tuple(inputs.shape)


def main(argv):
  del argv
  thw, batch, s3d_preset, preset = SIZES[_SIZE.value]
  batch = _BATCH.value or batch
  preset = _PRESET.value or preset
  grid, books, rate = codec_codes(preset, thw)
  print(f'device: {jax.devices()[0].device_kind} ({jax.default_backend()}); '
        f'size {_SIZE.value}: {thw}, batch {batch}, s3d.py:{s3d_preset or "default"}'
        f', {_DTYPE.value}; codes of '
        f'codec.py:{preset}: grid {grid} x {books[0]} codebooks {books}, '
        f'CR {rate:.1f}; {_ROUNDS.value} interleaved rounds; load '
        f'{rounds_lib.load()}')
  rows = {'rgb': make_step(thw, batch, s3d_preset),
          'codes': make_step(thw, batch, s3d_preset, books, grid),
          'codes 3x3x3': make_step(thw, batch, s3d_preset, books, grid,
                                   full_conv1=True)}
  timings = rounds_lib.interleaved(
      {name: call for name, (call, _, _) in rows.items()}, _ROUNDS.value)
  rgb = timings['rgb'].median
  print('| input | input shape | train step s (median) | spread s | clips/s '
        '| step GFLOP | step MiB | RGB / input |')
  print('|---|---|---:|---:|---:|---:|---:|---:|')
  for name, (_, program, shape) in rows.items():
    t = timings[name]
    print(f'| {name} | {shape} | {t.median:.3f} | {t.spread} | '
          f'{batch / t.median:.2f} | {rounds_lib.gflop(program):.1f} | '
          f'{rounds_lib.memory_mib(program):.0f} | {rgb / t.median:.2f}x |')
  print(f'goal: codes >= 3x RGB clips/s; load at the end {rounds_lib.load()}')


if __name__ == '__main__':
  app.run(main)
