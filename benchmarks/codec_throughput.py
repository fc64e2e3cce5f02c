r"""Codec encode and decode throughput (frames/s) and peak memory.

  python benchmarks/codec_throughput.py                 # CPU size
  python benchmarks/codec_throughput.py --sizes=cpu,paper   # + 32x256x256

Sizes: `cpu` is the `codec.py:cpu` model on 16x64x64 clips; `paper` is the
`codec.py:cr236` model on 32x256x256 clips, batch 8 (run it on a GPU/TPU).
Randomly initialised weights: throughput does not depend on training.
Memory: the compiled program's footprint (arguments + outputs + temporaries,
from XLA's memory analysis, on any backend) and, where the device reports it,
the device's peak bytes in use.
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

from cvision.projects.codec import task as codec_task
from experiments.configs import codec as codec_config

_SIZES = flags.DEFINE_list('sizes', ['cpu'], 'cpu and/or paper.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls per measurement.')

SIZES = {
    # name: (preset, (T, H, W), batch)
    'cpu': ('cpu', (16, 64, 64), 8),
    'paper': ('cr236', (32, 256, 256), 8),
}


def _compiled_bytes(compiled) -> int:
  analysis = compiled.memory_analysis()
  if analysis is None:
    return -1
  return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
             + analysis.temp_size_in_bytes)


def _device_peak() -> int:
  stats = jax.devices()[0].memory_stats() or {}
  return int(stats.get('peak_bytes_in_use', -1))


def _time(fn, *args, repeats):
  jax.block_until_ready(fn(*args))  # Warm-up (and compile).
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def measure(size: str, repeats: int) -> dict:
  preset, (t, h, w), batch = SIZES[size]
  config = codec_config.get_config(preset)
  model = codec_task.build_model(config.model)
  video = jnp.asarray(np.random.default_rng(0).integers(
      0, 256, (batch, t, h, w, 3), dtype=np.uint8))
  variables = jax.jit(lambda v: model.init(
      {'params': jax.random.PRNGKey(0), 'vq': jax.random.PRNGKey(1)},
      v.astype(jnp.float32) / 255.0))(video)
  encode = jax.jit(lambda var, v: model.apply(
      var, v.astype(jnp.float32) / 255.0, method=model.encode))
  decode = jax.jit(lambda var, c: model.apply(var, c, method=model.decode))
  codes = encode(variables, video)
  encode_s = _time(encode, variables, video, repeats=repeats)
  decode_s = _time(decode, variables, codes, repeats=repeats)
  frames = batch * t
  return {
      'size': f'{size} {t}x{h}x{w} b{batch} ({preset})',
      'encode_fps': frames / encode_s, 'decode_fps': frames / decode_s,
      'encode_s': encode_s, 'decode_s': decode_s,
      'encode_mib': _compiled_bytes(encode.lower(variables, video).compile())
      / 2**20,
      'decode_mib': _compiled_bytes(decode.lower(variables, codes).compile())
      / 2**20,
      'device_peak_mib': _device_peak() / 2**20,
  }


def main(argv):
  del argv
  print(f'device: {jax.devices()[0].device_kind} ({jax.default_backend()}), '
        f'{jax.device_count()} device(s)')
  header = ('size', 'encode f/s', 'decode f/s', 'decode/encode time',
            'encode MiB', 'decode MiB', 'device peak MiB')
  print(' | '.join(header))
  for size in _SIZES.value:
    r = measure(size, _REPEATS.value)
    print(' | '.join([
        r['size'], f"{r['encode_fps']:.1f}", f"{r['decode_fps']:.1f}",
        f"{r['decode_s'] / r['encode_s']:.2f}x", f"{r['encode_mib']:.0f}",
        f"{r['decode_mib']:.0f}",
        f"{r['device_peak_mib']:.0f}" if r['device_peak_mib'] >= 0 else 'n/a'
    ]))


if __name__ == '__main__':
  app.run(main)
