"""JPEG and MPEG baselines with MEASURED compression rates (paper Table 1).

Compression rate (CR) here = raw bytes of the uint8 video (T*H*W*3) divided by
the bytes the encoder actually produced:
  JPEG: the bytes of every frame's JPEG file (PIL), headers and tables
    included; with `shared_tables=True` the quantisation/Huffman tables are
    counted once per video (an abbreviated JPEG stream per frame plus one
    tables-only stream), as a container sharing them would store them.
  MPEG: the bytes of the raw elementary stream the encoder wrote (the sum of
    its packet sizes, including the in-band sequence headers: SPS/PPS and
    x264's SEI for libx264, VOL for mpeg4), no container (`measure='stream'`);
    or the bytes of an in-memory .mp4 file holding the stream
    (`measure='container'`).
On small clips the fixed headers dominate: a 64x64 JPEG file is never under
~330 bytes (CR <= ~37 with optimised Huffman tables, ~17 without).

Encoder pitfalls (see shared STACK.md): FFmpeg options such as `qscale` are
silently ignored by PyAV; we set `b` (bit rate, plus `bt` so mpeg4's rate
control follows it on short clips), `qmin`/`qmax` (fixed quantiser) or `crf`
(x264). Frames go through yuv420p, so odd heights/widths are padded by edge
replication to even sizes for encoding and cropped back.
"""
from __future__ import annotations

import fractions
import io
import os
from typing import Iterable, Iterator, Optional, Sequence

from absl import logging
import av
import numpy as np
from PIL import Image

from cvision.metrics import video_quality

# Decoder for each encoder we drive.
_DECODERS = {'mpeg4': 'mpeg4', 'libx264': 'h264', 'h264': 'h264',
             'mpeg1video': 'mpeg1video', 'mpeg2video': 'mpeg2video',
             'libx265': 'hevc', 'libvpx-vp9': 'vp9', 'libsvtav1': 'libdav1d'}
# Encoders whose quality is set by a constant rate factor (`crf`).
_CRF_ENCODERS = ('libx264', 'libx265', 'libsvtav1')
# SVT-AV1 prints a 20-line banner per encode to stderr unless told (1 =
# errors only); a user's own setting wins.
os.environ.setdefault('SVT_LOG', '1')


def _check_video(video: np.ndarray) -> np.ndarray:
  video = np.asarray(video)
  if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
    raise ValueError(f'expected a [T, H, W, 3] uint8 video, got '
                     f'{video.dtype} {video.shape}.')
  return video


def jpeg_roundtrip(video_uint8: np.ndarray, quality: int, *,
                   optimize: bool = False, shared_tables: bool = False,
                   subsampling: int | str = -1) -> tuple[np.ndarray, float]:
  """Encodes each frame as JPEG (PIL) and decodes it back.

  Args:
    video_uint8: `[T, H, W, 3]` uint8.
    quality: PIL JPEG quality in [1, 95].
    optimize: optimised (per-image) Huffman tables; smaller files.
    shared_tables: count the tables once per video (see module docstring);
      cannot be combined with `optimize`, whose tables differ per frame.
    subsampling: PIL chroma subsampling (-1 = PIL default, 4:2:0).

  Returns:
    (reconstruction `[T, H, W, 3]` uint8, measured CR = raw bytes / JPEG
    bytes).
  """
  video = _check_video(video_uint8)
  if not 1 <= int(quality) <= 100:
    raise ValueError(f'quality must be in [1, 100], got {quality!r}.')
  if optimize and shared_tables:
    raise ValueError('shared_tables needs the same tables in every frame; '
                     'optimize=True makes them per frame.')
  options = dict(quality=int(quality), optimize=optimize,
                 subsampling=subsampling)
  frames, total = [], 0
  for frame in video:
    image = Image.fromarray(frame)
    buffer = io.BytesIO()
    image.save(buffer, format='JPEG', **options)
    if shared_tables:
      # streamtype 2: the same image data without the tables.
      abbreviated = io.BytesIO()
      image.save(abbreviated, format='JPEG', streamtype=2, **options)
      total += len(abbreviated.getvalue())
    else:
      total += len(buffer.getvalue())
    buffer.seek(0)
    frames.append(np.asarray(Image.open(buffer).convert('RGB')))
  if shared_tables:
    tables = io.BytesIO()  # streamtype 1: tables only.
    Image.fromarray(video[0]).save(tables, format='JPEG', streamtype=1,
                                   **options)
    total += len(tables.getvalue())
  return np.stack(frames), video.nbytes / total


def _pad_even(video: np.ndarray) -> np.ndarray:
  t, h, w, _ = video.shape
  return np.pad(video, [(0, 0), (0, h % 2), (0, w % 2), (0, 0)], mode='edge')


def _encoder_options(codec: str, bitrate: Optional[int], crf: Optional[float],
                     qscale: Optional[int]) -> dict[str, str]:
  options = _rate_options(codec, bitrate, crf, qscale)
  if codec == 'libx265':
    # x265 prints its build banner to stderr on every encode otherwise.
    options['x265-params'] = 'log-level=error'
  return options


def _rate_options(codec: str, bitrate: Optional[int], crf: Optional[float],
                  qscale: Optional[int]) -> dict[str, str]:
  settings = [s is not None for s in (bitrate, crf, qscale)]
  if sum(settings) != 1:
    raise ValueError('set exactly one of bitrate, crf, qscale; got '
                     f'bitrate={bitrate}, crf={crf}, qscale={qscale}.')
  if bitrate is not None:
    if bitrate <= 0:
      raise ValueError(f'bitrate must be > 0 bit/s, got {bitrate!r}.')
    # bt: mpeg4's default tolerance (4 Mbit) lets a short clip ignore `b`.
    return {'b': str(int(bitrate)), 'bt': str(int(bitrate))}
  if crf is not None:
    if codec not in _CRF_ENCODERS:
      raise ValueError(f'crf is a setting of {_CRF_ENCODERS}, not of '
                       f'{codec!r}.')
    return {'crf': str(crf)}
  if not 1 <= qscale <= 51:
    raise ValueError(f'qscale must be in [1, 51], got {qscale!r}.')
  if codec in ('libx264', 'libx265'):
    return {'qp': str(int(qscale))}
  return {'qmin': str(int(qscale)), 'qmax': str(int(qscale))}


def _frames_in(video: np.ndarray) -> Iterator[av.VideoFrame]:
  for t, frame in enumerate(video):
    out = av.VideoFrame.from_ndarray(frame, format='rgb24').reformat(
        format='yuv420p')
    out.pts = t
    yield out


def _to_rgb(frames: Iterable[av.VideoFrame]) -> list[np.ndarray]:
  return [f.to_ndarray(format='rgb24') for f in frames]


def _stream_roundtrip(video, codec, options, fps):
  """Encodes to a raw elementary stream; returns (frames, stream bytes)."""
  encoder = av.CodecContext.create(codec, 'w')
  encoder.width, encoder.height = video.shape[2], video.shape[1]
  encoder.pix_fmt = 'yuv420p'
  encoder.time_base = fractions.Fraction(1, fps)
  encoder.framerate = fractions.Fraction(fps, 1)
  encoder.options = options
  packets = []
  for frame in _frames_in(video):
    packets.extend(encoder.encode(frame))
  packets.extend(encoder.encode(None))  # Flush (B-frames, lookahead).
  size = sum(p.size for p in packets)
  decoder = av.CodecContext.create(_DECODERS.get(codec, codec), 'r')
  frames = []
  for packet in packets:
    frames.extend(_to_rgb(decoder.decode(packet)))
  frames.extend(_to_rgb(decoder.decode(None)))
  return frames, size


def _container_roundtrip(video, codec, options, fps):
  """Encodes into an in-memory .mp4; returns (frames, file bytes)."""
  buffer = io.BytesIO()
  with av.open(buffer, mode='w', format='mp4') as container:
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = video.shape[2], video.shape[1]
    stream.pix_fmt = 'yuv420p'
    stream.codec_context.options = options
    for frame in _frames_in(video):
      container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
  size = len(buffer.getvalue())
  buffer.seek(0)
  with av.open(buffer, mode='r') as container:
    frames = _to_rgb(container.decode(video=0))
  return frames, size


def mpeg_roundtrip(video_uint8: np.ndarray, codec: str = 'mpeg4', *,
                   bitrate: Optional[int] = None, crf: Optional[float] = None,
                   qscale: Optional[int] = None, fps: int = 25,
                   measure: str = 'stream') -> tuple[np.ndarray, float]:
  """Encodes a clip with an FFmpeg video encoder (PyAV) and decodes it back.

  Args:
    video_uint8: `[T, H, W, 3]` uint8.
    codec: 'mpeg4', 'libx264', 'libx265', 'libsvtav1' (other PyAV encoders
      with a known decoder).
    bitrate: target bit rate in bit/s (at `fps`).
    crf: constant rate factor of x264/x265 ([0, 51]) or SVT-AV1 ([1, 63]);
      higher = smaller.
    qscale: fixed quantiser (mpeg4: qmin=qmax, 2..31; x264: qp).
    fps: frame rate the bit rate refers to.
    measure: 'stream' (raw elementary stream bytes) or 'container' (.mp4
      file bytes).

  Exactly one of `bitrate`, `crf`, `qscale` must be set.

  Returns:
    (reconstruction `[T, H, W, 3]` uint8, measured CR = raw bytes / encoded
    bytes).
  """
  video = _check_video(video_uint8)
  options = _encoder_options(codec, bitrate, crf, qscale)
  encoded = _pad_even(video)
  if measure == 'stream':
    frames, size = _stream_roundtrip(encoded, codec, options, fps)
  elif measure == 'container':
    frames, size = _container_roundtrip(encoded, codec, options, fps)
  else:
    raise ValueError(f"measure must be 'stream' or 'container', got "
                     f'{measure!r}.')
  if len(frames) != len(video):
    raise RuntimeError(f'{codec} returned {len(frames)} frames for '
                       f'{len(video)}.')
  recon = np.stack(frames)[:, :video.shape[1], :video.shape[2]]
  return recon, video.nbytes / size


def resize_video(video: np.ndarray, height: int, width: int) -> np.ndarray:
  """Frames resized bicubically (FFmpeg's scaler, through PyAV)."""
  return np.stack([av.VideoFrame.from_ndarray(f, format='rgb24').reformat(
      width=width, height=height, interpolation='BICUBIC').to_ndarray()
                   for f in video])


def downscaled_roundtrip(video_uint8: np.ndarray, scale: float, codec: str,
                         **options) -> tuple[np.ndarray, float]:
  """`mpeg_roundtrip` at `scale` times the size, upscaled back.

  What a user does to reach rates an encoder cannot at full size: on small
  clips a stream's headers set a floor on its bytes (H.264 stops near CR 190
  on 16x64x64 clips), and fewer pixels lower it. The CR is the full-size raw
  bytes over the bytes written; the reconstruction is scored at full size.
  """
  video = _check_video(video_uint8)
  _, h, w, _ = video.shape
  small = resize_video(video, max(2, round(h * scale)), max(2, round(w * scale)))
  recon, rate = mpeg_roundtrip(small, codec, **options)
  return resize_video(recon, h, w), video.nbytes / (small.nbytes / rate)


DEFAULT_JPEG_QUALITIES = (95, 75, 50, 25, 10, 5, 1)
DEFAULT_MPEG4_BITRATES = (400_000, 160_000, 80_000, 40_000, 20_000, 10_000,
                          5_000)
DEFAULT_X264_CRFS = (18, 23, 28, 33, 38, 43, 48, 51)


def sweep(videos: Sequence[np.ndarray],
          jpeg_qualities: Sequence[int] = DEFAULT_JPEG_QUALITIES,
          mpeg4_bitrates: Sequence[int] = DEFAULT_MPEG4_BITRATES,
          x264_crfs: Sequence[float] = DEFAULT_X264_CRFS, *,
          mpeg4_qscales: Sequence[int] = (),
          downscales: Sequence[float] = (),
          x265_crfs: Sequence[float] = (),
          av1_crfs: Sequence[float] = (),
          jpeg_options: Optional[dict] = None,
          mpeg_options: Optional[dict] = None) -> Iterator[dict]:
  """Rate-distortion rows of the baselines over a set of videos.

  Args:
    videos: `[T, H, W, 3]` uint8 videos (or a `[B, T, H, W, 3]` array).
    jpeg_qualities, mpeg4_bitrates, x264_crfs: settings to sweep (empty to
      skip a codec).
    mpeg4_qscales: MPEG-4 part 2 at a fixed quantiser (2..31). Its rate
      control stops lowering the rate on short clips (a floor far above the
      bit rate asked for), so its highest CRs are reached only this way.
    downscales: sizes (fractions of the side, e.g. 0.5) at which the H.264
      and fixed-quantiser MPEG-4 settings are run again, downscaled before
      encoding and upscaled after (`downscaled_roundtrip`): their rows, with
      `,xSCALE` in the setting, reach higher CRs.
    x265_crfs, av1_crfs: H.265 (libx265, crf 0..51) and AV1 (libsvtav1, crf
      1..63) settings; skipped when this PyAV build lacks the encoder.
    jpeg_options: extra keyword arguments of `jpeg_roundtrip`.
    mpeg_options: extra keyword arguments of `mpeg_roundtrip` (fps, measure).

  Yields:
    {'codec', 'setting', 'cr', 'psnr', 'ssim', 'mae'}: cr is the total raw
    bytes over the total encoded bytes of all videos; psnr (dB), ssim and
    mae (in [0, 1] units) are means over the videos.
  """
  jpeg_options = jpeg_options or {}
  mpeg_options = mpeg_options or {}
  runs = [('jpeg', f'q={q}',
           lambda v, q=q: jpeg_roundtrip(v, q, **jpeg_options))
          for q in jpeg_qualities]
  runs += [('mpeg4', f'b={b}', lambda v, b=b: mpeg_roundtrip(
      v, 'mpeg4', bitrate=b, **mpeg_options)) for b in mpeg4_bitrates]
  runs += [('mpeg4', f'q={q}', lambda v, q=q: mpeg_roundtrip(
      v, 'mpeg4', qscale=q, **mpeg_options)) for q in mpeg4_qscales]
  runs += [('libx264', f'crf={c}', lambda v, c=c: mpeg_roundtrip(
      v, 'libx264', crf=c, **mpeg_options)) for c in x264_crfs]
  for scale in downscales:
    runs += [('mpeg4', f'q={q},x{scale:g}',
              lambda v, q=q, f=scale: downscaled_roundtrip(
                  v, f, 'mpeg4', qscale=q, **mpeg_options))
             for q in mpeg4_qscales]
    runs += [('libx264', f'crf={c},x{scale:g}',
              lambda v, c=c, f=scale: downscaled_roundtrip(
                  v, f, 'libx264', crf=c, **mpeg_options))
             for c in x264_crfs]
  for codec, crfs in (('libx265', x265_crfs), ('libsvtav1', av1_crfs)):
    if crfs and codec not in av.codecs_available:
      logging.warning('PyAV has no %s encoder: its rows are skipped.', codec)
      continue
    runs += [(codec, f'crf={c}', lambda v, c=c, codec=codec: mpeg_roundtrip(
        v, codec, crf=c, **mpeg_options)) for c in crfs]
  for name, setting, roundtrip in runs:
    raw = encoded = 0.0
    originals, recons = [], []
    for video in videos:
      recon, rate = roundtrip(video)
      raw += video.nbytes
      encoded += video.nbytes / rate
      originals.append(video)
      recons.append(recon)
    metrics = {
        k: float(np.mean(np.concatenate([np.atleast_1d(
            fn(r, o)) for r, o in zip(recons, originals)])))
        for k, fn in (('psnr', video_quality.psnr),
                      ('ssim', video_quality.ssim),
                      ('mae', video_quality.mae))
    }
    yield {'codec': name, 'setting': setting, 'cr': raw / encoded, **metrics}
