"""The train step and eval step that every model goes through.

`create_train_state` initialises parameters directly into their shardings;
`make_train_step` turns a task's pure loss into one `jax.jit`-compiled update
with explicit input and output shardings (what pjit became), gradient
accumulation, and bf16 compute over float32 parameters; `make_eval_step` does
the same for per-example evaluation metrics.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding

from cvision.core import sharding
from cvision.core.precision import cast_floating, compute_dtype
from cvision.core.task import Batch, EvalFn, Metrics, Task
from cvision.core.train_state import TrainState

PyTree = Any
# Train metric: 1.0 at a step whose loss or gradient was not finite.
NONFINITE_KEY = 'nonfinite'


def _split_variables(variables: PyTree) -> tuple[PyTree, PyTree]:
  variables = dict(variables)
  params = variables.pop('params')
  return params, variables


def _init_batch(batch_spec: Batch) -> Batch:
  # One example is enough to fix parameter shapes, and keeps init cheap.
  # canonicalize_dtype: int64 labels become int32 without x64, silently, as
  # they do when a real batch reaches the device.
  return {k: jnp.zeros((1,) + tuple(v.shape[1:]),
                       jax.dtypes.canonicalize_dtype(v.dtype))
          for k, v in batch_spec.items()}


def abstract_train_state(task: Task, tx: optax.GradientTransformation,
                         batch_spec: Batch, seed: int) -> TrainState:
  """The train state's shapes, with logical-partitioning boxes kept."""
  return jax.eval_shape(
      functools.partial(_boxed_init, task, tx, batch_spec),
      jax.random.PRNGKey(seed))


def _boxed_init(task: Task, tx: optax.GradientTransformation,
                batch_spec: Batch, rng: jax.Array) -> TrainState:
  init_rng, state_rng = jax.random.split(rng)
  params, collections = _split_variables(
      task.init(init_rng, _init_batch(batch_spec)))
  # optax maps over the boxes' values, so moments inherit the parameters'
  # logical axis names and hence their shardings.
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), collections=collections,
                    rng=state_rng)


def create_train_state(task: Task, tx: optax.GradientTransformation,
                       batch_spec: Batch, seed: int, mesh: Mesh,
                       rules) -> tuple[TrainState, PyTree]:
  """Initialises the train state directly into its shardings.

  Args:
    task: the model.
    tx: the optimizer.
    batch_spec: shapes and dtypes of a global batch (`jax.ShapeDtypeStruct`s
      or arrays).
    seed: parameters and the state's rng are a function of it.
    mesh: the device mesh.
    rules: logical-axis partition rules (see `sharding.state_shardings`).

  Returns:
    `(state, state_shardings)`.
  """
  boxed = abstract_train_state(task, tx, batch_spec, seed)
  shardings = sharding.state_shardings(boxed, mesh, rules)
  init = jax.jit(
      lambda rng: sharding.unbox(_boxed_init(task, tx, batch_spec, rng)),
      out_shardings=shardings)
  return init(jax.random.PRNGKey(seed)), shardings


def _accumulate_gradients(grad_fn: Callable, params: PyTree,
                          collections: PyTree, batch: Batch, rng: jax.Array,
                          num_micro_batches: int):
  """Averages gradients over micro-batches with `lax.scan`.

  Micro-batch i holds rows i, i+k, i+2k, ... of the batch: reshaping
  `[B, ...]` to `[B/k, k, ...]` keeps each device's rows on that device, so
  every micro-batch is still split over the whole `data` axis.
  """
  def split(x):
    x = x.reshape((x.shape[0] // num_micro_batches, num_micro_batches)
                  + x.shape[1:])
    return jnp.moveaxis(x, 1, 0)

  micro_batches = jax.tree.map(split, batch)
  rngs = jax.random.split(rng, num_micro_batches)

  def body(carry, inputs):
    grad_sum, collections = carry
    micro_batch, micro_rng = inputs
    (loss, (metrics, collections)), grads = grad_fn(
        params, collections, micro_batch, micro_rng)
    grad_sum = jax.tree.map(jnp.add, grad_sum, grads)
    return (grad_sum, collections), (loss, metrics)

  zeros = jax.tree.map(jnp.zeros_like, params)
  (grad_sum, collections), (losses, metrics) = jax.lax.scan(
      body, (zeros, collections), (micro_batches, rngs))
  grads = jax.tree.map(lambda g: g / num_micro_batches, grad_sum)
  metrics = jax.tree.map(jnp.mean, metrics)
  return jnp.mean(losses), metrics, collections, grads


def train_step(state: TrainState, batch: Batch, *, task: Task,
               tx: optax.GradientTransformation, grad_accum_steps: int,
               dtype: jnp.dtype) -> tuple[TrainState, Metrics]:
  """One optimizer update. Pure: the same (state, batch) gives the same out."""
  rng = jax.random.fold_in(state.rng, state.step)

  def loss_fn(params, collections, batch, rng):
    # Parameters stay float32; compute runs in `dtype` (bf16 when asked);
    # the cast is differentiable, so gradients arrive in float32.
    loss, (metrics, new_collections) = task.loss(
        cast_floating(params, dtype), collections,
        cast_floating(batch, dtype), rng)
    return loss.astype(jnp.float32), (metrics, new_collections)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if grad_accum_steps == 1:
    (loss, (metrics, collections)), grads = grad_fn(
        state.params, state.collections, batch, rng)
  else:
    loss, metrics, collections, grads = _accumulate_gradients(
        grad_fn, state.params, state.collections, batch, rng,
        grad_accum_steps)
  # Mutable collections keep their stored precision.
  collections = jax.tree.map(lambda new, old: new.astype(old.dtype),
                             collections, state.collections)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {k: v.astype(jnp.float32) for k, v in metrics.items()}
  grad_norm = optax.tree.norm(grads)
  metrics.update(loss=loss, grad_norm=grad_norm)
  # A non-finite loss or gradient is caught here, on device, at the step it
  # happens: the state keeps its previous (finite) values and the flag tells
  # the loop, which stops at its next look at the metrics without having
  # saved anything after this step. No extra host sync per step.
  # The new parameters too: a finite gradient times a huge learning rate
  # can overflow them, and the next checkpoint would hold them.
  finite = (jnp.isfinite(loss) & jnp.isfinite(grad_norm)
            & jnp.isfinite(optax.tree.norm(params)))
  metrics[NONFINITE_KEY] = (~finite).astype(jnp.float32)
  keep = lambda new, old: jnp.where(finite, new, old)
  new_state = state.replace(
      step=state.step + 1, params=jax.tree.map(keep, params, state.params),
      opt_state=jax.tree.map(keep, opt_state, state.opt_state),
      collections=jax.tree.map(keep, collections, state.collections))
  return new_state, metrics


def make_train_step(task: Task, tx: optax.GradientTransformation, *,
                    state_shardings: PyTree, mesh: Mesh,
                    grad_accum_steps: int = 1,
                    compute_dtype_name: str = 'float32'):
  """Returns `step(state, batch) -> (state, metrics)`, jitted with shardings.

  The state is donated: its buffers are reused for the new state.
  """
  if grad_accum_steps < 1:
    raise ValueError(f'train.grad_accum_steps={grad_accum_steps} must be '
                     '>= 1.')
  step = functools.partial(train_step, task=task, tx=tx,
                           grad_accum_steps=grad_accum_steps,
                           dtype=compute_dtype(compute_dtype_name))
  return jax.jit(
      step,
      in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
      out_shardings=(state_shardings, sharding.replicated(mesh)),
      donate_argnums=(0,))


def make_eval_step(eval_fn: EvalFn, *, state_shardings: PyTree, mesh: Mesh,
                   compute_dtype_name: str = 'float32'):
  """Returns `eval_step(params, collections, batch) -> per-example metrics`.

  `eval_fn` is a task's `evaluate` or another per-example function of the
  same signature (`cvision.core.evaluation.multi_clip`). Outputs stay
  sharded over the batch like the input.
  """
  dtype = compute_dtype(compute_dtype_name)

  def eval_step(params, collections, batch):
    metrics = eval_fn(cast_floating(params, dtype), collections,
                      cast_floating(batch, dtype))
    return {k: v.astype(jnp.float32) for k, v in metrics.items()}

  batch_sharding: NamedSharding = sharding.batch_sharding(mesh)
  return jax.jit(
      eval_step,
      in_shardings=(state_shardings.params, state_shardings.collections,
                    batch_sharding),
      out_shardings=batch_sharding)
