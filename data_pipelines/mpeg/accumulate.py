r"""Residuals against motion compensation, and their accumulation (Eq. 1-2).

With mu_t(i) = i - tau_t(i) the reference location of pixel i of frame t in
frame t-1 (clipped to the frame), a P-frame is
`I_t(i) = I_{t-1}(mu_t(i)) + delta_t(i)`. Tracing every pixel back to the
GOP's I-frame (paper Eq. 1), `Gamma^{(t,0)} = mu_1 o ... o mu_t`, gives the
accumulated motion `Pi_t(i) = i - Gamma^{(t,0)}(i)` and the accumulated
residual `Delta_t(i) = sum_{j<t} delta_j(Gamma^{(t,j)}(i)) + delta_t(i)`
(Eq. 2), so that

    I_t(i) = I_0(i - Pi_t(i)) + Delta_t(i).

Both follow one feed-forward recurrence, linear in the GOP length and
vectorised over pixels: `Gamma^{(t,0)}(i) = Gamma^{(t-1,0)}(mu_t(i))` and
`Delta_t(i) = Delta_{t-1}(mu_t(i)) + delta_t(i)`. Locations are flat pixel
indices (`row * W + col`), so every gather is one `np.take`.
"""
from __future__ import annotations

import numpy as np


def reference_locations(motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """mu(i) = i - tau(i), clipped to the frame: `(rows, cols)`, `[H, W]` int.

  Args:
    motion: `[H, W, 2]` whole-pixel motion (dx, dy), as
      `motion_vectors.to_whole_pixels` gives.
  """
  h, w = motion.shape[:2]
  rows = np.clip(np.arange(h)[:, None] - motion[..., 1], 0, h - 1)
  cols = np.clip(np.arange(w)[None, :] - motion[..., 0], 0, w - 1)
  return rows, cols


def _flat_references(motion: np.ndarray) -> np.ndarray:
  """`[P, H * W]` flat indices of mu_t for each P-frame's `[H, W, 2]`."""
  p, h, w = motion.shape[:3]
  rows = np.clip(np.arange(h)[None, :, None] - motion[..., 1], 0, h - 1)
  cols = np.clip(np.arange(w)[None, None, :] - motion[..., 0], 0, w - 1)
  return (rows * w + cols).reshape(p, h * w)


def residuals(frames: np.ndarray, motion: np.ndarray) -> np.ndarray:
  """P-frames minus their motion-compensated predictions.

  Args:
    frames: `[1 + P, H, W, C] uint8`, the I-frame then the P-frames.
    motion: `[P, H, W, 2]` whole-pixel motion of the P-frames.

  Returns:
    `[P, H, W, C] int16`: `delta_t = I_t - I_{t-1}(mu_t)`.
  """
  p, h, w, c = frames[1:].shape
  references = _flat_references(motion)
  previous = frames[:-1].reshape(p, h * w, c)
  predicted = np.stack([np.take(previous[t], references[t], axis=0)
                        for t in range(p)])
  return (frames[1:].astype(np.int16)
          - predicted.reshape(p, h, w, c).astype(np.int16))


def accumulate(motion: np.ndarray, residual: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
  """Accumulated motion and residuals of one GOP (Eq. 1-2).

  Args:
    motion: `[P, H, W, 2]` whole-pixel motion (dx, dy) of the P-frames.
    residual: `[P, H, W, C]` residuals (see `residuals`).

  Returns:
    `(Pi, Delta)`: `[P, H, W, 2] int16` motion from the I-frame, (dx, dy),
    and `[P, H, W, C] int16` residuals against the I-frame.
  """
  p, h, w, c = residual.shape
  references = _flat_references(motion)
  traced = np.arange(h * w)  # Gamma^{(0,0)} = id, as flat indices.
  total = np.zeros((h * w, c), np.int16)
  traced_all = np.empty((p, h * w), np.int64)
  acc_residual = np.empty((p, h * w, c), np.int16)
  flat_residual = residual.reshape(p, h * w, c)
  for t in range(p):
    traced = traced[references[t]]
    # |Delta| <= 255 (it is I_t - I_0 at traced pixels): int16 is exact.
    total = np.take(total, references[t], axis=0) + flat_residual[t]
    traced_all[t] = traced
    acc_residual[t] = total
  here = np.arange(h * w)
  acc_motion = np.stack([here % w - traced_all % w,
                         here // w - traced_all // w], axis=-1)
  return (acc_motion.reshape(p, h, w, 2).astype(np.int16),
          acc_residual.reshape(p, h, w, c))


def reconstruct_from_i_frame(i_frame: np.ndarray, acc_motion: np.ndarray,
                             acc_residual: np.ndarray) -> np.ndarray:
  """`I_0(i - Pi_t(i)) + Delta_t(i)` for every t: `[P, H, W, C] int32`."""
  h, w = i_frame.shape[:2]
  rows = np.arange(h)[None, :, None] - acc_motion[..., 1]
  cols = np.arange(w)[None, None, :] - acc_motion[..., 0]
  return i_frame.astype(np.int32)[rows, cols] + acc_residual
