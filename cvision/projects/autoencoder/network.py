"""A small convolutional video autoencoder: the core's smallest real model."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# Logical axis names of 3D convolution kernels: `[t, h, w, in, out]`.
CONV_AXES = ('conv_t', 'conv_h', 'conv_w', 'conv_in', 'conv_out')


def _conv(features: int, kernel, strides, transpose: bool = False):
  cls = nn.ConvTranspose if transpose else nn.Conv
  return cls(features, kernel, strides=strides, padding='SAME',
             kernel_init=nn.with_logical_partitioning(
                 nn.initializers.lecun_normal(), CONV_AXES))


class VideoAutoencoder(nn.Module):
  """Strided 3D convolutions down, transposed ones back up.

  Attributes:
    channels: output channels of each downsampling stage (each halves H, W).
  """
  channels: Sequence[int]

  @nn.compact
  def __call__(self, video: jax.Array) -> jax.Array:
    """`[B, T, H, W, 3]` floats in [0, 1] -> reconstruction, same shape."""
    x = video
    for c in self.channels:
      x = nn.relu(_conv(c, (3, 4, 4), (1, 2, 2))(x))
    for c in reversed(self.channels[:-1]):
      x = nn.relu(_conv(c, (3, 4, 4), (1, 2, 2), transpose=True)(x))
    x = _conv(3, (3, 4, 4), (1, 2, 2), transpose=True)(x)
    return jax.nn.sigmoid(x)
