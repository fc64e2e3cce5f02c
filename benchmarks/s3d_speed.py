r"""S3D on RGB against S3D on codes: forward and train-step time, memory.

  python benchmarks/s3d_speed.py                    # CPU size
  python benchmarks/s3d_speed.py --size=paper       # 32x256x256, batch 8

Inputs, one network each (paper App. E.1: only the stem's strides differ):
  rgb      pixels `[B, T, H, W, 3]`;
  codes/4  a 1/4 code grid, 1 codebook of 8192 x 256-d (CR ~30 at 256x256);
  codes/4+proj  the same with a 1x1x1 projection to 32 channels before the
           stem (`model.code_projection_channels`; not in the paper);
  codes/16 a 1/16 code grid, 2 codebooks of 4096 x 128-d (CR 256 at 256x256);
  codes/4 cpu30  a 1/4 code grid, 2 codebooks of 64 x 16-d (`codec.py:cpu30`,
           CR 32 at 64x64), with S3D's separable first conv;
  codes/4 cpu30 full  the same with one full 3x3x3 first conv, as the
           codes preset has it (`model.stem_conv1_separable=False`);
  codes/4 cpu30 corr  the same network reading only the cells' cosine
           similarities with their 3x3 neighbours one step later
           (`s3d.py:codes,motion`), computed on device from the codes.
The code inputs include the on-device codebook lookup. Ratios are RGB time
over codes time, measured in this run. Random weights and inputs: speed does
not depend on training. Memory is XLA's compiled footprint (arguments +
outputs + temporaries).
"""
import functools
import os
import sys
import time
from typing import NamedTuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cvision.models import code_embedding
from cvision.models import s3d

_SIZE = flags.DEFINE_enum('size', 'cpu', ['cpu', 'paper'], 'Input size.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls per figure.')

SIZES = {
    # name: ((T, H, W), batch, width multiplier)
    'cpu': ((16, 64, 64), 4, 0.25),
    'paper': ((32, 256, 256), 8, 1.0),
}


class CodeInput(NamedTuple):
  """A code input: its grid, codebooks and how the stem reads it."""
  downsampling: int  # Spatial, pixels per code cell along a side.
  codebooks: int  # N.
  entries: int  # K.
  dim: int  # D.
  projection: int = 0  # 1x1x1 projection channels before the stem, or 0.
  # One full first conv of this kernel, or None for S3D's separable 7x7x7.
  full_kernel: tuple[int, int, int] | None = None
  # > 0: the cells' correlations with neighbours this far away one step
  # later are read instead of the embeddings.
  correlation: int = 0


# name: CodeInput, or None for RGB.
INPUTS = {'rgb': None, 'codes/4': CodeInput(4, 1, 8192, 256),
          'codes/4+proj': CodeInput(4, 1, 8192, 256, projection=32),
          'codes/16': CodeInput(16, 2, 4096, 128),
          'codes/4 cpu30': CodeInput(4, 2, 64, 16),
          'codes/4 cpu30 full': CodeInput(4, 2, 64, 16,
                                          full_kernel=(3, 3, 3)),
          'codes/4 cpu30 corr': CodeInput(4, 2, 64, 16, full_kernel=(3, 3, 3),
                                          correlation=1)}


def _time(fn, *args, repeats):
  jax.block_until_ready(fn(*args))  # Compile and warm up.
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def _footprint_mib(jitted, *args) -> float:
  analysis = jitted.lower(*args).compile().memory_analysis()
  if analysis is None:
    return float('nan')
  return (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
          + analysis.temp_size_in_bytes) / 2**20


def measure(name, thw, batch, width, repeats):
  rng = np.random.default_rng(0)
  t, h, w = thw
  spec = INPUTS[name]
  if spec is None:
    stem, codebooks = s3d.StemConfig(), None
    inputs = jnp.asarray(rng.random((batch, t, h, w, 3), np.float32))
  else:
    grid = (t, h // spec.downsampling, w // spec.downsampling)
    stem = s3d.stem_for_input(grid, thw,
                              conv1_separable=spec.full_kernel is None,
                              conv1_kernel=spec.full_kernel or (7, 7, 7))
    codebooks = jnp.asarray(rng.normal(
        size=(spec.codebooks, spec.entries, spec.dim)).astype(np.float32))
    inputs = jnp.asarray(rng.integers(
        0, spec.entries, (batch, *grid, spec.codebooks)).astype(np.uint16))
  projection, correlation = (spec.projection, spec.correlation) if spec else (
      0, 0)
  model = s3d.S3D(num_classes=400, width_multiplier=width, stem=stem,
                  input_projection=projection, input_correlation=correlation,
                  input_correlation_only=correlation > 0)
  labels = jnp.asarray(rng.integers(0, 400, (batch,)))

  def features(x):
    return x if codebooks is None else code_embedding.embed_codes(codebooks,
                                                                  x)

  variables = jax.jit(lambda x: model.init(
      jax.random.key(0, impl='rbg'), features(x), train=False))(inputs)
  tx = optax.adam(1e-3)
  opt_state = tx.init(variables['params'])

  @jax.jit
  def forward(variables, x):
    return model.apply(variables, features(x), train=False)

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

  forward_s = _time(forward, variables, inputs, repeats=repeats)
  step_fn = functools.partial(train_step, variables, opt_state)
  step_s = _time(step_fn, inputs, labels, repeats=repeats)
  return {
      'input': name, 'shape': tuple(inputs.shape),
      'forward_s': forward_s, 'step_s': step_s,
      'clips_per_s': batch / step_s,
      'forward_mib': _footprint_mib(forward, variables, inputs),
      'step_mib': _footprint_mib(train_step, variables, opt_state, inputs,
                                 labels),
  }


def main(argv):
  del argv
  thw, batch, width = SIZES[_SIZE.value]
  print(f'device: {jax.devices()[0].device_kind} ({jax.default_backend()}); '
        f'size {_SIZE.value}: {thw}, batch {batch}, width x{width}')
  rows = [measure(name, thw, batch, width, _REPEATS.value) for name in INPUTS]
  rgb = rows[0]
  print('input | input shape | forward s | train step s | clips/s | '
        'forward MiB | step MiB | RGB/input forward | RGB/input step')
  for r in rows:
    print(f"{r['input']} | {r['shape']} | {r['forward_s']:.3f} | "
          f"{r['step_s']:.3f} | {r['clips_per_s']:.1f} | "
          f"{r['forward_mib']:.0f} | {r['step_mib']:.0f} | "
          f"{rgb['forward_s'] / r['forward_s']:.2f}x | "
          f"{rgb['step_s'] / r['step_s']:.2f}x")


if __name__ == '__main__':
  app.run(main)
