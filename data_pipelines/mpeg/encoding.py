"""Encoding RGB frames to MPEG-4 part 2 with the GOP structure the paper uses.

An I-frame every `gop_size` frames, P-frames in between, no B-frames, and no
extra I-frames at scene cuts (FFmpeg inserts them by default, which would
break the fixed GOP). The quantiser is fixed (`qmin = qmax`): FFmpeg's mpeg4
encoder otherwise rate-controls to a default bit rate, so the residuals'
quality would depend on the clip's size and content.
"""
from __future__ import annotations

import io

import av
import numpy as np

GOP_SIZE = 12  # The paper (after TEAM-Net): an I-frame, then 11 P-frames.
DEFAULT_QUANTIZER = 4  # MPEG-4 quantiser, 1 (best) .. 31.
CODEC = 'mpeg4'  # FFmpeg's MPEG-4 part 2 encoder and decoder.
_NO_SCENE_CUTS = '1000000000'  # scenechange_threshold above any cost.


def encoder_options(gop_size: int = GOP_SIZE,
                    quantizer: int = DEFAULT_QUANTIZER,
                    four_motion_vectors: bool = True) -> dict[str, str]:
  """FFmpeg `mpeg4` options for I/P-only GOPs of `gop_size` frames.

  `four_motion_vectors` lets a macroblock carry four 8x8 vectors (`+mv4`),
  which follows rotation and scaling better than one 16x16 vector.
  """
  if gop_size < 2:
    raise ValueError(f'gop_size must be >= 2 (an I-frame and a P-frame), got '
                     f'{gop_size}.')
  if not 1 <= quantizer <= 31:
    raise ValueError(f'quantizer must be in [1, 31], got {quantizer}.')
  options = {'g': str(gop_size), 'bf': '0', 'qmin': str(quantizer),
             'qmax': str(quantizer), 'sc_threshold': _NO_SCENE_CUTS}
  if four_motion_vectors:
    options['flags'] = '+mv4'
  return options


def encode_mpeg4(frames: np.ndarray, *, gop_size: int = GOP_SIZE,
                 quantizer: int = DEFAULT_QUANTIZER, fps: int = 25,
                 four_motion_vectors: bool = True) -> bytes:
  """Encodes `[T, H, W, 3] uint8` RGB frames to an MPEG-4 part 2 mp4, in memory.

  Raises:
    ValueError: frames of another shape or dtype, or an odd height or width
      (4:2:0 chroma needs even sizes; crop or resize first).
  """
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f'frames must be [T, H, W, 3] uint8, got {frames.shape} '
                     f'{frames.dtype}.')
  t, h, w, _ = frames.shape
  if t == 0:
    raise ValueError('No frames to encode.')
  if h % 2 or w % 2:
    raise ValueError(f'MPEG-4 with 4:2:0 chroma needs an even frame size, got '
                     f'{h}x{w}; crop or resize the frames first.')
  buffer = io.BytesIO()
  with av.open(buffer, mode='w', format='mp4') as container:
    stream = container.add_stream(CODEC, rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, 'yuv420p'
    stream.options = encoder_options(gop_size, quantizer, four_motion_vectors)
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(
          np.ascontiguousarray(frame), format='rgb24')):
        container.mux(packet)
    for packet in stream.encode():  # Flush.
      container.mux(packet)
  return buffer.getvalue()
