"""A ConvLSTM layer: the paper's "STM -> LSTM" ablation.

Each cell has one conv on the input (applied to every step at once, with
the layer's stride) and one on the previous hidden state; the gates are the
usual LSTM gates. Its output, the hidden state, is analog like the STM's
membrane potential, so the rest of the model is unchanged.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from cvision.projects.mpeg_stm import energy

Array = jax.Array


class ConvLSTM(nn.Module):
  """`[B, ..., T, H, W, C]` -> hidden states `[B, ..., T, h, w, features]`.

  Returns `(hidden, hidden)` so that it stacks like `ConvLIF`'s
  `(membrane, spikes)`.
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)

  @nn.compact
  def __call__(self, x: Array) -> tuple[Array, Array]:
    input_gates = nn.Conv(4 * self.features, self.kernel_size, self.strides,
                          padding='SAME', name='input_conv')(x)
    recurrent = nn.Conv(4 * self.features, self.kernel_size, padding='SAME',
                        use_bias=False, name='recurrent_conv')
    gates_in = jnp.moveaxis(input_gates, -4, 0)  # [T, ..., h, w, 4F]

    def step(cell, carry, gate_in):
      c, h = carry
      gates = gate_in + cell(h)
      i, f, g, o = jnp.split(gates, 4, axis=-1)
      c = nn.sigmoid(f + 1.0) * c + nn.sigmoid(i) * jnp.tanh(g)
      h = nn.sigmoid(o) * jnp.tanh(c)
      return (c, h), h

    zeros = jnp.zeros(gates_in.shape[1:-1] + (self.features,),
                      gates_in.dtype)
    scan = nn.scan(step, variable_broadcast='params',
                   split_rngs={'params': False})
    _, hidden = scan(recurrent, (zeros, zeros), gates_in)
    hidden = jnp.moveaxis(hidden, 0, -4)
    batch = x.shape[0]
    steps = math.prod(x.shape[1:-3])
    out_hw = hidden.shape[-3:-1]
    macs = steps * (
        energy.conv_macs(out_hw, self.kernel_size, x.shape[-1],
                         4 * self.features)
        + energy.conv_macs(out_hw, self.kernel_size, self.features,
                           4 * self.features)
        # Gate products: f*c, i*g, o*tanh(c).
        + 3 * math.prod(out_hw) * self.features)
    energy.record(self, batch_size=batch, macs=macs)
    return hidden, hidden
