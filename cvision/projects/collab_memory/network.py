"""Collaborative memory (Yang et al., CVPR 2021, Sec. 3.2) and its classifier.

Clip features `X_i` (`[L, C]`, L = T'H'W' positions of a backbone's last conv
map) of the N clips of a video are combined into a video-level memory that is
shared back with every clip:

* memory interaction
  - 'associative' (Eq. 2-3): global memory `G = mean_i phi(X_i)^T psi(X_i)`
    (`[C', C']`, C' = C / reduction), clip memory `M_i = theta(X_i) G`
    (`[L, C']`), phi, psi, theta linear maps without bias;
  - 'average': `G = W mean_{i,l} X_i` (`[C']`), `M_i = G` for every clip.
* context infusion
  - 'gating' (Eq. 4): `X_i * (1 + sigmoid(W_g mean_l M_i + b))`;
  - 'residual': `X_i + W_r M_i`.

Eq. 2 sums over clips; we average over clips and positions instead, so the
memory's scale does not depend on N (training uses N clips, inference K) or
on the feature map size. The memory is `[C', C']` whatever N is.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
INTERACTIONS = ('associative', 'average')
INFUSIONS = ('gating', 'residual')


class CollaborativeMemory(nn.Module):
  """`[N, B, T', H', W', C]` clip features -> the same, with video context.

  Axis 0 holds the N clips of each of the B videos; clips of different
  videos never mix. `channels` is C, the backbone's feature channels.
  """
  channels: int
  interaction: str = 'associative'
  infusion: str = 'gating'
  reduction: int = 4
  dtype: Any = jnp.float32

  def setup(self):
    if self.interaction not in INTERACTIONS:
      raise ValueError(f'interaction={self.interaction!r}: expected one of '
                       f'{INTERACTIONS}.')
    if self.infusion not in INFUSIONS:
      raise ValueError(f'infusion={self.infusion!r}: expected one of '
                       f'{INFUSIONS}.')
    reduced = max(1, self.channels // self.reduction)
    dense = lambda features, name, bias=False: nn.Dense(
        features, use_bias=bias, dtype=self.dtype, name=name)
    if self.interaction == 'associative':
      self.phi, self.psi = dense(reduced, 'phi'), dense(reduced, 'psi')
      self.theta = dense(reduced, 'theta')
    else:
      self.reduce = dense(reduced, 'reduce')
    if self.infusion == 'gating':
      self.gate = dense(self.channels, 'gate', bias=True)
    else:
      self.residual = dense(self.channels, 'residual')

  def _positions(self, clips: Array) -> Array:
    if clips.shape[-1] != self.channels:
      raise ValueError(f'Clip features have {clips.shape[-1]} channels, the '
                       f'memory was built for {self.channels}.')
    n, b, c = clips.shape[0], clips.shape[1], clips.shape[-1]
    return clips.reshape(n, b, -1, c).astype(self.dtype)  # [N, B, L, C]

  def global_memory(self, clips: Array) -> Array:
    """`[N, B, T', H', W', C]` -> `[B, C', C']` (associative) or `[B, C']`."""
    x = self._positions(clips)
    if self.interaction == 'associative':
      count = x.shape[0] * x.shape[2]
      return jnp.einsum('nblc,nbld->bcd', self.phi(x), self.psi(x)) / count
    return self.reduce(jnp.mean(x, axis=(0, 2)))

  def clip_memory(self, clips: Array, memory: Array) -> Array:
    """Each clip's memory `[N, B, L, C']` from its video's global memory."""
    x = self._positions(clips)
    if self.interaction == 'associative':
      return jnp.einsum('nblc,bcd->nbld', self.theta(x), memory)
    return jnp.broadcast_to(memory[None, :, None, :],
                            (*x.shape[:3], memory.shape[-1]))

  def infuse(self, clips: Array, clip_memory: Array) -> Array:
    x = self._positions(clips)
    if self.infusion == 'gating':
      gate = self.gate(jnp.mean(clip_memory, axis=2))  # [N, B, C]
      out = x * (1.0 + nn.sigmoid(gate))[:, :, None, :]
    else:
      out = x + self.residual(clip_memory)
    return out.reshape(clips.shape).astype(clips.dtype)

  def __call__(self, clips: Array, memory: Array | None = None) -> Array:
    """Infuses `memory` (default: built from `clips` themselves)."""
    if memory is None:
      memory = self.global_memory(clips)
    return self.infuse(clips, self.clip_memory(clips, memory))


class VideoLevelHead(nn.Module):
  """Clip features of a video -> per-clip logits `[N, B, classes]`.

  `memory=None` is the multi-clip baseline without memory (each clip
  classified alone; the video-level loss still sees their average).
  """
  num_classes: int
  memory: CollaborativeMemory | None = None
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, clips: Array, train: bool,
               memory_source: Array | None = None) -> Array:
    """`clips`: `[N, B, T', H', W', C]`; `memory_source`: other clips of the
    same videos to build the memory from (inference: K centred clips)."""
    if self.memory is not None:
      source = clips if memory_source is None else memory_source
      clips = self.memory(clips, self.memory.global_memory(source))
    x = jnp.mean(clips.astype(jnp.float32), axis=(2, 3, 4))  # [N, B, C]
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name='logits')(
        x).astype(jnp.float32)
