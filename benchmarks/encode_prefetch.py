r"""Encoding a long video: frames/s with the read-ahead thread and without.

  nice -n 10 python benchmarks/encode_prefetch.py --frames=512

A `--frames`-frame H.264 video of `--source_px` squares is written once, then
encoded the way `--mode=encode` encodes a long video: frames decoded and
resized to the codec's input (`data_pipelines.video_io.iter_video_chunks`),
`--chunk` frames at a time, each chunk encoded by the codec of `--preset`
(random weights: speed does not depend on them). Two loops over the same
file, timed in interleaved rounds (`benchmarks/rounds.py`):
  plain     read a chunk, encode it, read the next (what encoding did);
  prefetch  `code_dataset.encode_stream`: the next chunk is decoded in a
            producer thread (`host_prefetch.prefetch`) while this one encodes.
Both end with every chunk's codes on the host. The overlap can only win the
smaller of the read and encode times; on a CPU both compete for the same
cores, on an accelerator the device encodes while the host reads.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import rounds as rounds_lib
from cvision.projects.codec import code_dataset
from cvision.projects.codec import task as codec_task
from data_pipelines import video_io
from experiments.configs import codec as codec_config

_FRAMES = flags.DEFINE_integer('frames', 512, 'Frames of the long video.')
_SOURCE_PX = flags.DEFINE_integer('source_px', 256, 'Side of the video file.')
_PX = flags.DEFINE_integer('px', 64, 'Side the codec reads.')
_CHUNK = flags.DEFINE_integer('chunk', 16, 'Frames encoded at a time.')
_PRESET = flags.DEFINE_string('preset', 'cpu', 'codec.py preset.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Timed rounds.')


def write_long_video(path: str, frames: int, side: int) -> None:
  """A smooth pattern drifting across the frame, with some noise."""
  rng = np.random.default_rng(0)
  y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side

  def frames_iter():
    for t in range(frames):
      phase = 2 * np.pi * (x + y * 0.5 + t / 64)
      base = 127 + 100 * np.sin(phase)[..., None] * np.array([1, .6, .3])
      noise = rng.normal(0, 8, (side, side, 3))
      yield np.clip(base + noise, 0, 255).astype(np.uint8)

  video_io.write_video(path, frames_iter())


def main(argv):
  del argv
  model_config = codec_config.get_config(_PRESET.value).model
  model = codec_task.build_model(model_config)
  shape = (1, _CHUNK.value, _PX.value, _PX.value, 3)
  variables = jax.jit(lambda: model.init(
      {'params': jax.random.PRNGKey(0), 'vq': jax.random.PRNGKey(1)},
      jnp.zeros(shape, jnp.float32)))()
  jitted = jax.jit(lambda v: model.apply(
      variables, v.astype(jnp.float32) / 255.0, method=model.encode))
  encode = lambda v: np.asarray(jitted(v))
  size = (_PX.value, _PX.value)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'long.mp4')
    write_long_video(path, _FRAMES.value, _SOURCE_PX.value)
    chunks = lambda: video_io.iter_video_chunks(path, _CHUNK.value, size=size)
    # Every chunk has the same length (frames % chunk == 0), one compile.
    encode(np.zeros(shape, np.uint8))

    def plain():
      return [encode(chunk[None])[0] for chunk in chunks()]

    def prefetch():
      return list(code_dataset.encode_stream(chunks(), encode))

    def read_only():
      return [chunk for chunk in chunks()]

    print(f'device: {jax.devices()[0].device_kind} ({jax.default_backend()}); '
          f'{_FRAMES.value} frames of {_SOURCE_PX.value}px H.264 read at '
          f'{_PX.value}px, chunks of {_CHUNK.value}, codec.py:{_PRESET.value}'
          f'; {_ROUNDS.value} interleaved rounds; load {rounds_lib.load()}')
    timings = rounds_lib.interleaved(
        {'read only': read_only, 'plain': plain, 'prefetch': prefetch},
        _ROUNDS.value)
  print('| loop | s per video (median) | spread s | frames/s | plain / loop |')
  print('|---|---:|---:|---:|---:|')
  for name, t in timings.items():
    print(f'| {name} | {t.median:.2f} | {t.spread} | '
          f'{_FRAMES.value / t.median:.1f} | '
          f'{timings["plain"].median / t.median:.2f}x |')
  print(f'load at the end {rounds_lib.load()}')


if __name__ == '__main__':
  app.run(main)
