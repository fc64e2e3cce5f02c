"""Video -> GOPs of I-frame, motion vectors and residuals, raw and accumulated.

  gops = extract_gops('clip.mp4')            # or the bytes of a video file
  gops.i_frames                      # [G, H, W, 3] uint8
  gops.motion_vectors                # [G, P, H, W, 2] float32, (dx, dy) px
  gops.residuals                     # [G, P, H, W, 3] int16
  gops.accumulated_motion_vectors    # [G, P, H, W, 2] int16, from I-frame
  gops.accumulated_residuals         # [G, P, H, W, 3] int16
  gops.reencoded, gops.reencode_reason

P = gop_size - 1 (11 for the paper's GOP of 12). A source that is not MPEG-4
part 2 with that GOP and no B-frames (e.g. H.264 with B-frames, or MPEG-4
with scene-cut I-frames) is decoded and re-encoded with `encoding.
encode_mpeg4` first: the result says so (`reencoded`, `reencode_reason`) and
a warning names the file; `allow_reencode=False` makes it an error instead.
Trailing frames that do not fill a GOP are dropped (`dropped_frames`).
Corrupt files, still images, files without video and odd frame sizes raise
`MpegExtractionError` naming the source (files are opened and checked by
`data_pipelines.video_io`). A file that stops decoding part-way (cut short)
raises too, unless `keep_truncated=True` keeps the complete GOPs decoded
before the fault and says so (`truncated`).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Union

from absl import logging
import numpy as np

from data_pipelines import video_io
from data_pipelines.mpeg import accumulate as accumulate_lib
from data_pipelines.mpeg import encoding
from data_pipelines.mpeg import motion_vectors
from data_pipelines.mpeg.errors import MpegExtractionError
from data_pipelines.mpeg.errors import ReencodeRefusedError
from data_pipelines.mpeg.errors import TooShortError

Source = Union[str, os.PathLike, bytes]
I_FRAME, P_FRAME, B_FRAME = 1, 2, 3  # `frame.pict_type` values.
_TYPE_NAMES = {I_FRAME: 'I', P_FRAME: 'P', B_FRAME: 'B'}


@dataclasses.dataclass(frozen=True)
class Gops:
  """The compressed-domain modalities of a video's complete GOPs.

  Attributes:
    i_frames: `[G, H, W, 3] uint8`, the decoded I-frames.
    motion_vectors: `[G, P, H, W, 2] float32` (dx, dy) in pixels (half-pixel
      steps for MPEG-4): pixel i of P-frame t comes from `i - tau` in frame
      t-1.
    residuals: `[G, P, H, W, 3] int16`, each P-frame minus its prediction
      from the previous frame moved by the whole-pixel motion.
    accumulated_motion_vectors: `[G, P, H, W, 2] int16`, motion traced back
      to the I-frame (Eq. 1-2), whole pixels.
    accumulated_residuals: `[G, P, H, W, 3] int16`, residuals against the
      I-frame moved by the accumulated motion (Eq. 2).
    decoded: `[G, 1 + P, H, W, 3] uint8` decoded frames when asked for
      (`keep_decoded=True`), else None.
    source: the file name, or a description of in-memory bytes.
    codec: the source's codec as FFmpeg names it (before any re-encoding).
    reencoded: whether the source was re-encoded to MPEG-4 part 2 first.
    reencode_reason: why it was ('' when it was not).
    num_frames: frames decoded from the (re-encoded) stream.
    dropped_frames: trailing frames that did not fill a GOP.
    truncated: '' or, with `keep_truncated=True`, why decoding stopped
      before the end of the source.
  """
  i_frames: np.ndarray
  motion_vectors: np.ndarray
  residuals: np.ndarray
  accumulated_motion_vectors: np.ndarray
  accumulated_residuals: np.ndarray
  decoded: np.ndarray | None
  source: str
  codec: str
  reencoded: bool
  reencode_reason: str
  num_frames: int
  dropped_frames: int
  truncated: str = ''

  @property
  def num_gops(self) -> int:
    return self.i_frames.shape[0]


@dataclasses.dataclass
class _Decoded:
  codec: str
  height: int
  width: int
  pict_types: list[int]
  frames: list[np.ndarray]
  vectors: list[np.ndarray | None]
  truncated: str = ''


def _describe(source: Source) -> str:
  if isinstance(source, (bytes, bytearray)):
    return f'<{len(source)} bytes in memory>'
  return repr(os.fspath(source))


def _decode(source: Source, name: str, *, size: tuple[int, int] | None,
            max_frames: int | None, keep_truncated: bool = False) -> _Decoded:
  """Decodes RGB frames (resized to `size`), picture types and vectors.

  One pass: motion vectors are exported only from MPEG-4 part 2 (any other
  codec is re-encoded, and its vectors would go unused); `height` and
  `width` are the source's, the frames are at `size` when it is given.
  """
  try:
    container, stream = video_io.open_video(source)
  except video_io.VideoReadError as e:
    raise MpegExtractionError(name, e.reason) from e
  # Frames of the asked size are converted as they are (no scaling flags),
  # so an MPEG-4 source of the right size keeps its exact pixels.
  as_is = video_io.RgbConverter()
  resized = video_io.RgbConverter(size) if size is not None else None
  try:
    ctx = stream.codec_context
    export_mvs = ctx.name == encoding.CODEC
    if export_mvs:
      ctx.options = {'flags2': '+export_mvs'}
    out = _Decoded(codec=ctx.name, height=0, width=0, pict_types=[],
                   frames=[], vectors=[])
    for frame in video_io.iter_decoded(container, stream, name,
                                       max_frames=max_frames):
      out.height, out.width = frame.height, frame.width
      same = size is None or (frame.height, frame.width) == tuple(size)
      out.frames.append(as_is(frame) if same else resized(frame))
      side = frame.side_data.get('MOTION_VECTORS') if export_mvs else None
      out.pict_types.append(int(frame.pict_type))
      out.vectors.append(side.to_ndarray() if side is not None else None)
  except video_io.VideoDecodeError as e:
    if not keep_truncated:
      raise MpegExtractionError(name, e.reason) from e
    out.truncated = e.reason
  except video_io.VideoReadError as e:
    raise MpegExtractionError(name, e.reason) from e
  finally:
    container.close()
  return out


def _structure_problem(pict_types: list[int], gop_size: int) -> str:
  """Why the stream is not I/P GOPs of `gop_size`, or '' when it is."""
  if any(t == B_FRAME for t in pict_types):
    return 'it has B-frames'
  if pict_types[0] != I_FRAME:
    return 'its first frame is not an I-frame'
  starts = [i for i, t in enumerate(pict_types) if t == I_FRAME]
  lengths = np.diff(starts + [len(pict_types)])
  # The last GOP may be cut short by the end of the video.
  if np.any(lengths[:-1] != gop_size) or lengths[-1] > gop_size:
    return (f'its GOPs have {sorted(set(lengths.tolist()))} frames, not '
            f'{gop_size}')
  odd = sorted({_TYPE_NAMES.get(t, str(t)) for t in pict_types} - {'I', 'P'})
  if odd:
    return f'it has {odd} frames'
  return ''


def _check_asked_size(name: str, size) -> None:
  if size is not None and (len(size) != 2 or min(size) <= 0 or size[0] % 2
                           or size[1] % 2):
    raise MpegExtractionError(name, f'size={size!r} must be an even '
                              '(height, width) > 0 (4:2:0 chroma).')


def _check_size(name: str, height: int, width: int, size) -> None:
  if size is None and (height % 2 or width % 2):
    raise MpegExtractionError(
        name, f'odd frame size {height}x{width}: MPEG-4 with 4:2:0 chroma '
        'needs even sizes; pass size=(height, width) to resize.')


def extract_gops(source: Source, *, gop_size: int = encoding.GOP_SIZE,
                 allow_reencode: bool = True,
                 size: tuple[int, int] | None = None,
                 max_gops: int | None = None,
                 quantizer: int = encoding.DEFAULT_QUANTIZER,
                 keep_decoded: bool = False,
                 keep_truncated: bool = False) -> Gops:
  """Extracts the complete GOPs of `source` (a path or a file's bytes).

  Args:
    source: a video file (any container FFmpeg reads), or its bytes.
    gop_size: frames per GOP, an I-frame then `gop_size - 1` P-frames.
    allow_reencode: re-encode a source that is not MPEG-4 part 2 in that GOP
      structure (logged, and recorded in the result); if False, refuse it.
    size: optional even (height, width); a source of another size is
      resized, which means re-encoding.
    max_gops: keep at most this many GOPs (None: all complete GOPs).
    quantizer: MPEG-4 quantiser of a re-encoding.
    keep_decoded: also return the decoded frames (`Gops.decoded`).
    keep_truncated: a source that stops decoding part-way gives the complete
      GOPs decoded before the fault (`Gops.truncated` says why) instead of
      an error.

  Raises:
    MpegExtractionError: the source is missing, corrupt, a still image, has
      no video, stops decoding part-way (unless `keep_truncated`), has an
      odd frame size, has fewer frames than one GOP (`TooShortError`), or
      needs re-encoding and `allow_reencode` is False
      (`ReencodeRefusedError`).
  """
  name = _describe(source)
  _check_asked_size(name, size)
  max_frames = None if max_gops is None else max_gops * gop_size
  decoded = _decode(source, name, size=size, max_frames=max_frames,
                    keep_truncated=keep_truncated)
  truncated = decoded.truncated
  _check_size(name, decoded.height, decoded.width, size)
  if decoded.codec != encoding.CODEC:
    problem = f'it is {decoded.codec}, not MPEG-4 part 2 ({encoding.CODEC})'
  else:
    problem = _structure_problem(decoded.pict_types, gop_size)
  if not problem and size is not None and tuple(size) != (decoded.height,
                                                          decoded.width):
    problem = (f'it is {decoded.height}x{decoded.width}, resized to '
               f'{size[0]}x{size[1]}')
  source_codec = decoded.codec
  if problem:
    if not allow_reencode:
      raise ReencodeRefusedError(name, problem, gop_size)
    logging.warning('%s: %s; re-encoding to MPEG-4 part 2 (GOP %d, no '
                    'B-frames, quantiser %d).', name, problem, gop_size,
                    quantizer)
    # The frames are already at `size`: the source is decoded once.
    data = encoding.encode_mpeg4(np.stack(decoded.frames),
                                 gop_size=gop_size, quantizer=quantizer)
    decoded = _decode(data, f'{name} (re-encoded)', size=None,
                      max_frames=max_frames)
    again = _structure_problem(decoded.pict_types, gop_size)
    if again:  # The encoder settings guarantee the structure; never silent.
      raise MpegExtractionError(name, f'after re-encoding, {again}')
  if truncated:
    logging.warning('%s: keeping the complete GOPs before a decode error: '
                    '%s', name, truncated)
  return _split_gops(decoded, gop_size, name=name, codec=source_codec,
                     reencode_reason=problem, keep_decoded=keep_decoded,
                     truncated=truncated)


def _split_gops(decoded: _Decoded, gop_size: int, *, name: str, codec: str,
                reencode_reason: str, keep_decoded: bool,
                truncated: str = '') -> Gops:
  num_frames = len(decoded.frames)
  num_gops = num_frames // gop_size
  if num_gops == 0:
    cut = f' (decoding stopped: {truncated})' if truncated else ''
    raise TooShortError(
        name, f'{num_frames} frames, fewer than one GOP of {gop_size}{cut}.')
  frames = np.stack(decoded.frames[:num_gops * gop_size])
  h, w = frames.shape[1:3]
  frames = frames.reshape(num_gops, gop_size, h, w, 3)
  # All P-frames of all GOPs at once: vectors on the 4-pixel cell grid,
  # rounded there, expanded to pixels; then every gather in one `np.take`.
  cells = motion_vectors.rasterise_cells(
      [decoded.vectors[g * gop_size + t]
       for g in range(num_gops) for t in range(1, gop_size)], h, w)
  cells = cells.reshape(num_gops, gop_size - 1, *cells.shape[1:])
  motion = motion_vectors.cells_to_pixels(cells, h, w)
  whole = motion_vectors.cells_to_pixels(
      motion_vectors.to_whole_pixels(cells), h, w)
  residuals, acc_motion, acc_residuals = accumulate_lib.compensate(frames,
                                                                   whole)
  return Gops(
      i_frames=np.ascontiguousarray(frames[:, 0]),
      motion_vectors=motion,
      residuals=residuals,
      accumulated_motion_vectors=acc_motion,
      accumulated_residuals=acc_residuals,
      decoded=frames if keep_decoded else None,
      source=name,
      codec=codec,
      reencoded=bool(reencode_reason),
      reencode_reason=reencode_reason,
      num_frames=num_frames,
      dropped_frames=num_frames - num_gops * gop_size,
      truncated=truncated)
