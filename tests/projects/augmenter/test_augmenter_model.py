"""The network a(z, p): shapes, dependence on p, windows over time."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.projects.augmenter import network as augmenter

SMALL = dict(mlp_features=(8, 8), width=16, num_layers=1, num_heads=2,
             ffw_size=16, max_frames=4, attention='factorized',
             position_init='sinusoidal', time_positions=True)


def _inputs(b=2, t=4, c=6):
  rng = np.random.default_rng(0)
  latents = rng.normal(size=(b, t, 3, 5, c)).astype(np.float32)
  params = rng.uniform(size=(b, 3)).astype(np.float32)
  return jnp.asarray(latents), jnp.asarray(params)


def _randomised(variables, seed=1):
  """The variables with every leaf random (the output layer starts at 0)."""
  leaves, tree = jax.tree.flatten(variables)
  rng = np.random.default_rng(seed)
  return jax.tree.unflatten(
      tree, [0.3 * rng.normal(size=x.shape).astype(np.float32)
             for x in leaves])


@pytest.fixture(scope='module')
def net_and_variables():
  net = augmenter.AugmentationNetwork(**SMALL)
  latents, params = _inputs()
  variables = jax.jit(net.init)(jax.random.PRNGKey(0), latents, params)
  return jax.jit(net.apply), variables


def test_output_has_the_latent_shape_and_starts_as_the_identity(
    net_and_variables):
  apply, variables = net_and_variables
  latents, params = _inputs()
  out = apply(variables, latents, params)
  assert out.shape == latents.shape
  np.testing.assert_allclose(out, latents, atol=1e-6)
  positions = variables['params']['transformer']['position_embedding']
  np.testing.assert_allclose(
      positions, augmenter.sinusoidal_positions((4, 3, 5), 16), atol=1e-6)


def test_output_depends_on_the_parameters(net_and_variables):
  apply, variables = net_and_variables
  variables = _randomised(variables)
  latents, params = _inputs()
  a = apply(variables, latents, params)
  b = apply(variables, latents, params.at[0].add(0.5))
  assert float(jnp.max(jnp.abs(a[0] - b[0]))) > 1e-3
  np.testing.assert_allclose(a[1], b[1], atol=1e-6)  # Per clip.


def test_long_clips_go_through_in_windows(net_and_variables):
  apply, variables = net_and_variables
  variables = _randomised(variables)
  latents, params = _inputs(t=6)
  out = apply(variables, latents, params)
  # Windows [0, 4) and [2, 6); where they overlap the later one is kept.
  first = apply(variables, latents[:, :4], params)
  second = apply(variables, latents[:, 2:], params)
  np.testing.assert_allclose(out[:, :2], first[:, :2], atol=1e-5)
  np.testing.assert_allclose(out[:, 2:], second, atol=1e-5)
  assert augmenter.time_windows(16, 4) == [0, 4, 8, 12]
  assert augmenter.time_windows(3, 4) == [0]


def test_joint_attention_has_the_same_interface():
  net = augmenter.AugmentationNetwork(**dict(SMALL, attention='joint'))
  latents, params = _inputs(t=2)
  variables = jax.jit(net.init)(jax.random.PRNGKey(0), latents, params)
  out = jax.jit(net.apply)(_randomised(variables), latents, params)
  assert out.shape == latents.shape


def test_bad_inputs_raise():
  net = augmenter.AugmentationNetwork(**dict(SMALL, attention='sparse'))
  latents, params = _inputs()
  with pytest.raises(ValueError, match="attention='sparse'"):
    net.init(jax.random.PRNGKey(0), latents, params)
  net = augmenter.AugmentationNetwork(**dict(SMALL, position_init='zeros'))
  with pytest.raises(ValueError, match="position_init='zeros'"):
    net.init(jax.random.PRNGKey(0), latents, params)
  net = augmenter.AugmentationNetwork(**SMALL)
  with pytest.raises(ValueError, match='differ in batch size'):
    net.init(jax.random.PRNGKey(0), latents, params[:1])


def test_position_table_starts_as_sinusoids_of_t_y_x():
  table = augmenter.sinusoidal_positions((4, 3, 5), 16)
  assert table.shape == (4, 3, 5, 16)
  # 4 channels per axis: sin(i), sin(i / 100), cos(i), cos(i / 100).
  t, y, x = 2, 1, 3
  np.testing.assert_allclose(table[t, y, x, :4],
                             [np.sin(t), np.sin(t / 100), np.cos(t),
                              np.cos(t / 100)], rtol=1e-6)
  np.testing.assert_allclose(table[t, y, x, 4:8],
                             [np.sin(y), np.sin(y / 100), np.cos(y),
                              np.cos(y / 100)], rtol=1e-6)
  np.testing.assert_allclose(table[t, y, x, 8], np.sin(x), rtol=1e-6)
  np.testing.assert_array_equal(table[..., 12:], 0)


@pytest.mark.parametrize('time_positions', [True, False])
def test_a_still_clip_stays_still_only_without_time_positions(time_positions):
  net = augmenter.AugmentationNetwork(
      **dict(SMALL, time_positions=time_positions))
  latents, params = _inputs(t=4)
  still = jnp.repeat(latents[:, :1], 4, axis=1)
  variables = jax.jit(net.init)(jax.random.PRNGKey(0), still, params)
  table = variables['params']['transformer']['position_embedding']
  assert table.shape == ((4 if time_positions else 1), 3, 5, 16)
  out = jax.jit(net.apply)(_randomised(variables), still, params)
  frame_change = float(jnp.max(jnp.abs(out[:, 1:] - out[:, :1])))
  if time_positions:
    assert frame_change > 1e-2  # The table tells frames apart.
  else:
    assert frame_change < 1e-5
    # ... yet the network still transforms each frame.
    assert float(jnp.max(jnp.abs(out - still))) > 1e-2
