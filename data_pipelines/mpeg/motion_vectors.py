"""FFmpeg's exported motion vectors as per-pixel displacement fields.

With the codec option `flags2=+export_mvs`, every decoded P-frame carries
`MOTION_VECTORS` side data: one record per predicted block (`w` x `h` pixels
centred at `dst_x, dst_y`), whose source in the reference frame is
`src = dst + motion / motion_scale`. `rasterise` turns the records of one
frame into the paper's tau: a `[H, W, 2]` field of (dx, dy) in pixels such
that pixel i's reference location is `i - tau_i`.
"""
from __future__ import annotations

import numpy as np

# The smallest block FFmpeg exports (4x4 in H.264; MPEG-4 part 2 has 8x8 and
# 16x16): every block edge lies on this grid.
_CELL = 4
_PAST_REFERENCE = -1  # `source` of a vector pointing to an earlier frame.


def rasterise(records: np.ndarray | None, height: int, width: int
              ) -> np.ndarray:
  """Per-pixel motion `[H, W, 2] float32`, (dx, dy) = dst - src in pixels.

  Pixels that no block covers (intra-coded macroblocks carry no vector)
  get zero motion. Vectorised: records become cells of the 4-pixel grid via
  `np.repeat`, then cells become pixels.

  Args:
    records: the structured array of `side_data['MOTION_VECTORS']`, or None
      for a frame without vectors.
    height: frame height.
    width: frame width.

  Raises:
    ValueError: a record pointing at a future frame (a B-frame's backward
      vector): B-frames are not I/P GOPs.
  """
  cells_h, cells_w = -(-height // _CELL), -(-width // _CELL)
  field = np.zeros((cells_h, cells_w, 2), np.float32)
  if records is not None and len(records):
    if np.any(records['source'] != _PAST_REFERENCE):
      raise ValueError('motion vectors reference a future frame (B-frame); '
                       'only I- and P-frames are supported.')
    scale = np.maximum(records['motion_scale'].astype(np.float32), 1.0)
    # tau = dst - src = -motion / scale.
    dx = -records['motion_x'].astype(np.float32) / scale
    dy = -records['motion_y'].astype(np.float32) / scale
    bw = np.maximum(records['w'].astype(np.int64) // _CELL, 1)
    bh = np.maximum(records['h'].astype(np.int64) // _CELL, 1)
    x0 = (records['dst_x'].astype(np.int64) - records['w'] // 2) // _CELL
    y0 = (records['dst_y'].astype(np.int64) - records['h'] // 2) // _CELL
    # One row per covered cell: block index, then its cell offsets.
    counts = bw * bh
    block = np.repeat(np.arange(len(records)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts,
                                                 counts)
    cy = y0[block] + within // bw[block]
    cx = x0[block] + within % bw[block]
    inside = (cy >= 0) & (cy < cells_h) & (cx >= 0) & (cx < cells_w)
    block, cy, cx = block[inside], cy[inside], cx[inside]
    field[cy, cx, 0] = dx[block]
    field[cy, cx, 1] = dy[block]
  pixels = np.repeat(np.repeat(field, _CELL, axis=0), _CELL, axis=1)
  return np.ascontiguousarray(pixels[:height, :width])


def to_whole_pixels(field: np.ndarray) -> np.ndarray:
  """Motion rounded to whole pixels, half away from zero: `int32`.

  MPEG-4 predicts at half-pixel precision with bilinear interpolation; the
  residuals and the tracing back to the I-frame use whole pixels, so the
  reconstruction identity holds exactly on the decoded frames.
  """
  return (np.sign(field) * np.floor(np.abs(field) + 0.5)).astype(np.int32)
