"""VQ-VAE encoder (paper Table 10, top): video -> continuous latent grid."""
from __future__ import annotations

import dm_pix as pix
import flax.linen as nn
import jax
import jax.numpy as jnp

from cvision.projects.codec import compression_rate
from cvision.projects.codec.vqvae import layers


def video_space_to_depth(video: jax.Array, patch: int) -> jax.Array:
  """`[B, T, H, W, C]` -> `[B, T, H/p, W/p, C*p*p]`, per frame (dm-pix)."""
  b, t, h, w, c = video.shape
  x = pix.space_to_depth(video.reshape(b * t, h, w, c), patch)
  return x.reshape(b, t, h // patch, w // patch, c * patch * patch)


def video_depth_to_space(x: jax.Array, patch: int) -> jax.Array:
  """Inverse of `video_space_to_depth`.

  `[B, T, h, w, C*p*p]` -> `[B, T, h*p, w*p, C]`.
  """
  b, t, h, w, c = x.shape
  y = pix.depth_to_space(x.reshape(b * t, h, w, c), patch)
  return y.reshape(b, t, h * patch, w * patch, c // (patch * patch))


class Encoder(nn.Module):
  """Strided Conv3D blocks, optional temporal stride, then residual blocks.

  Attributes:
    num_strided_blocks: E_s >= 1 blocks of Conv3D k=4, s=(1, 2, 2), ReLU, with
      channels V_e / 2**(E_s - i - 1) (Table 10).
    num_res_blocks: E_c residual blocks at V_e channels.
    embedding_dim: V_e, channels of the latent grid.
    space_to_depth: p, folds p x p pixel patches into channels first (1 = off).
    temporal_stride: s_t, one Conv3D k=(2 s_t, 3, 3), s=(s_t, 1, 1) after the
      strided blocks (paper B.2 time compression; 1 = off).
  """
  num_strided_blocks: int
  num_res_blocks: int
  embedding_dim: int
  space_to_depth: int
  temporal_stride: int

  @nn.compact
  def __call__(self, video: jax.Array) -> jax.Array:
    """Encodes a video.

    Args:
      video: `[B, T, H, W, 3]` float in [0, 1] (uint8 in [0, 255] accepted).

    Returns:
      `[B, T_c, H_c, W_c, V_e]` float32 latents, with (T_c, H_c, W_c) given by
      `compression_rate.code_grid_shape`.

    Raises:
      ValueError: if T, H or W is not divisible by the strides.
    """
    if video.ndim != 5:
      raise ValueError(f'video must be [B, T, H, W, C], got {video.shape}.')
    # Raises a ValueError naming the dimension the strides do not divide.
    compression_rate.code_grid_shape(video.shape[1:4], self)
    if video.dtype == jnp.uint8:
      video = video.astype(jnp.float32) / 255.0
    x = video * 2.0 - 1.0  # Zero-centred inputs condition the convs better.
    if self.space_to_depth > 1:
      x = video_space_to_depth(x, self.space_to_depth)
    e_s = self.num_strided_blocks
    for i in range(e_s):
      features = max(1, self.embedding_dim // 2**(e_s - i - 1))
      x = layers.ReflectConv3D(features, (4, 4, 4), (1, 2, 2),
                               name=f'strided_{i}')(x)
      x = nn.relu(x)
    if self.temporal_stride > 1:
      s = self.temporal_stride
      x = layers.ReflectConv3D(self.embedding_dim, (2 * s, 3, 3), (s, 1, 1),
                               name='temporal')(x)
      x = nn.relu(x)
    for i in range(self.num_res_blocks):
      x = layers.ResBlock(name=f'res_{i}')(x)
    # A final linear map, as VQ-VAE's pre-quantisation conv: the latents must
    # take any sign, while the last strided block ends in a ReLU.
    x = layers.Pointwise(self.embedding_dim, name='pre_quant')(x)
    return x.astype(jnp.float32)
