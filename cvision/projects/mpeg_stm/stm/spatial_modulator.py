"""The spatial modulator: a convolutional patch embedding (paper Sec. 3.2).

Non-overlapping `patch x patch` patches, each embedded by a learnt conv
(kernel = stride = patch) rather than a linear map of flattened pixels.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax

from cvision.projects.mpeg_stm import energy

Array = jax.Array


class SpatialModulator(nn.Module):
  """`[B, ..., H, W, C]` -> tokens `[B, ..., H/patch * W/patch, features]`.

  Also returns the grid `(H/patch, W/patch)`. H and W need not be
  multiples of `patch` (SAME padding).
  """
  features: int
  patch: int

  @nn.compact
  def __call__(self, x: Array) -> tuple[Array, tuple[int, int]]:
    y = nn.Conv(self.features, (self.patch, self.patch),
                (self.patch, self.patch), padding='SAME', name='embed')(x)
    grid = y.shape[-3:-1]
    positions = math.prod(x.shape[1:-3])  # Frames per example.
    energy.record(self, batch_size=x.shape[0],
                  macs=positions * energy.conv_macs(
                      grid, (self.patch, self.patch), x.shape[-1],
                      self.features))
    return y.reshape(y.shape[:-3] + (grid[0] * grid[1], self.features)), grid
