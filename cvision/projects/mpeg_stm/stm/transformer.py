"""Transformer encoders over the tokens of several modalities.

`encoder='unified'` (the paper): one encoder over the concatenated tokens of
all modalities, so attention mixes space, time and modality at once.
Ablations (paper Tab. 4b): 'separate', one encoder per modality;
'cross', one encoder per modality whose queries attend only to the keys and
values of the other modalities.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cvision.projects.mpeg_stm import energy

Array = jax.Array
ENCODERS = ('unified', 'separate', 'cross')


class EncoderBlock(nn.Module):
  """Pre-norm attention + MLP; queries `x`, keys and values `context`.

  `context=None` is self-attention.
  """
  num_heads: int
  mlp_ratio: int = 2

  @nn.compact
  def __call__(self, x: Array, context: Array | None = None) -> Array:
    b, n, d = x.shape
    q = nn.LayerNorm(name='norm_q')(x)
    kv = q if context is None else nn.LayerNorm(name='norm_kv')(context)
    x = x + nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, name='attention')(q, kv, kv)
    h = nn.Dense(self.mlp_ratio * d, name='mlp_in')(nn.LayerNorm(
        name='norm_mlp')(x))
    x = x + nn.Dense(d, name='mlp_out')(nn.gelu(h))
    m = kv.shape[1]
    macs = (energy.dense_macs(n, d, d) * 2  # Q and output projections.
            + energy.dense_macs(m, d, d) * 2  # K and V.
            + energy.attention_macs(n, m, d)
            + energy.dense_macs(n, d, self.mlp_ratio * d) * 2)
    energy.record(self, batch_size=b, macs=macs)
    return x


class MultiModalEncoder(nn.Module):
  """`{modality: [B, N_m, D]}` -> the same, after `depth` blocks."""
  depth: int
  num_heads: int
  mlp_ratio: int = 2
  encoder: str = 'unified'

  @nn.compact
  def __call__(self, tokens: dict[str, Array]) -> dict[str, Array]:
    if self.encoder not in ENCODERS:
      raise ValueError(f'encoder={self.encoder!r}: expected one of '
                       f'{ENCODERS}.')
    names = list(tokens)
    block = lambda name: EncoderBlock(self.num_heads, self.mlp_ratio,
                                      name=name)
    if self.encoder == 'unified':
      x = jnp.concatenate([tokens[m] for m in names], axis=1)
      for i in range(self.depth):
        x = block(f'block_{i}')(x)
      sizes = [tokens[m].shape[1] for m in names]
      parts = jnp.split(x, np.cumsum(sizes)[:-1].tolist(), axis=1)
      return dict(zip(names, parts))
    if self.encoder == 'cross' and len(names) < 2:
      raise ValueError('encoder=cross needs at least two modalities, got '
                       f'{names}.')
    out = dict(tokens)
    for i in range(self.depth):
      current = dict(out)
      for m in names:
        context = None
        if self.encoder == 'cross':
          context = jnp.concatenate([current[o] for o in names if o != m],
                                    axis=1)
        out[m] = block(f'{m}_block_{i}')(current[m], context)
    return out
