r"""MPEG-4 GOP extraction against full decoding to RGB, in GOPs per second.

  python benchmarks/mpeg_extraction.py                 # 64x64 and 224x224
  python benchmarks/mpeg_extraction.py --sizes=64 --videos=64
  python benchmarks/mpeg_extraction.py --content=texture

Generated videos of 24 frames (2 GOPs of 12; moving digits, or a texture
panning so that every block moves) are encoded to MPEG-4 part 2 in memory
first (not timed); then each path reads all of them:

  rgb decode       every frame decoded and converted to RGB: what a pixel
                   model needs.
  I + MVs          I-frames as RGB, motion vectors of the P-frames
                   rasterised per pixel; P-frames are not converted.
  full extraction  `extract_gops`: I-frames, motion vectors, residuals and
                   their accumulation (Eq. 1-2), as the dataset stores them.

All three convert to RGB the same way (`to_ndarray(format='rgb24',
threads=1)`: PyAV builds a scaler per frame, and with its default of a
thread pool per scaler the conversion of a small frame is about 3x slower).

FFmpeg's MPEG-4 decoder reconstructs every frame whatever is asked of it, and
PyAV offers no access to the coded residuals, so the residual path starts
from decoded frames: the savings of the compressed domain in this pipeline
are the RGB conversions skipped ('I + MVs') and, downstream, the far smaller
inputs, not the bitstream parsing.
"""
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import av
import numpy as np

from data_pipelines.generated import moving_digits as md
from data_pipelines.mpeg import accumulate
from data_pipelines.mpeg import encoding
from data_pipelines.mpeg import extract
from data_pipelines.mpeg import motion_vectors

_SIZES = flags.DEFINE_list('sizes', ['64', '224'], 'Frame sides in pixels.')
_VIDEOS = flags.DEFINE_integer('videos', 32, 'Videos per size.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed passes; the best is kept.')
_CONTENT = flags.DEFINE_enum('content', 'digits', ['digits', 'texture'],
                             'Moving digits (mostly black, little motion) '
                             'or a panning texture (every block moves).')
NUM_FRAMES = 24


def decode_rgb(data: bytes) -> np.ndarray:
  with av.open(io.BytesIO(data)) as container:
    return np.stack([f.to_ndarray(format='rgb24', threads=1)
                     for f in container.decode(video=0)])


def i_frames_and_motion(data: bytes):
  i_frames, records = [], []
  with av.open(io.BytesIO(data)) as container:
    stream = container.streams.video[0]
    stream.codec_context.options = {'flags2': '+export_mvs'}
    for frame in container.decode(stream):
      height, width = frame.height, frame.width
      if int(frame.pict_type) == extract.I_FRAME:
        i_frames.append(frame.to_ndarray(format='rgb24', threads=1))
      else:
        side = frame.side_data.get('MOTION_VECTORS')
        records.append(side.to_ndarray() if side is not None else None)
  cells = motion_vectors.rasterise_cells(records, height, width)
  return np.stack(i_frames), motion_vectors.cells_to_pixels(cells, height,
                                                            width)


def panning_texture(num_frames: int, size: int, seed: int) -> np.ndarray:
  """`[T, size, size, 3] uint8`: smooth noise panning 2 px right, 1 px down
  per frame, so every macroblock moves (the digits are mostly still black)."""
  rng = np.random.default_rng(seed)
  noise = rng.uniform(0, 255, (size + num_frames, size + 2 * num_frames))
  kernel = np.ones(7) / 7
  for axis in (0, 1):
    noise = np.apply_along_axis(np.convolve, axis, noise, kernel, 'same')
  texture = np.stack([noise, 255 - noise, np.roll(noise, 9, 1)], -1)
  return np.stack([texture[t:t + size, 2 * t:2 * t + size]
                   for t in range(num_frames)]).astype(np.uint8)


def _best_seconds(fn, items, repeats: int) -> tuple[float, float]:
  """Best wall and best CPU (this process) seconds of a pass over `items`.

  On a shared machine the CPU time is the steadier figure: it leaves out the
  time the process waited for a core.
  """
  best_wall, best_cpu = float('inf'), float('inf')
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
      fn(item)
    best_wall = min(best_wall, time.perf_counter() - wall)
    best_cpu = min(best_cpu, time.process_time() - cpu)
  return best_wall, best_cpu


def _both_pixel_fields(cells, height, width):
  """The stored float field and the whole-pixel one the gathers use."""
  return (motion_vectors.cells_to_pixels(cells, height, width),
          motion_vectors.cells_to_pixels(
              motion_vectors.to_whole_pixels(cells), height, width))


def _stage_seconds(videos) -> dict[str, float]:
  """CPU seconds of each stage of `extract_gops` over `videos`."""
  totals = {}

  def timed(name, fn, *args, **kwargs):
    start = time.process_time()
    out = fn(*args, **kwargs)
    totals[name] = totals.get(name, 0.0) + time.process_time() - start
    return out

  gop = encoding.GOP_SIZE
  for data in videos:
    # pylint: disable-next=protected-access
    decoded = timed('decode + RGB + MV export', extract._decode, data,
                    'benchmark', size=None, max_frames=None)
    h, w = decoded.height, decoded.width
    frames = np.stack(decoded.frames).reshape(-1, gop, h, w, 3)
    p_frame_vectors = [v for k, v in enumerate(decoded.vectors) if k % gop]
    cells = timed('rasterise MVs (cell grid)', motion_vectors.rasterise_cells,
                  p_frame_vectors, h, w)
    cells = cells.reshape(frames.shape[0], gop - 1, *cells.shape[1:])
    _, whole = timed('cells to pixels', _both_pixel_fields, cells, h, w)
    timed('residuals + accumulation', accumulate.compensate, frames, whole)
  return totals


def main(argv):
  del argv
  paths = {'rgb decode': decode_rgb, 'I + MVs': i_frames_and_motion,
           'full extraction': extract.extract_gops}
  gops_per_video = NUM_FRAMES // encoding.GOP_SIZE
  lines = ['| frames | path | GOPs/s | vs RGB decode | GOPs per CPU-s |',
           '|---|---|---:|---:|---:|']
  stage_lines = ['| frames | stage | CPU ms / GOP |', '|---|---|---:|']
  for size in (int(s) for s in _SIZES.value):
    if _CONTENT.value == 'digits':
      config = md.MovingDigitsConfig(num_frames=NUM_FRAMES, height=size,
                                     width=size)
      clips = [md.generate_example(config, 0, i)['video']
               for i in range(_VIDEOS.value)]
    else:
      clips = [panning_texture(NUM_FRAMES, size, i)
               for i in range(_VIDEOS.value)]
    videos = [encoding.encode_mpeg4(clip) for clip in clips]
    gops = gops_per_video * len(videos)
    seconds = {name: _best_seconds(fn, videos, _REPEATS.value)
               for name, fn in paths.items()}
    base = seconds['rgb decode'][0]
    for name, (wall, cpu) in seconds.items():
      lines.append(f'| {size}x{size} | {name} | {gops / wall:.0f} | '
                   f'{base / wall:.2f}x | {gops / cpu:.0f} |')
    for stage, cpu in _stage_seconds(videos).items():
      stage_lines.append(f'| {size}x{size} | {stage} | '
                         f'{1000 * cpu / gops:.2f} |')
  print(f'MPEG-4 part 2, GOP {encoding.GOP_SIZE}, {NUM_FRAMES}-frame '
        f'{_CONTENT.value} videos, {_VIDEOS.value} per size, best of '
        f'{_REPEATS.value} passes, one process:')
  print('\n'.join(lines))
  print('\nWhere full extraction spends its time (one pass):')
  print('\n'.join(stage_lines))


if __name__ == '__main__':
  app.run(main)
