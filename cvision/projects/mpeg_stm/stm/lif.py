r"""Leaky integrate-and-fire dynamics with an arctan surrogate gradient.

The paper's neuron (Eq. 3-4), per layer l with input spikes (or currents)
`o^{l-1}`:

    u[t] = W o^{l-1}[t] + lambda u[t-1] - v_th o[t-1]
    o[t] = H(u[t] - v_th)

a soft reset by subtraction of the threshold. The Heaviside step `H` has no
useful derivative, so its backward pass uses the arctan surrogate

    dH/dx ~= (alpha / 2) / (1 + (pi / 2 * alpha * x)^2),

the derivative of `arctan(pi / 2 * alpha * x) / pi + 1 / 2` (as in
SpikingJelly and snnTorch); `alpha` sets its width (larger is narrower).
"""
from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from cvision.projects.mpeg_stm import energy

Array = jax.Array
DEFAULT_SURROGATE_ALPHA = 2.0


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def spike(x: Array, alpha: float = DEFAULT_SURROGATE_ALPHA) -> Array:
  """`H(x)`: 1.0 where x > 0, else 0.0; arctan surrogate gradient."""
  return jnp.where(x > 0, 1.0, 0.0).astype(jnp.result_type(x))


def surrogate_gradient(x: Array, alpha: float) -> Array:
  """The arctan surrogate of dH/dx (see the module docstring)."""
  return (alpha / 2) / (1 + jnp.square(math.pi / 2 * alpha * x))


def _spike_fwd(x, alpha):
  return spike(x, alpha), x


def _spike_bwd(alpha, x, g):
  return (g * surrogate_gradient(x, alpha).astype(g.dtype),)


spike.defvjp(_spike_fwd, _spike_bwd)


def lif_dynamics(currents: Array, v_th: Array, leak: Array,
                 alpha: float = DEFAULT_SURROGATE_ALPHA
                 ) -> tuple[Array, Array]:
  """Runs Eq. 3-4 over time from a rested neuron (u = o = 0).

  Args:
    currents: `[T, ...]` the synaptic input `W o^{l-1}[t]` at each step.
    v_th: threshold, a scalar (or broadcastable to `currents[0]`).
    leak: lambda, likewise.
    alpha: surrogate width.

  Returns:
    `(membrane, spikes)`, both `[T, ...]`.
  """
  def step(carry, current):
    u_prev, o_prev = carry
    u = current + leak * u_prev - v_th * o_prev
    o = spike(u - v_th, alpha)
    return (u, o), (u, o)

  zeros = jnp.zeros_like(currents[0])
  _, (membrane, spikes) = jax.lax.scan(step, (zeros, zeros), currents)
  return membrane, spikes


class ConvLIF(nn.Module):
  """A conv whose outputs are LIF neurons, run over a sequence.

  The conv is applied to every step at once (it does not depend on the
  state), then the neurons integrate over time. Threshold and leak are one
  scalar each per layer, learnt when `learn_dynamics` (the paper), else
  fixed at their initial values (the ablation).

  Attributes:
    features: output channels.
    kernel_size: spatial kernel.
    strides: spatial strides.
    v_th_init: initial threshold.
    leak_init: initial leak lambda, in [0, 1].
    learn_dynamics: learn v_th and lambda.
    surrogate_alpha: arctan surrogate width.
    binary_input: the input is spikes, so its synaptic operations are
      accumulates at the measured input spike rate (else MACs).
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  v_th_init: float = 1.0
  leak_init: float = 0.9
  learn_dynamics: bool = True
  surrogate_alpha: float = DEFAULT_SURROGATE_ALPHA
  binary_input: bool = False

  @nn.compact
  def __call__(self, x: Array) -> tuple[Array, Array]:
    """`[B, ..., T, H, W, C]` -> `(membrane, spikes)` `[B, ..., T, h, w, F]`.

    Time is axis -4; every leading axis is a batch axis (axis 0 the
    examples, for cost accounting).
    """
    conv = nn.Conv(self.features, self.kernel_size, self.strides,
                   padding='SAME', name='conv')
    currents = conv(x)
    if self.learn_dynamics:
      v_th = self.param('v_th', nn.initializers.constant(self.v_th_init), ())
      leak = self.param('leak', nn.initializers.constant(self.leak_init), ())
    else:
      v_th = jnp.asarray(self.v_th_init, currents.dtype)
      leak = jnp.asarray(self.leak_init, currents.dtype)
    # Keep the dynamics stable whatever the optimizer does.
    v_th = jnp.maximum(v_th, 1e-2).astype(currents.dtype)
    leak = jnp.clip(leak, 0.0, 1.0).astype(currents.dtype)
    membrane, spikes = lif_dynamics(jnp.moveaxis(currents, -4, 0), v_th,
                                    leak, self.surrogate_alpha)
    membrane = jnp.moveaxis(membrane, 0, -4)
    spikes = jnp.moveaxis(spikes, 0, -4)
    self._record_costs(x, currents, spikes)
    return membrane, spikes

  def _record_costs(self, x: Array, currents: Array, spikes: Array) -> None:
    batch = x.shape[0]
    steps = math.prod(x.shape[1:-3])  # Sequences per example x time steps.
    synaptic = steps * energy.conv_macs(currents.shape[-3:-1],
                                        self.kernel_size, x.shape[-1],
                                        self.features)
    neuron_steps = steps * math.prod(currents.shape[-3:])
    # Per neuron and step: the leak is a multiply, the input current and
    # the reset are additions (the reset only when the neuron fired).
    reset_acs = jnp.sum(spikes.reshape(batch, -1), axis=1)
    if self.binary_input:
      rate = jnp.mean(x.reshape(batch, -1).astype(jnp.float32), axis=1)
      energy.record(self, batch_size=batch, macs=neuron_steps,
                    acs=rate * synaptic + neuron_steps + reset_acs)
    else:
      energy.record(self, batch_size=batch, macs=synaptic + neuron_steps,
                    acs=neuron_steps + reset_acs)
    self.sow('intermediates', 'spike_rate',
             jnp.mean(spikes.astype(jnp.float32)))
