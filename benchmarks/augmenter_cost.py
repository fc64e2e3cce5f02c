r"""Augmenting codes against decoding them: time per batch, and the ratio.

  python benchmarks/augmenter_cost.py                    # CPU size
  python benchmarks/augmenter_cost.py --sizes=cpu,paper  # + the paper's

The point of the augmentation network (paper App. B.6, Table 8: 0.078 s to
augment against 3.076 s to decode, batch 8 at CR 256) is that augmenting in
code space costs far less than decoding to pixels. Rows, per size:
  encode      pixels -> codes (done once, when the dataset is written);
  decode      codes -> pixels (what augmenting in pixels would need first);
  augment     codes -> codebook lookup -> a(z, p) (the learned augmentation);
  nn crop     nearest-neighbour crop of the code grid (the baseline).
`decode / augment` is the ratio the issue asks for: how many augmentations
one decode costs, in measured time and in XLA's count of floating-point
operations (which does not depend on how busy the machine is; `--notime`
gives only the counts, e.g. for the paper size on a CPU).

Sizes: `cpu` is the `codec.py:cpu` codec (16x64x64 clips, 16x8x8 codes, 32
latent channels) with `augmenter.py`'s network (4-frame windows), batch 8;
`cpu30` the same with `codec.py:cpu30` (16x16x16 codes: 4x the tokens);
`paper` is `codec.py:cr256` (32x256x256 clips, 32x16x16 codes, 256 latent
channels) with a 32-frame position table, batch 8, as in Table 8 (run it on
a GPU/TPU). Random weights: speed does not depend on training.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from cvision.projects.augmenter import nn_crop
from cvision.projects.augmenter import params as params_lib
from cvision.models import code_embedding
from cvision.projects.augmenter import task as augmenter_task
from cvision.projects.codec import task as codec_task
from experiments.configs import augmenter as augmenter_config
from experiments.configs import codec as codec_config

_SIZES = flags.DEFINE_list('sizes', ['cpu'], 'cpu and/or paper.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls per figure.')
_TIME = flags.DEFINE_bool('time', True, 'Time the calls (else only count '
                          'their operations).')

SIZES = {
    # name: (codec preset, (T, H, W), batch, augmenter max_frames)
    'cpu': ('cpu', (16, 64, 64), 8, 4),
    # The CR-32 codec of the S3D and downstream-augmentation tables.
    'cpu30': ('cpu30', (16, 64, 64), 8, 4),
    'paper': ('cr256', (32, 256, 256), 8, 32),
}


def _time(fn, *args, repeats):
  jax.block_until_ready(fn(*args))  # Compile and warm up.
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def _gflop(fn, *args) -> float:
  cost = fn.lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per program.
    cost = cost[0]
  return float((cost or {}).get('flops', float('nan'))) / 1e9


def measure(size: str, repeats: int, timed: bool) -> dict:
  """Times (when `timed`) and counts the operations of each call.

  Untimed, nothing runs: the inputs and weights are shapes only
  (`jax.eval_shape`), enough to compile and count.
  """
  preset, (t, h, w), batch, max_frames = SIZES[size]
  make = (lambda fn, *a: fn(*a)) if timed else jax.eval_shape
  codec = codec_task.build_model(codec_config.get_config(preset).model)
  video = np.random.default_rng(0).integers(0, 256, (batch, t, h, w, 3),
                                            dtype=np.uint8)
  video = jnp.asarray(video) if timed else jax.ShapeDtypeStruct(
      video.shape, video.dtype)
  codec_vars = make(jax.jit(lambda v: codec.init(
      {'params': jax.random.PRNGKey(0), 'vq': jax.random.PRNGKey(1)},
      v.astype(jnp.float32) / 255.0)), video)
  codebook = codec_vars['vq_ema']['quantizer']['codebook']
  encode = jax.jit(lambda var, v: codec.apply(
      var, v.astype(jnp.float32) / 255.0, method=codec.encode))
  decode = jax.jit(lambda var, c: codec.apply(var, c, method=codec.decode))
  codes = make(encode, codec_vars, video)

  model_config = augmenter_config.get_config('crop').model
  model_config.max_frames = max_frames
  net = augmenter_task.build_model(model_config)
  boxes = params_lib.sample_params(jax.random.PRNGKey(2), 'crop', batch)
  latents = make(code_embedding.embed_codes, codebook, codes)
  window = jax.ShapeDtypeStruct((batch, min(t, max_frames))
                                + latents.shape[2:], latents.dtype)
  net_vars = make(jax.jit(net.init), jax.random.PRNGKey(3),
                  jnp.zeros(window.shape, window.dtype) if timed else window,
                  boxes)
  augment = jax.jit(lambda var, book, c, p: net.apply(
      var, code_embedding.embed_codes(book, c), p))
  grid = codes.shape[2:4]
  crop = jax.jit(lambda c, p: nn_crop.nearest_neighbour_crop(c, p, grid))

  code_grid = 'x'.join(str(d) for d in codes.shape[1:4])
  calls = {'encode': (encode, codec_vars, video),
           'decode': (decode, codec_vars, codes),
           'augment': (augment, net_vars, codebook, codes, boxes),
           'nn crop': (crop, codes, boxes)}
  result = {'size': f'{size}: {t}x{h}x{w} -> {code_grid}x{latents.shape[-1]}'
                    f' latents, batch {batch} ({preset})'}
  for name, (fn, *args) in calls.items():
    result[name + ' gflop'] = _gflop(fn, *args)
    result[name] = (_time(fn, *args, repeats=repeats) if timed
                    else float('nan'))
  return result


def main(argv):
  del argv
  print(f'device: {jax.devices()[0].device_kind} ({jax.default_backend()}), '
        f'{jax.device_count()} device(s); seconds per batch, mean of '
        f'{_REPEATS.value} calls')
  print('| size | encode s | decode s | augment s | nn crop s '
        '| decode / augment (time) | decode GFLOP | augment GFLOP '
        '| decode / augment (FLOP) |')
  print('|---|' + '---:|' * 8)
  for size in _SIZES.value:
    r = measure(size, _REPEATS.value, _TIME.value)
    print(f"| {r['size']} | {r['encode']:.4f} | {r['decode']:.4f} | "
          f"{r['augment']:.4f} | {r['nn crop']:.5f} | "
          f"{r['decode'] / r['augment']:.1f}x | {r['decode gflop']:.2f} | "
          f"{r['augment gflop']:.2f} | "
          f"{r['decode gflop'] / r['augment gflop']:.1f}x |")


if __name__ == '__main__':
  app.run(main)
