"""Augmenting the code grid directly: the baselines of the learned network.

* `nearest_neighbour_crop`: the box of the code grid resized by nearest
  neighbour sampling (paper Sec. 4.5's "NN crops", after [44]);
* `flip_code_grid`: the code grid mirrored left-right. The codec's
  convolutions are not mirror-symmetric, so decoding a mirrored grid is not
  the mirrored video: the quality report shows its artifacts.

Both work on integer codes `[B, T, H, W, N]` and on float latents
`[B, T, H, W, C]` alike, and jit.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array


def _source_indices(start: Array, extent: Array, size: int,
                    out_size: int) -> Array:
  """Nearest source index of each output cell, `[B, out_size]`.

  Output cell centre `o` maps to `start*size + (o + 0.5) * extent*size /
  out_size` (`start`, `extent` as fractions of the grid, `[B]`).
  """
  centres = (jnp.arange(out_size, dtype=jnp.float32) + 0.5) / out_size
  pos = (start[:, None] + centres[None] * extent[:, None]) * size
  return jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, size - 1)


def nearest_neighbour_crop(codes: Array, box, out_hw: Sequence[int]) -> Array:
  """The `box` of each clip's code grid, resized to `out_hw` (nearest).

  Args:
    codes: `[B, T, H, W, C]` integer codes or float latents.
    box: `[4]` or `[B, 4]` (y0, x0, y1, x1) as fractions of the grid (the
      same boxes as `pixel_transforms.crop`).
    out_hw: (H', W') of the output grid; (H, W) keeps the codes' shape.

  Returns:
    `[B, T, H', W', C]` of `codes`' dtype. The full box with `out_hw = (H,
    W)` is the identity.
  """
  codes = jnp.asarray(codes)
  if codes.ndim != 5:
    raise ValueError(f'codes must be [B, T, H, W, C], got {codes.shape}.')
  b, _, h, w, _ = codes.shape
  box = jnp.broadcast_to(jnp.asarray(box, jnp.float32), (b, 4))
  out_h, out_w = (int(s) for s in out_hw)
  if out_h < 1 or out_w < 1:
    raise ValueError(f'out_hw={tuple(out_hw)} must be positive.')
  rows = _source_indices(box[:, 0], box[:, 2] - box[:, 0], h, out_h)
  cols = _source_indices(box[:, 1], box[:, 3] - box[:, 1], w, out_w)

  def crop_one(clip, r, c):  # [T, H, W, C], [H'], [W']
    return jnp.take(jnp.take(clip, r, axis=1), c, axis=2)

  return jax.vmap(crop_one)(codes, rows, cols)


def flip_code_grid(codes: Array) -> Array:
  """`[B, T, H, W, C]` codes or latents mirrored along W."""
  codes = jnp.asarray(codes)
  if codes.ndim != 5:
    raise ValueError(f'codes must be [B, T, H, W, C], got {codes.shape}.')
  return jnp.flip(codes, axis=3)
