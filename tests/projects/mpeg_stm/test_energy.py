"""MAC / AC counting and energy at 4.6 pJ/MAC and 0.9 pJ/AC."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cvision.projects.mpeg_stm import energy
from cvision.projects.mpeg_stm.stm import lif


def test_counts_and_energy_by_hand():
  # 8x8 outputs of a 3x3 conv from 4 to 16 channels.
  assert energy.conv_macs((8, 8), (3, 3), 4, 16) == 64 * 9 * 4 * 16
  assert energy.dense_macs(10, 32, 64) == 10 * 32 * 64
  assert energy.attention_macs(10, 20, 16) == 2 * 10 * 20 * 16
  np.testing.assert_allclose(energy.energy_joules(1e9, 0), 4.6e-3)
  np.testing.assert_allclose(energy.energy_joules(0, 1e9), 0.9e-3)


def test_conv_count_matches_xla():
  x = jnp.ones((1, 16, 16, 4))
  # VALID: XLA leaves out the products with SAME's zero padding, which
  # `conv_macs` (like most FLOP counters) includes.
  conv = nn.Conv(8, (3, 3), (2, 2), padding='VALID', use_bias=False)
  params = conv.init(jax.random.key(0), x)
  flops = energy.xla_flops(lambda p: conv.apply(p, x), params)
  assert flops == 2 * energy.conv_macs((7, 7), (3, 3), 4, 8)


def test_spiking_layer_costs_follow_the_input_spike_rate():
  layer = lif.ConvLIF(2, (1, 1), binary_input=True)
  spikes = jnp.zeros((2, 1, 4, 2, 2, 3)).at[0].set(1.0)  # Example 0 fires.
  params = layer.init(jax.random.key(0), spikes)['params']
  _, state = jax.jit(lambda p: layer.apply({'params': p}, spikes,
                                           mutable=['costs']))(params)
  costs = energy.totals(state['costs'])
  neuron_steps = 4 * 2 * 2 * 2
  synaptic = 4 * energy.conv_macs((2, 2), (1, 1), 3, 2)
  # Leak multiplies are MACs; synaptic ops are ACs at the spike rate.
  np.testing.assert_array_equal(costs['macs'], [neuron_steps] * 2)
  assert costs['acs'][0] >= synaptic + neuron_steps
  assert costs['acs'][1] == neuron_steps  # Silent input: no synaptic ACs.


def test_totals_sums_nested_records():
  class Two(nn.Module):

    @nn.compact
    def __call__(self, x):
      energy.record(self, batch_size=2, macs=3.0)
      energy.record(self, batch_size=2, macs=4.0, acs=jnp.array([1.0, 2.0]))
      return x

  _, state = Two().apply({}, jnp.zeros(2), mutable=['costs'])
  costs = energy.totals(state['costs'])
  np.testing.assert_array_equal(costs['macs'], [7.0, 7.0])
  np.testing.assert_array_equal(costs['acs'], [1.0, 2.0])
