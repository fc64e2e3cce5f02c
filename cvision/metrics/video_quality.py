"""Per-video reconstruction metrics (PSNR, SSIM, MAE) via dm-pix.

Videos are `[..., T, H, W, 3]`, float in [0, 1] or uint8 in [0, 255] (scaled
to [0, 1]). Frames are folded into dm-pix's image batch axis; each metric is
the mean over the T frames of the per-frame value, so the result has shape
`[...]` (a scalar for a single video). NumPy inputs give NumPy outputs, JAX
inputs give JAX outputs; all three functions jit.
"""
from __future__ import annotations

from typing import Callable

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

# SSIM's Gaussian window (Wang et al. 2004); shrunk for frames smaller than it.
_SSIM_FILTER_SIZE = 11


def _to_unit_float(x) -> jax.Array:
  x = jnp.asarray(x)
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / 255.0
  return x.astype(jnp.float32)


def _per_video(frame_metric: Callable[[jax.Array, jax.Array], jax.Array], a,
               b):
  """Applies an image metric to every frame and averages over T."""
  is_numpy = isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
  x, y = _to_unit_float(a), _to_unit_float(b)
  if x.shape != y.shape:
    raise ValueError(f'videos differ in shape: {x.shape} vs {y.shape}.')
  if x.ndim < 4:
    raise ValueError(f'expected [..., T, H, W, C] videos, got {x.shape}.')
  lead = x.shape[:-3]  # [..., T]
  frames = x.shape[-3:]
  values = frame_metric(x.reshape((-1,) + frames), y.reshape((-1,) + frames))
  values = jnp.mean(values.reshape(lead), axis=-1)
  return np.asarray(values) if is_numpy else values


# A frame reproduced exactly (black frames of real videos, static titles)
# has MSE 0 and an infinite PSNR, which would make the video's mean infinite.
# Its error is floored at that of 8-bit rounding, a uniform error of one
# level ((1/255)^2 / 12): 58.9 dB, the best an 8-bit frame can be said to be.
MSE_FLOOR = (1.0 / 255.0)**2 / 12.0
MAX_PSNR = float(-10.0 * np.log10(MSE_FLOOR))


def _frame_psnr(x: jax.Array, y: jax.Array) -> jax.Array:
  mse = jnp.mean((x - y)**2, axis=(-3, -2, -1))
  return -10.0 * jnp.log10(jnp.maximum(mse, MSE_FLOOR))


def psnr(a, b):
  """PSNR in dB (peak 1.0) of `[..., T, H, W, 3]` videos -> `[...]` float32.

  The mean over frames of each frame's PSNR (dm-pix's definition), a frame
  at most `MAX_PSNR` (58.9 dB): an exactly reproduced frame does not make a
  video's PSNR infinite.
  """
  return _per_video(_frame_psnr, a, b)


def ssim(a, b):
  """SSIM (in [-1, 1], 1 = identical) of `[..., T, H, W, 3]` videos -> `[...]`.

  Uses dm-pix's 11x11 Gaussian window, shrunk to the frame size for frames
  under 11 pixels (only so tiny test videos work).
  """

  def frame_ssim(x, y):
    size = min(_SSIM_FILTER_SIZE, x.shape[-3], x.shape[-2])
    return pix.ssim(x, y, filter_size=size)

  return _per_video(frame_ssim, a, b)


def mae(a, b):
  """Mean absolute error (in [0, 1] units) of `[..., T, H, W, 3]` -> `[...]`."""
  return _per_video(pix.mae, a, b)


def all_metrics(a, b) -> dict[str, jax.Array]:
  """{'psnr', 'ssim', 'mae'}, each `[...]` per video."""
  return {'psnr': psnr(a, b), 'ssim': ssim(a, b), 'mae': mae(a, b)}
