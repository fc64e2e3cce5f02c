"""VQ-VAE decoder (paper Table 10, bottom): latent grid -> video."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from cvision.projects.codec.vqvae import encoder as encoder_lib
from cvision.projects.codec.vqvae import layers


def clip_straight_through(x: jax.Array) -> jax.Array:
  """Clips to [0, 1] in the forward pass, identity gradient in the backward.

  A plain clip would stop the gradient of every pixel predicted outside
  [0, 1] even when its target is inside; a sigmoid would never reach the exact
  0 / 1 of saturated pixels.
  """
  return x + jax.lax.stop_gradient(jnp.clip(x, 0.0, 1.0) - x)


class Decoder(nn.Module):
  """Residual blocks, optional temporal upsampling, then transposed Conv3Ds.

  Attributes:
    num_res_blocks: D_c residual blocks at V_e channels.
    num_upsampling_blocks: D_s transposed Conv3D k=4, s=(1, 2, 2); the first
      D_s - 1 have V_e / 2**i channels and a ReLU (Table 10), the last one
      outputs the pixels.
    embedding_dim: V_e, channels of the latent grid.
    space_to_depth: p; the last block outputs 3*p*p channels that
      depth-to-space unfolds (1 = off).
    temporal_stride: s_t; one transposed Conv3D k=(2 s_t, 3, 3),
      s=(s_t, 1, 1) before the spatial upsampling (1 = off).
    out_channels: channels of the output video.
  """
  num_res_blocks: int
  num_upsampling_blocks: int
  embedding_dim: int
  space_to_depth: int
  temporal_stride: int
  out_channels: int = 3

  @nn.compact
  def __call__(self, latents: jax.Array) -> jax.Array:
    """Decodes latents.

    Args:
      latents: `[B, T_c, H_c, W_c, V_e]` float.

    Returns:
      `[B, T, H, W, 3]` float32 in [0, 1] (T = T_c * s_t,
      H = H_c * p * 2**D_s); gradients pass through the final clip.
    """
    x = latents
    for i in range(self.num_res_blocks):
      x = layers.ResBlock(name=f'res_{i}')(x)
    if self.temporal_stride > 1:
      s = self.temporal_stride
      x = layers.ReflectConvTranspose3D(
          self.embedding_dim, (2 * s, 3, 3), (s, 1, 1), name='temporal')(x)
      x = nn.relu(x)
    p = self.space_to_depth
    for i in range(self.num_upsampling_blocks):
      last = i == self.num_upsampling_blocks - 1
      features = (self.out_channels * p * p if last else
                  max(1, self.embedding_dim // 2**i))
      x = layers.ReflectConvTranspose3D(features, (4, 4, 4), (1, 2, 2),
                                        name=f'upsample_{i}')(x)
      if not last:
        x = nn.relu(x)
    if p > 1:
      x = encoder_lib.video_depth_to_space(x, p)
    # Offset so a zero-initialised output starts at mid-grey.
    return clip_straight_through(x.astype(jnp.float32) + 0.5)
