"""Reading and writing video files with PyAV (bundled FFmpeg, no TensorFlow).

Frames are always RGB `uint8` arrays, `[H, W, 3]` per frame and
`[T, H, W, 3]` per clip. Every failure to open or decode a file surfaces as a
`VideoReadError` naming the file, so dataset builders can skip and report bad
files with one `except` clause. A file that opens but stops decoding
part-way raises its subclass `VideoDecodeError`, after every frame decoded
before the fault was yielded, so a caller can keep those frames on purpose
(never by accident). Part-way faults are:

* a decoder error;
* a packet the demuxer marks corrupt (a file cut inside a packet);
* fewer frames than the container announces: the header's frame count
  (mp4, avi) less max(2, 1%), or, when there is none (mkv, webm), the
  stream's duration times its frame rate less max(2, 5%). A file cut
  exactly at a packet boundary is only caught this way.

Files that are not videos at all are refused when opened: no video stream
(audio only), or a still image (FFmpeg reads a PNG or JPEG, whatever its
suffix, as a one-frame video).

Colour conversion and resizing reuse one swscale context per file, single
threaded: PyAV otherwise builds a context, and with the default `threads=0`
a thread pool, for every frame (see `decode_timing`).
"""

from collections.abc import Iterable, Iterator
import fractions
import io
import os
from typing import NamedTuple, Union

import av
from av.video import reformatter as av_reformatter
import numpy as np

# Encoders whose yuv420p output needs even frame sizes; x264 refuses odd ones.
_EVEN_SIZE_PIX_FMTS = ('yuv420p', 'yuvj420p', 'nv12')
# FFmpeg's demuxers for still images; every `*_pipe` one is too (png_pipe,
# jpeg_pipe, bmp_pipe, webp_pipe, tiff_pipe, ...). GIF is read as a video.
_IMAGE_DEMUXERS = ('image2', 'image2pipe')

Source = Union[str, os.PathLike, bytes]


class VideoReadError(ValueError):
  """A video file could not be opened or decoded."""

  def __init__(self, path: str | os.PathLike[str], reason: str):
    self.path = os.fspath(path)
    self.reason = reason
    super().__init__(f'Cannot read video {self.path!r}: {reason}')


class VideoDecodeError(VideoReadError):
  """Decoding stopped part-way through a file that opened.

  Attributes:
    frames_decoded: frames decoded (and yielded) before the fault.
    frames_expected: frames the container announces, or None if unknown.
  """

  def __init__(self, path: str | os.PathLike[str], reason: str, *,
               frames_decoded: int, frames_expected: int | None):
    self.frames_decoded = frames_decoded
    self.frames_expected = frames_expected
    super().__init__(path, reason)


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


def describe(source: Source) -> str:
  """The name errors give `source`: its path, or its size in memory."""
  if isinstance(source, (bytes, bytearray)):
    return f'<{len(source)} bytes in memory>'
  return os.fspath(source)


def open_video(source: Source):
  """Opens a video file (a path, or a file's bytes) for reading.

  Returns:
    (container, its first video stream); close the container when done.

  Raises:
    VideoReadError: missing, not a regular file, not a container FFmpeg
      reads, a still image, or without a video stream.
  """
  name = describe(source)
  if isinstance(source, (bytes, bytearray)):
    source = io.BytesIO(source)
  else:
    source = os.fspath(source)
    if not os.path.lexists(source) or (os.path.islink(source) and
                                       not os.path.exists(source)):
      raise VideoReadError(name, 'no such file')
    if not os.path.isfile(source):  # Checked first: a FIFO would block.
      raise VideoReadError(name, 'not a regular file')
  try:
    container = av.open(source, mode='r')
  except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
    raise VideoReadError(
        name, f'cannot open container, corrupt or not a video ({e})') from e
  demuxer = container.format.name
  if demuxer in _IMAGE_DEMUXERS or demuxer.endswith('_pipe'):
    container.close()
    raise VideoReadError(name, f'a still image ({demuxer}), not a video')
  if not container.streams.video:
    container.close()
    raise VideoReadError(name, 'the container has no video stream')
  return container, container.streams.video[0]


def _expected_frames(container, stream) -> tuple[int | None, int]:
  """(frames the container announces or None, how many may be missing)."""
  if stream.frames:
    return int(stream.frames), max(2, stream.frames // 100)
  rate = stream.average_rate or stream.guessed_rate
  seconds = None
  if stream.duration and stream.time_base:
    seconds = float(stream.duration * stream.time_base)
  elif len(container.streams) == 1 and container.duration:
    # The container's duration is the longest stream's: only used alone.
    seconds = container.duration / av.time_base
  if not rate or not seconds:
    return None, 0
  expected = round(seconds * float(rate))
  return expected, max(2, expected // 20)


def iter_decoded(container, stream, name: str, *,
                 max_frames: int | None = None) -> Iterator[av.VideoFrame]:
  """Decodes `stream` of an open container, checking it ends where it should.

  Args:
    container: from `open_video`; the caller closes it.
    stream: its video stream (codec options already set).
    name: the file's name for errors.
    max_frames: stop after this many frames (nothing after them is checked).

  Yields:
    `av.VideoFrame`s in presentation order.

  Raises:
    VideoReadError: no frame decodes.
    VideoDecodeError: decoding stopped part-way (see the module docstring),
      raised after the frames decoded before the fault were yielded.
  """
  count = 0
  if max_frames is not None and max_frames <= 0:
    return
  expected, allowed_missing = _expected_frames(container, stream)
  corrupt = False
  try:
    for packet in container.demux(stream):
      if packet.is_corrupt:
        corrupt = True
        break
      for frame in packet.decode():
        count += 1
        yield frame
        if max_frames is not None and count >= max_frames:
          return
    if corrupt:  # Frames already sent to the decoder still come out.
      for frame in stream.decode(None):
        count += 1
        yield frame
        if max_frames is not None and count >= max_frames:
          return
  except (av.error.FFmpegError, OSError) as e:
    if not count:
      raise VideoReadError(name, f'no frame decodes ({e})') from e
    raise VideoDecodeError(
        name, f'decoding failed after {count} frames ({e})',
        frames_decoded=count, frames_expected=expected) from e
  if not count:
    raise VideoReadError(name, 'no decodable frames')
  if corrupt:
    raise VideoDecodeError(
        name, f'corrupt packet after {count} frames (file cut short?)',
        frames_decoded=count, frames_expected=expected)
  if expected is not None and count < expected - allowed_missing:
    raise VideoDecodeError(
        name, f'it ends after {count} of the {expected} frames its container '
        'announces (file cut short?)', frames_decoded=count,
        frames_expected=expected)


class RgbConverter:
  """Frames to `[H, W, 3] uint8` RGB, optionally resized, one swscale context.

  Reusing the context (and `threads=1`) gives the pixels of
  `frame.to_ndarray(format='rgb24', ...)` without building a scaler, and a
  thread pool, per frame.
  """

  def __init__(self, size: tuple[int, int] | None = None):
    _check_size(size)
    self._size = size
    self._reformatter = av_reformatter.VideoReformatter()

  def __call__(self, frame: av.VideoFrame) -> np.ndarray:
    if self._size is None:
      return self._reformatter.reformat(frame, format='rgb24',
                                        threads=1).to_ndarray()
    # AREA averages source pixels when shrinking, which avoids the aliasing
    # that nearest/bilinear produce at 4x-8x downscaling.
    return self._reformatter.reformat(
        frame, width=self._size[1], height=self._size[0], format='rgb24',
        interpolation='AREA', threads=1).to_ndarray()


def _check_size(size: tuple[int, int] | None) -> None:
  if size is not None and (len(size) != 2 or min(size) <= 0):
    raise ValueError(f'size must be (height, width) > 0, got {size!r}.')


def iter_frames(
    path: str | os.PathLike[str],
    *,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
  """Streams decoded frames `[H, W, 3] uint8`, one at a time.

  Args:
    path: video file readable by FFmpeg (mp4, avi, mkv, webm, ...).
    size: optional (height, width) to resize every frame to; without it,
      a stream whose frame size changes part-way is a `VideoDecodeError`.
    max_frames: stop after this many frames.

  Raises:
    VideoReadError: as `read_video`; `VideoDecodeError` after the frames
      decoded before a part-way fault were yielded.
  """
  convert = RgbConverter(size)
  name = describe(path)
  container, stream = open_video(path)
  # Frame-level threading speeds decoding up without changing the output.
  stream.thread_type = 'AUTO'
  try:
    first_size = None
    for index, frame in enumerate(
        iter_decoded(container, stream, name, max_frames=max_frames)):
      if size is None:
        if first_size is None:
          first_size = (frame.height, frame.width)
        elif (frame.height, frame.width) != first_size:
          raise VideoDecodeError(
              name, f'the frame size changes from {first_size[0]}x'
              f'{first_size[1]} to {frame.height}x{frame.width} at frame '
              f'{index}; pass size=(height, width) to resize every frame',
              frames_decoded=index, frames_expected=None)
      yield convert(frame)
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
    VideoReadError: the file is missing, corrupt, not a video, has no
      frames, or (`VideoDecodeError`) stops decoding part-way.
  """
  frames = list(iter_frames(path, size=size, max_frames=max_frames))
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
    VideoReadError: as `read_video`; a `VideoDecodeError` comes after every
      frame decoded before the fault was yielded (the last chunk short).
  """
  if chunk_frames <= 0:
    raise ValueError(f'chunk_frames must be positive, got {chunk_frames}.')
  buffer = []
  try:
    for frame in iter_frames(path, size=size, max_frames=max_frames):
      buffer.append(frame)
      if len(buffer) == chunk_frames:
        yield np.stack(buffer)
        buffer = []
  except VideoDecodeError:
    if buffer:
      yield np.stack(buffer)
    raise
  if buffer:
    yield np.stack(buffer)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
  """Reads frame count, frame rate and size without decoding pixels.

  Raises:
    VideoReadError: the file is missing, corrupt, an image or has no video
      stream.
  """
  container, stream = open_video(path)
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
    container_options: dict[str, str] | None = None,
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
    container_options: muxer options, e.g. {'movflags': 'faststart'} (mp4
      with its index at the front).
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
        container = av.open(os.fspath(path), mode='w',
                            options=dict(container_options or {}))
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
