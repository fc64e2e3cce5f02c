r"""MPEG-4 GOP extraction against full decoding to RGB, in GOPs per second.

  python benchmarks/mpeg_extraction.py                 # 64x64 and 224x224
  python benchmarks/mpeg_extraction.py --sizes=64 --videos=64

Generated moving-digits videos of 24 frames (2 GOPs of 12) are encoded to
MPEG-4 part 2 in memory first (not timed); then each path reads all of them:

  rgb decode       every frame decoded and converted to RGB: what a pixel
                   model needs.
  I + MVs          I-frames as RGB, motion vectors of the P-frames
                   rasterised per pixel; P-frames are not converted.
  full extraction  `extract_gops`: I-frames, motion vectors, residuals and
                   their accumulation (Eq. 1-2), as the dataset stores them.

FFmpeg's MPEG-4 decoder reconstructs every frame whatever is asked of it, and
PyAV offers no access to the coded residuals, so the residual path starts
from decoded frames: the savings of the compressed domain in this pipeline
are the RGB conversions skipped ('I + MVs') and, downstream, the far smaller
inputs, not the bitstream parsing.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import av
import numpy as np

from data_pipelines.generated import moving_digits as md
from data_pipelines.mpeg import encoding
from data_pipelines.mpeg import extract
from data_pipelines.mpeg import motion_vectors

_SIZES = flags.DEFINE_list('sizes', ['64', '224'], 'Frame sides in pixels.')
_VIDEOS = flags.DEFINE_integer('videos', 32, 'Videos per size.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed passes; the best is kept.')
NUM_FRAMES = 24


def decode_rgb(data: bytes) -> np.ndarray:
  with av.open(_stream(data)) as container:
    return np.stack([f.to_ndarray(format='rgb24')
                     for f in container.decode(video=0)])


def i_frames_and_motion(data: bytes):
  i_frames, fields = [], []
  with av.open(_stream(data)) as container:
    stream = container.streams.video[0]
    stream.codec_context.options = {'flags2': '+export_mvs'}
    for frame in container.decode(stream):
      if int(frame.pict_type) == extract.I_FRAME:
        i_frames.append(frame.to_ndarray(format='rgb24'))
      else:
        side = frame.side_data.get('MOTION_VECTORS')
        fields.append(motion_vectors.rasterise(
            side.to_ndarray() if side is not None else None, frame.height,
            frame.width))
  return np.stack(i_frames), np.stack(fields)


def _stream(data: bytes):
  import io  # pylint: disable=g-import-not-at-top
  return io.BytesIO(data)


def _best_seconds(fn, items, repeats: int) -> float:
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    for item in items:
      fn(item)
    best = min(best, time.perf_counter() - start)
  return best


def main(argv):
  del argv
  paths = {'rgb decode': decode_rgb, 'I + MVs': i_frames_and_motion,
           'full extraction': extract.extract_gops}
  gops_per_video = NUM_FRAMES // encoding.GOP_SIZE
  lines = ['| frames | path | GOPs/s | vs RGB decode |', '|---|---|---:|---:|']
  for size in (int(s) for s in _SIZES.value):
    config = md.MovingDigitsConfig(num_frames=NUM_FRAMES, height=size,
                                   width=size)
    videos = [encoding.encode_mpeg4(md.generate_example(config, 0, i)['video'])
              for i in range(_VIDEOS.value)]
    rates = {name: gops_per_video * len(videos) / _best_seconds(
        fn, videos, _REPEATS.value) for name, fn in paths.items()}
    for name, rate in rates.items():
      lines.append(f'| {size}x{size} | {name} | {rate:.0f} | '
                   f'{rate / rates["rgb decode"]:.2f}x |')
  print(f'MPEG-4 part 2, GOP {encoding.GOP_SIZE}, {NUM_FRAMES}-frame videos, '
        f'{_VIDEOS.value} per size, best of {_REPEATS.value} passes, one '
        'process:')
  print('\n'.join(lines))


if __name__ == '__main__':
  app.run(main)
