"""The Multi-Modal Mixer (paper Sec. 3.3): fold, convolve, fuse, refine.

1. Token folding: each modality's tokens back to maps `[B, T_m, h, w, D]`.
2. Conv folding: an overlapping 3x3 conv per modality, then the mean over
   its time steps (GOPs and P-frame slots).
3. Conv fusion: the modalities concatenated and mixed by a pointwise conv,
   plus skips: the mean of the folded maps, and the low-level temporal
   feature maps (the P-frame embeddings before the transformer) after their
   own pointwise channel mixing.
4. A residual-in-residual dense block (RRDB, Wang et al. 2018).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from cvision.projects.mpeg_stm import energy

Array = jax.Array
_RESIDUAL_SCALE = 0.2  # ESRGAN's scaling of the dense blocks' residuals.


class _Conv(nn.Module):
  """A SAME conv on `[B, ..., h, w, C]` that records its MACs."""
  features: int
  kernel: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = nn.Conv(self.features, (self.kernel, self.kernel), padding='SAME',
                name='conv')(x)
    maps = math.prod(x.shape[1:-3])
    energy.record(self, batch_size=x.shape[0], macs=maps * energy.conv_macs(
        y.shape[-3:-1], (self.kernel, self.kernel), x.shape[-1],
        self.features))
    return y


class DenseBlock(nn.Module):
  """Densely connected 3x3 convs, then a 3x3 conv back to the input width."""
  growth: int
  num_layers: int = 3

  @nn.compact
  def __call__(self, x: Array) -> Array:
    features = [x]
    for i in range(self.num_layers):
      y = _Conv(self.growth, 3, name=f'conv_{i}')(
          jnp.concatenate(features, axis=-1))
      features.append(nn.gelu(y))
    out = _Conv(x.shape[-1], 3, name='fuse')(jnp.concatenate(features, -1))
    return x + _RESIDUAL_SCALE * out


class RRDB(nn.Module):
  """Dense blocks in a scaled residual, inside a scaled residual."""
  growth: int
  num_blocks: int = 2

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = x
    for i in range(self.num_blocks):
      y = DenseBlock(self.growth, name=f'dense_{i}')(y)
    return x + _RESIDUAL_SCALE * y


class MultiModalMixer(nn.Module):
  """Tokens of each modality -> one fused map `[B, h, w, D]`.

  `__call__(tokens, grid, low_level)`: `tokens[m]` is `[B, T_m * h * w, D]`
  (time-major), `grid = (h, w)`, and `low_level` a list of `[B, T, h*w, D']`
  temporal embeddings from before the transformer (may be empty).
  """
  features: int
  growth: int = 16
  rrdb_blocks: int = 2

  @nn.compact
  def __call__(self, tokens: dict[str, Array], grid: tuple[int, int],
               low_level: list[Array]) -> Array:
    h, w = grid
    folded = []
    for m, t in tokens.items():
      maps = t.reshape(t.shape[0], -1, h, w, t.shape[-1])  # Token folding.
      maps = nn.gelu(_Conv(self.features, 3, name=f'fold_{m}')(maps))
      folded.append(jnp.mean(maps, axis=1))
    fused = _Conv(self.features, 1, name='fusion')(
        jnp.concatenate(folded, axis=-1))
    fused = fused + sum(folded) / len(folded)
    if low_level:
      temporal = jnp.concatenate(
          [jnp.mean(x, axis=1).reshape(x.shape[0], h, w, x.shape[-1])
           for x in low_level], axis=-1)
      fused = fused + _Conv(self.features, 1, name='temporal_mix')(temporal)
    return RRDB(self.growth, self.rrdb_blocks, name='rrdb')(nn.gelu(fused))
