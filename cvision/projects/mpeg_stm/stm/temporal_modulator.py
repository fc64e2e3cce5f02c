"""The Spiking Temporal Modulator (STM) over one P-frame stream of a GOP.

A stack of ConvLIF layers (paper Sec. 3.2): the first takes the analog
motion vectors or residuals, each later one the spikes of the one before,
and the last one's analog membrane potential is the output. GOPs are
independent sequences: the neurons start from rest at every GOP (the reset
after all P-frames of a GOP are processed). `cell='lstm'` swaps the ConvLIF
layers for ConvLSTM layers (the ablation).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from cvision.projects.mpeg_stm.stm import conv_lstm
from cvision.projects.mpeg_stm.stm import lif

Array = jax.Array
CELLS = ('lif', 'lstm')


class TemporalModulator(nn.Module):
  """`[B, G, P, H, W, C]` P-frames -> `[B, G, P, h, w, features[-1]]`.

  Attributes:
    features: channels of each layer.
    strides: spatial stride of each layer.
    cell: 'lif' (the STM) or 'lstm' (ConvLSTM).
    v_th_init, leak_init, learn_dynamics, surrogate_alpha: of the ConvLIF
      layers (see `lif.ConvLIF`).
  """
  features: Sequence[int] = (16, 16)
  strides: Sequence[int] = (2, 2)
  cell: str = 'lif'
  v_th_init: float = 1.0
  leak_init: float = 0.9
  learn_dynamics: bool = True
  surrogate_alpha: float = lif.DEFAULT_SURROGATE_ALPHA

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if self.cell not in CELLS:
      raise ValueError(f'cell={self.cell!r}: expected one of {CELLS}.')
    if len(self.features) != len(self.strides) or not self.features:
      raise ValueError(f'features {tuple(self.features)} and strides '
                       f'{tuple(self.strides)} need the same, non-zero '
                       'length.')
    signal = x
    output = x
    for i, (features, stride) in enumerate(zip(self.features, self.strides)):
      # A kernel at least as wide as the stride sees every pixel.
      kernel = (max(3, stride),) * 2
      if self.cell == 'lif':
        layer = lif.ConvLIF(
            features, kernel, strides=(stride, stride),
            v_th_init=self.v_th_init,
            leak_init=self.leak_init, learn_dynamics=self.learn_dynamics,
            surrogate_alpha=self.surrogate_alpha, binary_input=i > 0,
            name=f'conv_lif_{i}')
      else:
        layer = conv_lstm.ConvLSTM(features, kernel, strides=(stride, stride),
                                   name=f'conv_lstm_{i}')
      # Layers talk in spikes; the last one's membrane is the output.
      output, signal = layer(signal)
    return output
