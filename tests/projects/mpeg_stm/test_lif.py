"""ConvLIF: surrogate gradient, hand-computed dynamics, reset per GOP."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.projects.mpeg_stm.stm import lif


def test_spike_is_a_step_with_the_arctan_surrogate_gradient():
  x = jnp.array([-1.0, -0.1, 0.0, 0.1, 1.0])
  np.testing.assert_array_equal(lif.spike(x, 2.0), [0, 0, 0, 1, 1])
  grad = jax.vmap(jax.grad(lambda v: lif.spike(v, 2.0)))(
      jnp.array([0.0, 0.5, -0.5]))
  # (alpha / 2) / (1 + (pi / 2 * alpha * x)^2) with alpha = 2.
  expected = [1.0, 1 / (1 + (math.pi / 2) ** 2), 1 / (1 + (math.pi / 2) ** 2)]
  np.testing.assert_allclose(grad, expected, rtol=1e-6)
  # A wider alpha is a taller, narrower surrogate.
  np.testing.assert_allclose(jax.grad(lambda v: lif.spike(v, 10.0))(0.0), 5.0)


def test_lif_dynamics_hand_computed():
  """u[t] = I[t] + lambda u[t-1] - v_th o[t-1], o[t] = H(u[t] - v_th)."""
  currents = jnp.array([0.6, 0.6, 0.6, 0.0, 1.5, 0.0])
  membrane, spikes = lif.lif_dynamics(currents, v_th=1.0, leak=0.5)
  # 0.6; 0.6 + 0.3 = 0.9; 0.6 + 0.45 = 1.05 (fires); 0 + 0.525 - 1 =
  # -0.475; 1.5 - 0.2375 = 1.2625 (fires); 0.63125 - 1 = -0.36875.
  np.testing.assert_allclose(
      membrane, [0.6, 0.9, 1.05, -0.475, 1.2625, -0.36875], rtol=1e-6)
  np.testing.assert_array_equal(spikes, [0, 0, 1, 0, 1, 0])


def test_threshold_and_leak_get_gradients():
  currents = jnp.array([0.5, 0.5, 0.9])

  def total_membrane(v_th, leak):
    return jnp.sum(lif.lif_dynamics(currents, v_th, leak)[0])

  # Far below threshold no neuron fires and the surrogate is ~0:
  # u = (0.5, 0.5 + 0.5 l, 0.9 + l u2), so d/dl sum = 0.5 + (u2 + 0.5 l)
  # = 0.5 + 0.75 + 0.25 at l = 0.5.
  d_v_th, d_leak = jax.grad(total_membrane, argnums=(0, 1))(1e4, 0.5)
  np.testing.assert_allclose(d_leak, 1.5, rtol=1e-4)
  assert abs(d_v_th) < 1e-3
  # With spikes, the reset term makes the loss depend on v_th.
  d_v_th, _ = jax.grad(total_membrane, argnums=(0, 1))(0.4, 0.5)
  assert d_v_th != 0.0


def _identity_conv_lif(**kwargs):
  layer = lif.ConvLIF(1, kernel_size=(1, 1), leak_init=0.5, **kwargs)
  x = jnp.zeros((1, 2, 6, 1, 1, 1))  # [B, G, T, H, W, C]
  params = layer.init(jax.random.key(0), x)['params']
  params['conv'] = {'kernel': jnp.ones((1, 1, 1, 1)), 'bias': jnp.zeros(1)}
  return layer, params


def test_conv_lif_runs_each_gop_from_rest():
  layer, params = _identity_conv_lif()
  assert set(params) == {'conv', 'v_th', 'leak'}
  sequence = jnp.array([0.6, 0.6, 0.6, 0.0, 1.5, 0.0])
  x = jnp.stack([sequence, sequence])[None, :, :, None, None, None]
  membrane, spikes = jax.jit(layer.apply)({'params': params}, x)
  assert membrane.shape == spikes.shape == (1, 2, 6, 1, 1, 1)
  expected = [0.6, 0.9, 1.05, -0.475, 1.2625, -0.36875]
  # Both GOPs see the same P-frames from a rested neuron: same potentials.
  np.testing.assert_allclose(membrane[0, 0, :, 0, 0, 0], expected, rtol=1e-6)
  np.testing.assert_allclose(membrane[0, 1, :, 0, 0, 0], expected, rtol=1e-6)


def test_fixed_dynamics_have_no_parameters():
  _, params = _identity_conv_lif(learn_dynamics=False)
  assert set(params) == {'conv'}


@pytest.mark.parametrize('leak', [-0.5, 1.5])
def test_leak_is_kept_in_unit_interval(leak):
  layer, params = _identity_conv_lif()
  params['leak'] = jnp.asarray(leak)
  x = jnp.ones((1, 1, 3, 1, 1, 1)) * 0.1
  membrane, _ = jax.jit(layer.apply)({'params': params}, x)
  clipped = min(max(leak, 0.0), 1.0)
  np.testing.assert_allclose(membrane[0, 0, :, 0, 0, 0],
                             [0.1, 0.1 + 0.1 * clipped,
                              0.1 + clipped * (0.1 + 0.1 * clipped)],
                             rtol=1e-6)
