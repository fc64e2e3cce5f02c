r"""Residuals against motion compensation, and their accumulation (Eq. 1-2).

With mu_t(i) = i - tau_t(i) the reference location of pixel i of frame t in
frame t-1 (clipped to the frame), a P-frame is
`I_t(i) = I_{t-1}(mu_t(i)) + delta_t(i)`. Tracing every pixel back to the
GOP's I-frame (paper Eq. 1), `Gamma^{(t,0)} = mu_1 o ... o mu_t`, gives the
accumulated motion `Pi_t(i) = i - Gamma^{(t,0)}(i)` and the accumulated
residual `Delta_t(i) = sum_{j<t} delta_j(Gamma^{(t,j)}(i)) + delta_t(i)`
(Eq. 2), so that

    I_t(i) = I_0(i - Pi_t(i)) + Delta_t(i).

Locations are flat pixel indices (`row * W + col`), so every gather is one
`np.take`, over all GOPs and pixels at once. Only the composition of Gamma
loops, over the P-frames of a GOP (it is sequential): `Gamma^{(t,0)}(i) =
Gamma^{(t-1,0)}(mu_t(i))`. Eq. 2's sum telescopes to `Delta_t(i) = I_t(i) -
I_0(Gamma^{(t,0)}(i))` (induction on `Delta_t(i) = Delta_{t-1}(mu_t(i)) +
delta_t(i)`), so `compensate` gets it from the decoded frames in one gather;
`accumulate` is the recurrence itself, for residuals given on their own.

Arrays may carry any leading batch dimensions (e.g. GOPs) before the frame
axis.
"""
from __future__ import annotations

import numpy as np


def reference_indices(motion: np.ndarray) -> np.ndarray:
  """mu(i) = i - tau(i), clipped to the frame, as flat `row * W + col`.

  Args:
    motion: `[..., H, W, 2]` whole-pixel integer motion (dx, dy), as
      `motion_vectors.to_whole_pixels` gives.

  Returns:
    `[..., H * W] int32`.
  """
  *lead, h, w, _ = motion.shape
  if h * w >= 2 ** 31:
    raise ValueError(f'frames of {h}x{w} are too large for int32 indices.')
  rows = np.arange(h, dtype=np.int32)[:, None] - motion[..., 1]
  np.clip(rows, 0, h - 1, out=rows)
  cols = np.arange(w, dtype=np.int32)[None, :] - motion[..., 0]
  np.clip(cols, 0, w - 1, out=cols)
  rows *= w
  rows += cols
  return rows.reshape(*lead, h * w).astype(np.int32, copy=False)


def _gather(frames: np.ndarray, source_frame: np.ndarray,
            pixels: np.ndarray) -> np.ndarray:
  """Pixels of frames of the same sequence, in one `np.take`.

  Args:
    frames: `[..., N, H, W, C]`.
    source_frame: `[P]` ints, which of the N frames row t reads.
    pixels: `[..., P, H * W]` flat pixel indices into that frame.

  Returns:
    `[..., P, H, W, C]`, `frames[..., source_frame[t], pixels[..., t, :]]`.
  """
  *lead, n, h, w, c = frames.shape
  sequences = int(np.prod(lead, dtype=np.int64))
  dtype = np.int64 if sequences * n * h * w >= 2 ** 31 else np.int32
  offsets = (np.arange(sequences, dtype=dtype)[:, None] * n
             + np.asarray(source_frame, dtype)[None, :]) * (h * w)
  index = pixels.reshape(sequences, -1, h * w).astype(dtype, copy=False)
  index = index + offsets[..., None]
  gathered = np.take(frames.reshape(-1, c), index.reshape(-1), axis=0)
  return gathered.reshape(*lead, len(source_frame), h, w, c)


def trace_to_i_frame(references: np.ndarray) -> np.ndarray:
  """Gamma^{(t,0)} for t = 1..P: `[..., P, H * W]` flat I-frame locations.

  Args:
    references: `[..., P, H * W]` int32 mu_t of each P-frame
      (`reference_indices`).
  """
  *lead, p, hw = references.shape
  sequences = int(np.prod(lead, dtype=np.int64))
  if sequences * hw >= 2 ** 31:
    raise ValueError(f'{sequences} GOPs of {hw} pixels are too many for '
                     'int32 indices; trace fewer GOPs at a time.')
  # Each sequence's own Gamma^{(t-1,0)}, read through one flat `np.take`.
  own = (np.arange(sequences, dtype=np.int32) * hw)[:, None]
  references = references.reshape(sequences, p, hw)
  traced = np.empty_like(references)
  traced[:, 0] = references[:, 0]
  for t in range(1, p):  # Composition is sequential.
    traced[:, t] = np.take(traced[:, t - 1], references[:, t] + own)
  return traced.reshape(*lead, p, hw)


def _motion_from_locations(traced: np.ndarray, h: int, w: int) -> np.ndarray:
  """Pi = i - Gamma(i), (dx, dy): `[..., H * W]` -> `[..., H, W, 2] int16`."""
  traced = traced.reshape(*traced.shape[:-1], h, w)
  rows = traced // w  # A scalar divisor: far faster than `np.divmod`.
  cols = traced - rows * w
  motion = np.empty((*rows.shape, 2), np.int16)
  np.subtract(np.arange(w, dtype=np.int32), cols, out=motion[..., 0],
              casting='unsafe')
  np.subtract(np.arange(h, dtype=np.int32)[:, None], rows,
              out=motion[..., 1], casting='unsafe')
  return motion


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """`a - b` of uint8 frames as int16 (exact: |a - b| <= 255)."""
  return a.astype(np.int16) - b.astype(np.int16)


def residuals(frames: np.ndarray, motion: np.ndarray) -> np.ndarray:
  """P-frames minus their motion-compensated predictions.

  Args:
    frames: `[..., 1 + P, H, W, C] uint8`, the I-frame then the P-frames.
    motion: `[..., P, H, W, 2]` whole-pixel motion of the P-frames.

  Returns:
    `[..., P, H, W, C] int16`: `delta_t = I_t - I_{t-1}(mu_t)`.
  """
  p = motion.shape[-4]
  predicted = _gather(frames, np.arange(p), reference_indices(motion))
  return _difference(frames[..., 1:, :, :, :], predicted)


def compensate(frames: np.ndarray, motion: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Residuals, accumulated motion and accumulated residuals of GOPs.

  Args:
    frames: `[..., 1 + P, H, W, C] uint8`, the I-frame then the P-frames.
    motion: `[..., P, H, W, 2]` whole-pixel motion of the P-frames.

  Returns:
    `(delta, Pi, Delta)`: `[..., P, H, W, C] int16` residuals (see
    `residuals`), `[..., P, H, W, 2] int16` motion from the I-frame (dx, dy)
    and `[..., P, H, W, C] int16` residuals against the I-frame (Eq. 2).
  """
  p, h, w = motion.shape[-4:-1]
  references = reference_indices(motion)
  p_frames = frames[..., 1:, :, :, :]
  delta = _difference(p_frames, _gather(frames, np.arange(p), references))
  traced = trace_to_i_frame(references)
  acc_residual = _difference(p_frames,
                             _gather(frames, np.zeros(p, int), traced))
  return delta, _motion_from_locations(traced, h, w), acc_residual


def accumulate(motion: np.ndarray, residual: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
  """Accumulated motion and residuals by the recurrence of Eq. 1-2.

  `Delta_t(i) = Delta_{t-1}(mu_t(i)) + delta_t(i)`, for residuals that come
  without their frames; `compensate` gives the same from decoded frames.

  Args:
    motion: `[..., P, H, W, 2]` whole-pixel motion (dx, dy) of the P-frames.
    residual: `[..., P, H, W, C]` residuals (see `residuals`).

  Returns:
    `(Pi, Delta)`: `[..., P, H, W, 2] int16` motion from the I-frame, (dx, dy),
    and `[..., P, H, W, C] int16` residuals against the I-frame.
  """
  *lead, p, h, w, c = residual.shape
  references = reference_indices(motion)
  flat_residual = residual.reshape(*lead, p, h * w, c).astype(np.int16)
  acc_residual = np.empty_like(flat_residual)
  acc_residual[..., 0, :, :] = flat_residual[..., 0, :, :]
  for t in range(1, p):
    # |Delta| <= 255 (it is I_t - I_0 at traced pixels): int16 is exact.
    acc_residual[..., t, :, :] = np.take_along_axis(
        acc_residual[..., t - 1, :, :], references[..., t, :, None],
        axis=-2) + flat_residual[..., t, :, :]
  traced = trace_to_i_frame(references)
  return (_motion_from_locations(traced, h, w),
          acc_residual.reshape(residual.shape))


def reconstruct_from_i_frame(i_frame: np.ndarray, acc_motion: np.ndarray,
                             acc_residual: np.ndarray) -> np.ndarray:
  """`I_0(i - Pi_t(i)) + Delta_t(i)` for every t: `[P, H, W, C] int32`."""
  h, w = i_frame.shape[:2]
  rows = np.arange(h)[None, :, None] - acc_motion[..., 1]
  cols = np.arange(w)[None, None, :] - acc_motion[..., 0]
  return i_frame.astype(np.int32)[rows, cols] + acc_residual
