"""Reading and writing video files with PyAV (bundled FFmpeg, no TensorFlow).

Frames are always RGB `uint8` arrays, `[H, W, 3]` per frame and
`[T, H, W, 3]` per clip. Every failure to open or decode a file surfaces as a
`VideoReadError` naming the file, so dataset builders can skip and report bad
files with one `except` clause.
"""

from collections.abc import Iterable, Iterator
import fractions
import os
from typing import NamedTuple

import av
import numpy as np

# Encoders whose yuv420p output needs even frame sizes; x264 refuses odd ones.
_EVEN_SIZE_PIX_FMTS = ('yuv420p', 'yuvj420p', 'nv12')


class VideoReadError(ValueError):
  """A video file could not be opened or decoded."""

  def __init__(self, path: str | os.PathLike[str], reason: str):
    self.path = os.fspath(path)
    self.reason = reason
    super().__init__(f'Cannot read video {self.path!r}: {reason}')


class VideoInfo(NamedTuple):
  """Container metadata of a video file.

  `num_frames` comes from the container header or, when the header has no
  count (common for mkv/webm), from counting packets; it can differ from the
  number of decodable frames by a few.
  """
  num_frames: int
  fps: float
  height: int
  width: int

  @property
  def size(self) -> tuple[int, int]:
    """(height, width) in pixels."""
    return self.height, self.width


def _open(path: str | os.PathLike[str]):
  """Opens `path` for reading; returns (container, video stream)."""
  if not os.path.exists(path):
    raise VideoReadError(path, 'no such file')
  if not os.path.isfile(path):
    raise VideoReadError(path, 'not a regular file')
  try:
    container = av.open(os.fspath(path), mode='r')
  except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
    raise VideoReadError(path, f'cannot open container ({e})') from e
  if not container.streams.video:
    container.close()
    raise VideoReadError(path, 'no video stream')
  stream = container.streams.video[0]
  # Frame-level threading speeds decoding up without changing the output.
  stream.thread_type = 'AUTO'
  return container, stream


def _check_size(size: tuple[int, int] | None) -> None:
  if size is not None and (len(size) != 2 or min(size) <= 0):
    raise ValueError(f'size must be (height, width) > 0, got {size!r}.')


def _iter_frames(
    path: str | os.PathLike[str],
    *,
    size: tuple[int, int] | None,
    max_frames: int | None,
) -> Iterator[np.ndarray]:
  """Yields decoded frames `[H, W, 3] uint8`; raises VideoReadError."""
  _check_size(size)
  container, stream = _open(path)
  count = 0
  try:
    if max_frames is not None and max_frames <= 0:
      return
    for frame in container.decode(stream):
      if size is None:
        rgb = frame.to_ndarray(format='rgb24')
      else:
        # AREA averages source pixels when shrinking, which avoids the
        # aliasing that nearest/bilinear produce at 4x-8x downscaling.
        rgb = frame.to_ndarray(
            width=size[1], height=size[0], format='rgb24',
            interpolation='AREA')
      count += 1
      yield rgb
      if max_frames is not None and count >= max_frames:
        return
    if count == 0:
      raise VideoReadError(path, 'no decodable frames')
  except (av.error.FFmpegError, OSError) as e:
    raise VideoReadError(path, f'decoding failed after {count} frames ({e})'
                        ) from e
  finally:
    container.close()


def read_video(
    path: str | os.PathLike[str],
    *,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
  """Decodes a whole video (or its first `max_frames` frames).

  Args:
    path: video file readable by FFmpeg (mp4, avi, mkv, webm, ...).
    size: optional (height, width) to resize every frame to.
    max_frames: stop after this many frames.

  Returns:
    `[T, H, W, 3] uint8` RGB frames.

  Raises:
    VideoReadError: the file is missing, corrupt, not a video or has no frames.
  """
  frames = list(_iter_frames(path, size=size, max_frames=max_frames))
  if not frames:  # Only reachable with max_frames <= 0.
    h, w = size if size is not None else probe_video(path).size
    return np.zeros((0, h, w, 3), np.uint8)
  return np.stack(frames)


def iter_video_chunks(
    path: str | os.PathLike[str],
    chunk_frames: int,
    *,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
  """Streams a video as consecutive chunks, holding one chunk in memory.

  Args:
    path: video file.
    chunk_frames: frames per chunk; the last chunk may be shorter.
    size: optional (height, width) to resize every frame to.
    max_frames: stop after this many frames.

  Yields:
    `[chunk, H, W, 3] uint8` arrays, `1 <= chunk <= chunk_frames`.

  Raises:
    VideoReadError: as `read_video`; possibly after some chunks were yielded.
  """
  if chunk_frames <= 0:
    raise ValueError(f'chunk_frames must be positive, got {chunk_frames}.')
  buffer = []
  for frame in _iter_frames(path, size=size, max_frames=max_frames):
    buffer.append(frame)
    if len(buffer) == chunk_frames:
      yield np.stack(buffer)
      buffer = []
  if buffer:
    yield np.stack(buffer)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
  """Reads frame count, frame rate and size without decoding pixels.

  Raises:
    VideoReadError: the file is missing, corrupt or has no video stream.
  """
  container, stream = _open(path)
  try:
    ctx = stream.codec_context
    height, width = ctx.height, ctx.width
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    num_frames = stream.frames
    if not num_frames:
      num_frames = sum(1 for p in container.demux(stream) if p.size)
  except (av.error.FFmpegError, OSError) as e:
    raise VideoReadError(path, f'cannot read stream header ({e})') from e
  finally:
    container.close()
  if not height or not width:
    raise VideoReadError(path, 'video stream has no frame size')
  return VideoInfo(num_frames=int(num_frames), fps=fps, height=int(height),
                   width=int(width))


def _as_frames(frames: np.ndarray | Iterable[np.ndarray]
               ) -> Iterator[np.ndarray]:
  """Flattens an array or an iterable of frames/chunks into `[H, W, 3]`."""
  if isinstance(frames, np.ndarray):
    frames = [frames]
  for item in frames:
    item = np.asarray(item)
    if item.ndim == 3:
      yield item
    elif item.ndim == 4:
      yield from item
    else:
      raise ValueError(
          'Expected [H, W, 3] frames or [T, H, W, 3] chunks, got '
          f'{item.shape}.')


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float = 25,
    codec: str = 'libx264',
    *,
    pix_fmt: str = 'yuv420p',
    **options: str | int | float,
) -> int:
  """Encodes RGB frames to a video file; the container follows the suffix.

  Args:
    path: output file, e.g. `clip.mp4`, `clip.mkv`, `clip.avi`.
    frames: `[T, H, W, 3] uint8`, or an iterable of `[H, W, 3]` frames or
      `[N, H, W, 3]` chunks, so long videos can be written in O(chunk) memory.
    fps: frame rate.
    codec: FFmpeg encoder, e.g. 'libx264', 'mpeg4', 'libvpx-vp9'.
    pix_fmt: encoder pixel format; yuv420p needs even height and width.
    **options: encoder options as FFmpeg names them, e.g. crf=18 (x264),
      g=12 (GOP length), bf=0 (no B-frames), qmin=2, qmax=2, b='2M'.

  Returns:
    The number of frames written.

  Raises:
    ValueError: no frames, non-uint8 or badly shaped frames, or an odd size
      with a 4:2:0 pixel format.
  """
  rate = fractions.Fraction(fps).limit_denominator(100_000)
  container = None
  stream = None
  count = 0
  try:
    for frame in _as_frames(frames):
      if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(
            f'Frames must be [H, W, 3] uint8, got {frame.shape} {frame.dtype}.')
      if stream is None:
        height, width = frame.shape[:2]
        if pix_fmt in _EVEN_SIZE_PIX_FMTS and (height % 2 or width % 2):
          raise ValueError(
              f'{codec} with pix_fmt={pix_fmt} needs an even frame size, got '
              f'{height}x{width}; crop or resize the frames first.')
        container = av.open(os.fspath(path), mode='w')
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {k: str(v) for k, v in options.items()}
      elif frame.shape[:2] != (stream.height, stream.width):
        raise ValueError(
            f'Frame {count} has size {frame.shape[:2]}, expected '
            f'{(stream.height, stream.width)}.')
      video_frame = av.VideoFrame.from_ndarray(
          np.ascontiguousarray(frame), format='rgb24')
      for packet in stream.encode(video_frame):
        container.mux(packet)
      count += 1
    if stream is None:
      raise ValueError(f'No frames to write to {os.fspath(path)!r}.')
    for packet in stream.encode():  # Flush the encoder's delayed frames.
      container.mux(packet)
    container.close()
  except BaseException:
    # A truncated file would later look like a corrupt input; remove it.
    if container is not None:
      container.close()
      if os.path.exists(path):
        os.remove(path)
    raise
  return count
