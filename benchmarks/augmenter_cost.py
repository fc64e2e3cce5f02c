r"""Augmenting codes against decoding them: time per batch, and the ratio.

  python benchmarks/augmenter_cost.py                    # CPU size
  nice -n 10 python benchmarks/augmenter_cost.py --sizes=paper --rounds=3

The point of the augmentation network (paper App. B.6, Table 8: 0.078 s to
augment against 3.076 s to decode, batch 8 at CR 256) is that augmenting in
code space costs far less than decoding to pixels. Rows, per size:
  encode      pixels -> codes (done once, when the dataset is written;
              counted, not timed);
  decode      codes -> pixels (what augmenting in pixels would need first);
  augment     codes -> codebook lookup -> a(z, p) (the learned augmentation);
  nn crop     nearest-neighbour crop of the code grid (the baseline).
`decode / augment` is the ratio the issue asks for: the median over
interleaved rounds (`benchmarks/rounds.py`: each round times every call
once, in turn), and XLA's count of floating-point operations (which does not
depend on how busy the machine is; `--notime` gives only the counts).
Memory: XLA's footprint of each compiled program.

Sizes: `cpu` is the `codec.py:cpu` codec (16x64x64 clips, 16x8x8 codes, 32
latent channels) with `augmenter.py`'s network (4-frame windows), batch 8;
`cpu30` the same with `codec.py:cpu30` (16x16x16 codes: 4x the tokens);
`paper` is `codec.py:cr256` (32x256x256 clips, 32x16x16 codes, 256 latent
channels) with a 32-frame position table, batch 1 on a CPU (`--batch=8` is
Table 8's). Random weights and random codes of the codec's grid: speed does
not depend on training or on what the codes say.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import rounds as rounds_lib
from cvision.projects.augmenter import nn_crop
from cvision.projects.augmenter import params as params_lib
from cvision.models import code_embedding
from cvision.projects.augmenter import task as augmenter_task
from cvision.projects.codec import compression_rate
from cvision.projects.codec import task as codec_task
from experiments.configs import augmenter as augmenter_config
from experiments.configs import codec as codec_config

_SIZES = flags.DEFINE_list('sizes', ['cpu'], 'cpu and/or paper.')
_ROUNDS = flags.DEFINE_integer('rounds', 5, 'Timed rounds.')
_BATCH = flags.DEFINE_integer('batch', 0, 'Batch (0: the size\'s default).')
_TIME = flags.DEFINE_bool('time', True, 'Time the calls (else only count '
                          'their operations).')

SIZES = {
    # name: (codec preset, (T, H, W), batch, augmenter max_frames)
    'cpu': ('cpu', (16, 64, 64), 8, 4),
    # The CR-32 codec of the S3D and downstream-augmentation tables.
    'cpu30': ('cpu30', (16, 64, 64), 8, 4),
    'paper': ('cr256', (32, 256, 256), 1, 32),
}


def measure(size: str, batch: int, rounds: int, timed: bool) -> dict:
  """Times (when `timed`) and counts the operations of each call.

  Untimed, nothing runs: the inputs and weights are shapes only
  (`jax.eval_shape`), enough to compile and count.
  """
  preset, (t, h, w), default_batch, max_frames = SIZES[size]
  batch = batch or default_batch
  make = (lambda fn, *a: fn(*a)) if timed else jax.eval_shape
  codec_config_ = codec_config.get_config(preset).model
  codec = codec_task.build_model(codec_config_)
  video = jax.ShapeDtypeStruct((batch, t, h, w, 3), jnp.uint8)
  codec_vars = make(jax.jit(lambda: codec.init(
      {'params': jax.random.PRNGKey(0), 'vq': jax.random.PRNGKey(1)},
      jnp.zeros((1, t, h, w, 3), jnp.float32))))
  codebook = codec_task.get_codebook(codec_vars)
  encode = jax.jit(lambda var, v: codec.apply(
      var, v.astype(jnp.float32) / 255.0, method=codec.encode))
  decode = jax.jit(lambda var, c: codec.apply(var, c, method=codec.decode))
  grid = compression_rate.code_grid_shape((t, h, w), codec_config_)
  codes_shape = (batch, *grid, codec_config_.num_codebooks)
  codes_dtype = compression_rate.code_dtype(codec_config_.codebook_size)
  codes = (jnp.asarray(np.random.default_rng(0).integers(
      0, codec_config_.codebook_size, codes_shape).astype(codes_dtype))
           if timed else jax.ShapeDtypeStruct(codes_shape, codes_dtype))

  aug_config = augmenter_config.get_config('crop')
  aug_config.model.max_frames = max_frames
  net = augmenter_task.build_model(aug_config.model)
  boxes = params_lib.sample_params(jax.random.PRNGKey(2), 'crop', batch,
                                   aug_config.augment)
  latents = jax.eval_shape(code_embedding.embed_codes, codebook, codes)
  window = jax.ShapeDtypeStruct((batch, min(t, max_frames))
                                + latents.shape[2:], latents.dtype)
  net_vars = make(jax.jit(lambda p: net.init(
      jax.random.PRNGKey(3), jnp.zeros(window.shape, window.dtype), p)),
                  boxes)
  augment = jax.jit(lambda var, book, c, p: net.apply(
      var, code_embedding.embed_codes(book, c), p))
  crop = jax.jit(lambda c, p: nn_crop.nearest_neighbour_crop(
      c, p, tuple(grid[1:])))

  programs = {'encode': rounds_lib.compiled(encode, codec_vars, video)}
  calls = {'decode': (decode, codec_vars, codes),
           'augment': (augment, net_vars, codebook, codes, boxes),
           'nn crop': (crop, codes, boxes)}
  for name, (fn, *args) in calls.items():
    programs[name] = rounds_lib.compiled(fn, *args)
  result = {'size': f'{size}: {t}x{h}x{w} -> {"x".join(map(str, grid))}x'
                    f'{latents.shape[-1]} latents, batch {batch} ({preset})'}
  for name, program in programs.items():
    result[name + ' gflop'] = rounds_lib.gflop(program)
    result[name + ' mib'] = rounds_lib.memory_mib(program)
  timings = {}
  if timed:
    timings = rounds_lib.interleaved(
        {name: (lambda p=programs[name], a=args: p(*a))
         for name, (_, *args) in calls.items()}, rounds)
  for name in calls:
    result[name] = timings[name].median if timed else float('nan')
    result[name + ' spread'] = timings[name].spread if timed else '-'
  return result


def main(argv):
  del argv
  print(f'device: {jax.devices()[0].device_kind} ({jax.default_backend()}), '
        f'{jax.device_count()} device(s); seconds per batch, median of '
        f'{_ROUNDS.value} interleaved rounds (spread min-max); load '
        f'{rounds_lib.load()}')
  print('| size | decode s | augment s | nn crop s '
        '| decode / augment (time) | decode GFLOP | augment GFLOP '
        '| decode / augment (FLOP) | encode GFLOP | decode MiB | augment MiB |')
  print('|---|' + '---:|' * 10)
  for size in _SIZES.value:
    r = measure(size, _BATCH.value, _ROUNDS.value, _TIME.value)
    print(f"| {r['size']} | {r['decode']:.4f} ({r['decode spread']}) | "
          f"{r['augment']:.4f} ({r['augment spread']}) | "
          f"{r['nn crop']:.5f} | "
          f"{r['decode'] / r['augment']:.1f}x | {r['decode gflop']:.2f} | "
          f"{r['augment gflop']:.2f} | "
          f"{r['decode gflop'] / r['augment gflop']:.1f}x | "
          f"{r['encode gflop']:.1f} | {r['decode mib']:.0f} | "
          f"{r['augment mib']:.0f} |")
  print(f'goal: decode / augment >= 50x, timed; load at the end '
        f'{rounds_lib.load()}')


if __name__ == '__main__':
  app.run(main)
