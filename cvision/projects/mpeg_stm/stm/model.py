"""The whole classifier: I-frames + P-frame streams -> action logits.

Inputs (normalised by the task), G GOPs of P P-frames each:
  'i'   `[B, G, H, W, 3]`    I-frames
  'mv'  `[B, G, P, H, W, 2]` motion vectors (raw or accumulated)
  'r'   `[B, G, P, H, W, 3]` residuals (raw or accumulated)
Any subset holding 'i' is allowed (`modalities`).

Order of contextualisation (the paper's best, T => LS => GS): each P-frame
stream goes through its temporal modulator (the STM, reset per GOP), its
membrane potentials are averaged into `p_time_slots` slots per GOP and
patch-embedded by a spatial modulator; I-frames are patch-embedded directly.
All tokens, with spatial, temporal and modality embeddings, go through the
transformer (`encoder`), then the Multi-Modal Mixer, global average pooling
and a linear classifier.

Ablations: `common_stm` runs one STM over motion vectors and residuals
concatenated (one P stream 'p'); `temporal_cell='lstm'` uses ConvLSTMs;
`learn_dynamics=False` fixes v_th and lambda; `encoder` picks unified,
separate or cross-attention encoders.

Cost accounting: every layer records its MACs and ACs in the `costs`
collection (`cvision.projects.mpeg_stm.energy`); apply with `mutable=['costs']`.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cvision.projects.mpeg_stm import energy
from cvision.projects.mpeg_stm.stm import lif
from cvision.projects.mpeg_stm.stm import mixer
from cvision.projects.mpeg_stm.stm import spatial_modulator
from cvision.projects.mpeg_stm.stm import temporal_modulator
from cvision.projects.mpeg_stm.stm import transformer

Array = jax.Array
MODALITIES = ('i', 'mv', 'r')


def time_slot_means(x: Array, num_slots: int) -> Array:
  """Means of `[..., P, h, w, C]` over `num_slots` near-equal chunks of P."""
  steps = x.shape[-4]
  if not 1 <= num_slots <= steps:
    raise ValueError(f'p_time_slots={num_slots} must be in [1, {steps}] (the '
                     'P-frames per GOP).')
  bounds = np.linspace(0, steps, num_slots + 1).round().astype(int)
  return jnp.stack([jnp.mean(x[..., a:b, :, :, :], axis=-4)
                    for a, b in zip(bounds[:-1], bounds[1:])], axis=-4)


class CompressedVideoSTM(nn.Module):
  """See the module docstring. Returns logits `[B, num_classes]`."""
  num_classes: int
  modalities: Sequence[str]
  embed_dim: int
  patch_size: int
  stm_features: Sequence[int]
  stm_strides: Sequence[int]
  temporal_cell: str
  common_stm: bool
  learn_dynamics: bool
  v_th_init: float
  leak_init: float
  surrogate_alpha: float
  p_time_slots: int
  depth: int
  num_heads: int
  mlp_ratio: int
  encoder: str
  mixer_growth: int
  rrdb_blocks: int

  def _streams(self, inputs: dict[str, Array]) -> dict[str, Array]:
    """The P-frame streams: 'mv' and/or 'r', or one common 'p'."""
    p_names = [m for m in ('mv', 'r') if m in self.modalities]
    if self.common_stm:
      if len(p_names) < 2:
        raise ValueError('common_stm needs both mv and r in modalities, got '
                         f'{tuple(self.modalities)}.')
      return {'p': jnp.concatenate([inputs['mv'], inputs['r']], axis=-1)}
    return {m: inputs[m] for m in p_names}

  @nn.compact
  def __call__(self, inputs: dict[str, Array]) -> Array:
    unknown = set(self.modalities) - set(MODALITIES)
    if unknown or 'i' not in self.modalities:
      raise ValueError(f'modalities={tuple(self.modalities)}: need i, plus '
                       f'any of mv, r.')
    d = self.embed_dim
    i_frames = inputs['i']
    batch, gops = i_frames.shape[:2]
    tokens, timeline, low_level = {}, {}, []
    i_tokens, grid = spatial_modulator.SpatialModulator(
        d, self.patch_size, name='i_embed')(i_frames)
    tokens['i'] = i_tokens  # [B, G, n, D]
    slots = self.p_time_slots
    # Position of each token on one timeline: GOP g's I-frame, then its
    # P slots.
    timeline['i'] = np.arange(gops) * (slots + 1)
    p_patch = self.patch_size // math.prod(self.stm_strides)
    if p_patch < 1 or p_patch * math.prod(self.stm_strides) != self.patch_size:
      raise ValueError(f'patch_size={self.patch_size} must be a multiple of '
                       f'the STM strides {tuple(self.stm_strides)}.')
    for name, x in self._streams(inputs).items():
      modulated = temporal_modulator.TemporalModulator(
          self.stm_features, self.stm_strides, self.temporal_cell,
          self.v_th_init, self.leak_init, self.learn_dynamics,
          self.surrogate_alpha, name=f'{name}_stm')(x)
      p_tokens, p_grid = spatial_modulator.SpatialModulator(
          d, p_patch, name=f'{name}_embed')(time_slot_means(modulated, slots))
      if p_grid != grid:
        raise ValueError(f'{name} tokens form a {p_grid} grid, the I-frame '
                         f'tokens {grid}; frame sizes must agree.')
      p_tokens = p_tokens.reshape(batch, gops * slots, *p_tokens.shape[-2:])
      tokens[name] = p_tokens
      low_level.append(p_tokens)
      timeline[name] = (np.arange(gops)[:, None] * (slots + 1) + 1
                        + np.arange(slots)[None, :]).reshape(-1)

    num_tokens = grid[0] * grid[1]
    spatial = self.param('spatial_embedding', nn.initializers.normal(0.02),
                         (num_tokens, d))
    temporal = self.param('temporal_embedding', nn.initializers.normal(0.02),
                          (gops * (slots + 1), d))
    modality = self.param('modality_embedding', nn.initializers.normal(0.02),
                          (len(tokens), d))
    flat = {}
    for k, (name, t) in enumerate(tokens.items()):
      t = (t + spatial + temporal[timeline[name]][:, None, :]
           + modality[k])
      flat[name] = t.reshape(batch, -1, d)
    encoded = transformer.MultiModalEncoder(
        self.depth, self.num_heads, self.mlp_ratio, self.encoder,
        name='encoder')(flat)
    fused = mixer.MultiModalMixer(d, self.mixer_growth, self.rrdb_blocks,
                                  name='mixer')(encoded, grid, low_level)
    pooled = nn.LayerNorm(name='head_norm')(jnp.mean(fused, axis=(1, 2)))
    logits = nn.Dense(self.num_classes, name='classifier')(pooled)
    energy.record(self, batch_size=batch,
                  macs=energy.dense_macs(1, d, self.num_classes))
    return logits
