"""How long decoding takes: N frames of a file at H x W, timed interleaved.

  timings = time_decoders(
      {'per_frame': decode_per_frame, 'video_io': decode_clip},
      'vtest.avi', num_frames=16, size=(64, 64), repeats=7)
  timings['video_io'].median_s, timings['video_io'].frames_per_s

`decode_clip` is what every reader of `data_pipelines` does
(`video_io.read_video`: one reused swscale context, single threaded).
`decode_per_frame` is plain PyAV, `frame.to_ndarray(format='rgb24', ...)`
per frame: the conversion `video_io` used before, kept as the reference the
pixels and the timings are compared with. Decoders run in turn within each
repeat, so a shared machine's load changes hit them alike; report medians.
"""

from collections.abc import Callable, Mapping
import statistics
import time
from typing import NamedTuple

import av
import numpy as np

from data_pipelines import video_io

Decoder = Callable[[str, int, 'tuple[int, int] | None'], np.ndarray]


def decode_clip(path: str, num_frames: int, size: tuple[int, int] | None
                ) -> np.ndarray:
  """The first `num_frames` frames at `size`, `[T, H, W, 3] uint8`."""
  return video_io.read_video(path, size=size, max_frames=num_frames)


def decode_per_frame(path: str, num_frames: int,
                     size: tuple[int, int] | None) -> np.ndarray:
  """As `decode_clip`, converting each frame with its own `to_ndarray`."""
  resize = {}
  if size is not None:
    resize = dict(height=size[0], width=size[1], interpolation='AREA')
  frames = []
  with av.open(path) as container:
    stream = container.streams.video[0]
    stream.thread_type = 'AUTO'
    for frame in container.decode(stream):
      frames.append(frame.to_ndarray(format='rgb24', **resize))
      if len(frames) >= num_frames:
        break
  return np.stack(frames)


class DecodeTiming(NamedTuple):
  """Wall-clock seconds of each repeat of one decoder."""
  seconds: tuple[float, ...]
  num_frames: int

  @property
  def median_s(self) -> float:
    return statistics.median(self.seconds)

  @property
  def frames_per_s(self) -> float:
    return self.num_frames / self.median_s


def time_decoders(decoders: Mapping[str, Decoder], path: str, *,
                  num_frames: int, size: tuple[int, int] | None,
                  repeats: int = 5) -> dict[str, DecodeTiming]:
  """Times each decoder on the same frames, interleaved, `repeats` times.

  Raises:
    ValueError: the decoders return different frame counts (a short file).
  """
  seconds = {name: [] for name in decoders}
  counts = {}
  for _ in range(repeats):
    for name, decode in decoders.items():
      start = time.perf_counter()
      frames = decode(path, num_frames, size)
      seconds[name].append(time.perf_counter() - start)
      counts[name] = len(frames)
  if len(set(counts.values())) > 1:
    raise ValueError(f'The decoders read different frame counts: {counts}.')
  return {name: DecodeTiming(tuple(s), counts[name])
          for name, s in seconds.items()}
