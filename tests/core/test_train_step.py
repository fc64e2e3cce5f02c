"""The shared train step: accumulation, precision, collections, learning."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.core.task import Task


def _linear_task(collection_counter=False):
  """y = x @ w, squared error; optionally counts calls in a collection."""

  def init(rng, batch):
    variables = {'params': {'w': jax.random.normal(
        rng, (batch['x'].shape[-1], 1))}}
    if collection_counter:
      variables['counter'] = {'calls': jnp.zeros((), jnp.int32)}
    return variables

  def loss(params, collections, batch, rng):
    del rng
    pred = batch['x'] @ params['w']
    value = jnp.mean((pred[:, 0] - batch['y']) ** 2)
    if collection_counter:
      collections = {'counter': {'calls': collections['counter']['calls'] + 1}}
    is_bf16 = jnp.asarray(params['w'].dtype == jnp.bfloat16, jnp.float32)
    return value, ({'mse': value, 'computed_in_bf16': is_bf16}, collections)

  def evaluate(params, collections, batch):
    del collections
    return {'abs_error': jnp.abs(batch['x'] @ params['w'])[:, 0] - batch['y']}

  return Task(name='linear', init=init, loss=loss, evaluate=evaluate,
              input_keys=('x', 'y'))


def _batch(n=8, d=3, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)
  return {'x': jnp.asarray(x), 'y': jnp.asarray(y)}


def _setup(task, tx, batch, **step_kwargs):
  mesh = sharding.make_mesh(_mesh_config())
  spec = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
  state, shardings = train_step_lib.create_train_state(task, tx, spec, 0, mesh,
                                                       [])
  step = train_step_lib.make_train_step(task, tx, state_shardings=shardings,
                                        mesh=mesh, **step_kwargs)
  return state, step


def _mesh_config():
  import ml_collections
  return ml_collections.ConfigDict({'shape': (-1, 1),
                                    'axes': ('data', 'model')})


def test_gradient_accumulation_matches_the_full_batch():
  task, tx, batch = _linear_task(), optax.sgd(0.1), _batch()
  state_a, step_a = _setup(task, tx, batch, grad_accum_steps=1)
  state_b, step_b = _setup(task, tx, batch, grad_accum_steps=4)
  np.testing.assert_array_equal(state_a.params['w'], state_b.params['w'])
  state_a, metrics_a = step_a(state_a, batch)
  state_b, metrics_b = step_b(state_b, batch)
  # The mean of 4 micro-batch means equals the full-batch mean (equal sizes).
  np.testing.assert_allclose(state_a.params['w'], state_b.params['w'],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics_a['loss'], metrics_b['loss'], rtol=1e-5)


def test_sgd_step_applies_the_hand_computed_gradient():
  task, tx, batch = _linear_task(), optax.sgd(0.1), _batch()
  state, step = _setup(task, tx, batch)
  w = np.asarray(state.params['w'])
  x, y = np.asarray(batch['x']), np.asarray(batch['y'])
  grad = 2 * x.T @ (x @ w - y[:, None]) / len(y)
  new_state, metrics = step(state, batch)
  np.testing.assert_allclose(new_state.params['w'], w - 0.1 * grad, rtol=1e-5)
  np.testing.assert_allclose(metrics['grad_norm'], np.linalg.norm(grad),
                             rtol=1e-5)
  assert int(new_state.step) == 1


def test_bf16_compute_keeps_float32_parameters():
  task, tx, batch = _linear_task(), optax.adam(1e-2), _batch()
  state, step = _setup(task, tx, batch, compute_dtype_name='bfloat16')
  state, metrics = step(state, batch)
  assert float(metrics['computed_in_bf16']) == 1.0
  assert state.params['w'].dtype == jnp.float32
  assert jax.tree.leaves(state.opt_state)[1].dtype == jnp.float32


def test_unknown_compute_dtype_is_named():
  with pytest.raises(ValueError, match="compute_dtype='float16'"):
    _setup(_linear_task(), optax.sgd(0.1), _batch(),
           compute_dtype_name='float16')


def test_mutable_collections_are_threaded_through_micro_batches():
  task, tx, batch = _linear_task(collection_counter=True), optax.sgd(0.1), _batch()
  state, step = _setup(task, tx, batch, grad_accum_steps=2)
  state, _ = step(state, batch)
  state, _ = step(state, batch)
  assert int(state.collections['counter']['calls']) == 4


def test_training_lowers_the_loss():
  task, tx, batch = _linear_task(), optax.adam(0.05), _batch()
  state, step = _setup(task, tx, batch)
  losses = []
  for _ in range(30):
    state, metrics = step(state, batch)
    losses.append(float(metrics['loss']))
  assert losses[-1] < 0.1 * losses[0]


def _task_with_a_fixed_part(boxed):
  """y = x @ (w + fixed): only `w` should train when `fixed` is frozen."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  def init(rng, batch):
    d = batch['x'].shape[-1]
    fixed = jax.random.normal(rng, (d, 1))
    if boxed:  # As S3D's parameters come: with logical axis names.
      fixed = nn.Partitioned(fixed, names=(None, None))
    return {'params': {'fixed': fixed, 'w': jnp.zeros((d, 1))}}

  def loss(params, collections, batch, rng):
    del rng
    pred = batch['x'] @ (params['w'] + params['fixed'])
    value = jnp.mean((pred[:, 0] - batch['y']) ** 2)
    return value, ({'mse': value}, collections)

  return Task(name='fixed', init=init, loss=loss,
              evaluate=lambda p, c, b: {}, input_keys=('x', 'y'),
              frozen=lambda params: {'fixed': jax.tree.map(
                  lambda _: True, params['fixed']), 'w': False})


@pytest.mark.parametrize('boxed', [False, True])
def test_frozen_parameters_never_move_even_with_weight_decay(boxed):
  from cvision.core import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  from experiments.configs import base  # pylint: disable=g-import-not-at-top
  config = base.get_base_config().optimizer
  config.update({'name': 'adam', 'learning_rate': 0.05,
                 'schedule': 'constant', 'weight_decay': 1e-5})
  task, batch = _task_with_a_fixed_part(boxed), _batch()
  adam = optimizer_lib.make_optimizer(config, 100)
  # Without the freeze, weight decay alone moves every weight by a full
  # Adam step: the frozen-backbone bug this guards against.
  state, step = _setup(task, adam, batch)
  fixed = np.asarray(state.params['fixed'])
  moved, _ = step(state, batch)
  np.testing.assert_allclose(np.abs(moved.params['fixed'] - fixed), 0.05,
                             rtol=1e-3)
  tx = optimizer_lib.freeze(adam, task.frozen)
  state, step = _setup(task, tx, batch)
  losses = []
  for _ in range(30):
    state, metrics = step(state, batch)
    losses.append(float(metrics['loss']))
  np.testing.assert_array_equal(state.params['fixed'], fixed)
  assert losses[-1] < 0.5 * losses[0]  # w still trains.
  # Adam keeps moments for w alone.
  moments = [x for x in jax.tree.leaves(state.opt_state) if x.ndim == 2]
  assert len(moments) == 2 and all(m.shape == (3, 1) for m in moments)
  assert optimizer_lib.freeze(adam, None) is adam
