"""FFmpeg's exported motion vectors as per-pixel displacement fields.

With the codec option `flags2=+export_mvs`, every decoded P-frame carries
`MOTION_VECTORS` side data: one record per predicted block (`w` x `h` pixels
centred at `dst_x, dst_y`), whose source in the reference frame is
`src = dst + motion / motion_scale`. `rasterise` turns the records of one
frame into the paper's tau: a `[H, W, 2]` field of (dx, dy) in pixels such
that pixel i's reference location is `i - tau_i`.

Every block edge lies on a grid of 4-pixel cells, so the records of all
frames of a video are scattered at once into a cell grid
(`rasterise_cells`), which is 16 times smaller than the pixel grid; rounding
to whole pixels happens there, and `cells_to_pixels` expands cells to pixels
by `np.repeat`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The smallest block FFmpeg exports (4x4 in H.264; MPEG-4 part 2 has 8x8 and
# 16x16): every block edge lies on this grid.
CELL = 4
_PAST_REFERENCE = -1  # `source` of a vector pointing to an earlier frame.


def rasterise_cells(records_per_frame: Sequence[np.ndarray | None],
                    height: int, width: int) -> np.ndarray:
  """Motion of N frames on the 4-pixel cell grid.

  `[N, ceil(H/4), ceil(W/4), 2] float32`, (dx, dy) = dst - src in pixels.
  Cells that no block covers (intra-coded macroblocks carry no vector) get
  zero motion. The records of all frames are scattered together, one
  scatter per block shape.

  Args:
    records_per_frame: per frame, the structured array of
      `side_data['MOTION_VECTORS']`, or None for a frame without vectors.
    height: frame height.
    width: frame width.

  Raises:
    ValueError: a record pointing at a future frame (a B-frame's backward
      vector): B-frames are not I/P GOPs.
  """
  cells_h, cells_w = -(-height // CELL), -(-width // CELL)
  num_cells = len(records_per_frame) * cells_h * cells_w
  # (dx, dy) float32 pairs viewed as one int64 per cell, so each scatter
  # moves whole pairs; one cell past the end takes writes outside a frame.
  field = np.zeros((num_cells + 1, 2), np.float32)
  present = [(i, r) for i, r in enumerate(records_per_frame)
             if r is not None and len(r)]
  if present:
    records = np.concatenate([r for _, r in present])
    frame_of = np.repeat(np.array([i for i, _ in present], np.int32),
                         [len(r) for _, r in present])
    if np.any(records['source'] != _PAST_REFERENCE):
      raise ValueError('motion vectors reference a future frame (B-frame); '
                       'only I- and P-frames are supported.')
    scale = np.maximum(records['motion_scale'].astype(np.float32), 1.0)
    # tau = dst - src = -motion / scale.
    tau = -np.stack([records['motion_x'], records['motion_y']],
                    axis=-1).astype(np.float32) / scale[:, None]
    _scatter_blocks(field.view(np.int64)[:, 0], tau.view(np.int64)[:, 0],
                    records, frame_of, cells_h, cells_w)
  return field[:num_cells].reshape(len(records_per_frame), cells_h, cells_w,
                                   2)


def _scatter_blocks(field: np.ndarray, values: np.ndarray,
                    records: np.ndarray, frame_of: np.ndarray, cells_h: int,
                    cells_w: int) -> None:
  """`field[cell] = values[block]` for every cell of every block.

  Blocks of one frame partition it, so they can be written in any order:
  one scatter per block shape (a handful: 16x16, 16x8, 8x8, ...), each a
  broadcast of the blocks' top-left cells with the shape's cell offsets.
  `field` is flat over (frame, row, column) plus one spare last cell.
  """
  outside = len(field) - 1
  block_w = np.maximum(records['w'].astype(np.int32) // CELL, 1)
  block_h = np.maximum(records['h'].astype(np.int32) // CELL, 1)
  x0 = (records['dst_x'].astype(np.int32) - records['w'] // 2) // CELL
  y0 = (records['dst_y'].astype(np.int32) - records['h'] // 2) // CELL
  first_cell = frame_of * (cells_h * cells_w)
  shapes = block_h * 256 + block_w
  for shape in np.unique(shapes):
    bh, bw = divmod(int(shape), 256)
    chosen = np.flatnonzero(shapes == shape)
    cy = y0[chosen, None, None] + np.arange(bh, dtype=np.int32)[:, None]
    cx = x0[chosen, None, None] + np.arange(bw, dtype=np.int32)[None, :]
    inside = (cy >= 0) & (cy < cells_h) & (cx >= 0) & (cx < cells_w)
    cells = np.where(inside, first_cell[chosen, None, None] + cy * cells_w
                     + cx, outside)
    field[cells] = values[chosen, None, None]


def cells_to_pixels(cells: np.ndarray, height: int, width: int
                    ) -> np.ndarray:
  """`[..., cells_h, cells_w, 2]` -> `[..., H, W, 2]`, each cell 4x4 pixels."""
  pixels = np.repeat(np.repeat(cells, CELL, axis=-2), CELL, axis=-3)
  if pixels.shape[-3:-1] != (height, width):
    pixels = np.ascontiguousarray(pixels[..., :height, :width, :])
  return pixels


def rasterise(records: np.ndarray | None, height: int, width: int
              ) -> np.ndarray:
  """Per-pixel motion of one frame `[H, W, 2] float32`, (dx, dy) = dst - src.

  See `rasterise_cells`; zero where no block carries a vector.
  """
  return cells_to_pixels(rasterise_cells([records], height, width),
                         height, width)[0]


def to_whole_pixels(field: np.ndarray) -> np.ndarray:
  """Motion rounded to whole pixels, half away from zero: `int16`.

  MPEG-4 predicts at half-pixel precision with bilinear interpolation; the
  residuals and the tracing back to the I-frame use whole pixels, so the
  reconstruction identity holds exactly on the decoded frames.
  """
  return (np.sign(field) * np.floor(np.abs(field) + 0.5)).astype(np.int16)
