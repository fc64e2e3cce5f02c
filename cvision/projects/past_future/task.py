r"""The past-future task on long videos of codes (paper Sec. 4.6, App. D).

A batch holds whole videos: `codes` `[B, T, h, w, N]` (an hour at 25 fps of
64x64 frames is 11.5 MB of uint8 codes) and `video_index` `[B]`. Each video
is cut into C = T / `chunk_frames` chunks observed in order. At step t the
model writes chunk t into its memory, then answers Q queries: chunks drawn
uniformly from anywhere in the same video, each spatially cropped at random
(nearest-neighbour crop of the code grid, resized back to the grid) so that
a query is almost never identical to what was stored. The label is *past*
(1) when the query chunk q has been observed, q <= t, else *future* (0).
Causal: the memory after step t is a function of chunks 0..t only.

Training (App. D: "we only do backpropagation over these chunks individually,
and aggregate all such gradients together for the update step"): step t's
loss is differentiated with the memory of steps < t held constant
(`stop_gradient`), and the gradients of all steps are summed inside one
`jax.lax.scan`. Only one step's activations are alive at a time, so memory
does not grow with the number of chunks beyond the memory state itself (the
slot memory's `[B, C * t', D]` array). The core's train step differentiates
`loss`; here `loss` returns a value whose gradient *is* that aggregate
(`_with_gradient`), so the shared core applies one update per batch of
videos and shards it over videos like any other task.

Metrics: loss (binary cross-entropy), accuracy, accuracy_past and
accuracy_future (over queries of each kind), accuracy_first_half and
accuracy_second_half (over the steps of each half of the video), and
accuracy_step_balanced: per step, the mean of the past and future
accuracies, over steps with both. A model that only counts steps (past iff
t > C/2) is right about 3/4 of the time overall, in both halves, but scores
exactly 1/2 step-balanced: that column tells recognition from counting.
accuracy_near and accuracy_far (evaluation): over queries at most / more than
`near_chunks` chunks from the current step. A walk is continuous, so a query
next to the boundary looks like the last chunk seen whichever side it is;
far queries are where recognising the content should be easy.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from cvision.core import config_utils
from cvision.core import precision
from cvision.core import task as task_lib
from cvision.models import code_embedding
from cvision.projects.codec import frozen
from cvision.projects.past_future import network as model_lib

NAME = 'past_future'
CODES_KEY = 'codes'
VIDEO_INDEX_KEY = 'video_index'
PyTree = Any


def check_configs(config: ml_collections.ConfigDict):
  """(`config.model`, `config.past_future`), checked (their fields and
  defaults: experiments/configs/past_future.py)."""
  m, p = config.model, config.past_future
  if m.memory not in model_lib.MEMORIES:
    raise ValueError(f'config.model.memory={m.memory!r}: expected one of '
                     f'{model_lib.MEMORIES}.')
  if not (len(m.adapter_channels) == len(m.adapter_kernels)
          == len(m.adapter_strides)):
    raise ValueError('config.model.adapter_channels, adapter_kernels and '
                     'adapter_strides must have one entry per conv.')
  lo, hi = p.crop_scale
  if not 0 < lo <= hi <= 1:
    raise ValueError(f'config.past_future.crop_scale={p.crop_scale}: need '
                     '0 < min <= max <= 1.')
  counts = ('chunk_frames', 'queries_per_chunk', 'eval_queries_per_chunk',
            'chunks_per_block')
  small = [k for k in counts if p[k] < 1]
  if small:
    raise ValueError(f'config.past_future.{small[0]}={p[small[0]]} must be '
                     '>= 1.')
  return m, p


def build_model(m: ml_collections.ConfigDict,
                dtype: Any = jnp.float32) -> model_lib.PastFutureModel:
  """The network of `config.model` (nested sequences as tuples)."""
  fields = dict(m.items())
  fields['adapter_channels'] = tuple(m.adapter_channels)
  for name in ('adapter_kernels', 'adapter_strides'):
    fields[name] = tuple(tuple(k) for k in m[name])
  return config_utils.build_module(model_lib.PastFutureModel, fields,
                                   'past-future model', dtype=dtype)


# ---------------------------------------------------------------------------
# Queries: which chunk, which label, which crop.


@dataclasses.dataclass(frozen=True)
class QueryPlan:
  """The queries of a batch of videos, drawn before the scan.

  Attributes:
    chunks: `[C, B, Q] int32`, the query chunk of each (step, video, query).
    labels: `[C, B, Q] bool`, True (past) where `chunks <= step`.
    crop_keys: `[C, B]` PRNG keys, one per step and video for its queries'
      crops.
  """
  chunks: jax.Array
  labels: jax.Array
  crop_keys: jax.Array


jax.tree_util.register_dataclass(
    QueryPlan, data_fields=['chunks', 'labels', 'crop_keys'], meta_fields=[])


def plan_queries(rng: jax.Array, num_chunks: int, batch: int,
                 queries_per_chunk: int) -> QueryPlan:
  """Uniform query chunks over the whole video, and their labels."""
  chunk_rng, crop_rng = jax.random.split(rng)
  chunks = jax.random.randint(chunk_rng, (num_chunks, batch,
                                          queries_per_chunk), 0, num_chunks)
  steps = jnp.arange(num_chunks)[:, None, None]
  crop_keys = jax.random.split(crop_rng, num_chunks * batch)
  return QueryPlan(chunks, chunks <= steps,
                   crop_keys.reshape((num_chunks, batch) + crop_keys.shape[1:]))


def crop_codes(codes: jax.Array, rng: jax.Array,
               scale: tuple[float, float]) -> jax.Array:
  """Random spatial crops of code grids, resized back by nearest neighbour.

  Codes are discrete, so nearest neighbour is the only resampling that keeps
  them codes. Each example gets its own square-scaled crop (side `s * h`,
  `s` uniform in `scale`) at a uniform position; the same crop for all its
  frames.

  Args:
    codes: `[..., F, h, w, N]` integer codes.
    rng: PRNG key.
    scale: (min, max) crop side as a fraction of the grid side.

  Returns:
    `[..., F, h, w, N]`, same dtype.
  """
  lead, (f, h, w, n) = codes.shape[:-4], codes.shape[-4:]
  flat = codes.reshape((-1, f, h, w, n))

  def one(x, key):
    k_scale, k_y, k_x = jax.random.split(key, 3)
    s = jax.random.uniform(k_scale, (), minval=scale[0], maxval=scale[1])
    size_h = jnp.clip(jnp.round(s * h), 1, h).astype(jnp.int32)
    size_w = jnp.clip(jnp.round(s * w), 1, w).astype(jnp.int32)
    y0 = jax.random.randint(k_y, (), 0, h - size_h + 1)
    x0 = jax.random.randint(k_x, (), 0, w - size_w + 1)
    rows = y0 + jnp.floor((jnp.arange(h) + 0.5) * size_h / h).astype(
        jnp.int32)
    cols = x0 + jnp.floor((jnp.arange(w) + 0.5) * size_w / w).astype(
        jnp.int32)
    return x[:, rows][:, :, cols]

  out = jax.vmap(one)(flat, jax.random.split(rng, flat.shape[0]))
  return out.reshape(codes.shape)


def split_chunks(codes: jax.Array, chunk_frames: int) -> jax.Array:
  """`[B, T, h, w, N]` -> `[B, C, F, h, w, N]`; T must be a multiple of F."""
  b, t = codes.shape[:2]
  if t < chunk_frames or t % chunk_frames:
    raise ValueError(f'Videos of {t} code frames are not a whole number of '
                     f'chunks of config.past_future.chunk_frames='
                     f'{chunk_frames}.')
  return codes.reshape((b, t // chunk_frames, chunk_frames) + codes.shape[2:])


# ---------------------------------------------------------------------------
# One video, chunk by chunk.


def _bce(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.sigmoid_binary_cross_entropy(
      logits.astype(jnp.float32), labels.astype(jnp.float32))


def block_size(num_chunks: int, max_block: int) -> int:
  """The largest divisor of `num_chunks` not above `max_block` (>= 1)."""
  return max(k for k in range(1, max(1, min(max_block, num_chunks)) + 1)
             if num_chunks % k == 0)


@dataclasses.dataclass(frozen=True)
class VideoRunner:
  """Runs the model over whole videos (see the module docstring).

  `step_loss` is one step, the definition; `run` computes the same steps a
  block of `chunks_per_block` at a time: the adapter sees the block's chunks
  and queries as one batch (far faster on small grids than one chunk at a
  time), then the memory and core go through the block's steps in order.
  Within a block, as between blocks, the memory carried from a step to the
  next is a constant, so the block's gradient is exactly the sum of its
  steps' gradients, and activations are alive for one block at a time.
  """
  model: model_lib.PastFutureModel
  codebook: jax.Array  # [N, K, D] frozen, a constant.
  chunk_frames: int
  crop_scale: tuple[float, float]
  chunks_per_block: int = 1

  def embed(self, params: PyTree, codes: jax.Array) -> jax.Array:
    return code_embedding.embed_codes(self.codebook, codes,
                                      precision.floating_dtype(params))

  def initial_memory(self, params, batch: int, num_chunks: int):
    return self.model.apply({'params': params}, batch, num_chunks,
                            self.chunk_frames,
                            method=model_lib.PastFutureModel.initial_memory)

  def query_codes(self, chunks: jax.Array, plan: QueryPlan,
                  t: jax.Array) -> jax.Array:
    """Step t's cropped query chunks: `[B, Q, F, h, w, N]`."""
    index = plan.chunks[t]  # [B, Q]
    batch = jnp.arange(chunks.shape[0])[:, None]
    crop = lambda codes, key: crop_codes(codes, key, self.crop_scale)
    return jax.vmap(crop)(chunks[batch, index], plan.crop_keys[t])

  def step_loss(self, params, state, chunks: jax.Array, plan: QueryPlan,
                t: jax.Array):
    """Step t alone: `(mean BCE over videos and queries, (state, logits))`.

    `state` is the memory after steps < t, a constant here.
    """
    chunk = jax.lax.dynamic_index_in_dim(chunks, t, axis=1, keepdims=False)
    queries = self.query_codes(chunks, plan, t)
    state, logits = self.model.apply(
        {'params': params}, state, self.embed(params, chunk),
        self.embed(params, queries), t,
        method=model_lib.PastFutureModel.step)
    return jnp.mean(_bce(logits, plan.labels[t])), (state, logits)

  def block_loss(self, params, state, chunks: jax.Array, plan: QueryPlan,
                 first: jax.Array, size: int):
    """Steps `first .. first + size - 1`: the sum of their `step_loss`es.

    Returns:
      `(loss, (state after the block, logits [size, B, Q]))`.
    """
    block = jax.lax.dynamic_slice_in_dim(chunks, first, size, axis=1)
    steps = first + jnp.arange(size)
    queries = jax.vmap(lambda t: self.query_codes(chunks, plan, t))(steps)
    adapt = lambda x: self.model.apply(
        {'params': params}, self.embed(params, x),
        method=model_lib.PastFutureModel.adapt)
    tokens = jnp.moveaxis(adapt(block), 1, 0)  # [size, B, t', D]
    query_tokens = adapt(queries)  # [size, B, Q, t', D]

    def one_step(state, inputs):
      t, chunk_tokens, q_tokens = inputs
      state, logits = self.model.apply(
          {'params': params}, state, chunk_tokens, q_tokens, t,
          method=model_lib.PastFutureModel.step_tokens)
      loss = jnp.mean(_bce(logits, plan.labels[t]))
      # What is written stays written: later steps do not backpropagate
      # into earlier chunks.
      return jax.lax.stop_gradient(state), (loss, logits)

    state, (losses, logits) = jax.lax.scan(
        one_step, state, (steps, tokens, query_tokens))
    return jnp.sum(losses), (state, logits)

  def run(self, params, codes: jax.Array, plan: QueryPlan, *,
          with_grads: bool, keep_states: bool = False):
    """Every step of a batch of videos, a block of steps per scan step.

    Args:
      params: the model parameters.
      codes: `[B, T, h, w, N]`.
      plan: the queries (`plan_queries` with C = T / chunk_frames).
      with_grads: also return the mean over steps of each step's gradient.
      keep_states: also return the memory after every block (tests, small
        videos only: C / block copies of the memory).

    Returns:
      dict with `logits` `[C, B, Q]`, `grads` (or None), `states` (or None).
    """
    chunks = split_chunks(codes, self.chunk_frames)
    batch, num_chunks = chunks.shape[:2]
    size = block_size(num_chunks, self.chunks_per_block)
    loss_fn = lambda p, state, first: self.block_loss(p, state, chunks, plan,
                                                      first, size)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def body(carry, first):
      state, grad_sum = carry
      if with_grads:
        (_, (state, logits)), grads = grad_fn(params, state, first)
        grad_sum = jax.tree.map(jnp.add, grad_sum, grads)
      else:
        _, (state, logits) = loss_fn(params, state, first)
      return (state, grad_sum), (logits, state if keep_states else None)

    zeros = jax.tree.map(jnp.zeros_like, params) if with_grads else None
    state = self.initial_memory(params, batch, num_chunks)
    (_, grad_sum), (logits, states) = jax.lax.scan(
        body, (state, zeros), jnp.arange(0, num_chunks, size))
    grads = (jax.tree.map(lambda g: g / num_chunks, grad_sum)
             if with_grads else None)
    return {'logits': logits.reshape((num_chunks,) + logits.shape[2:]),
            'grads': grads, 'states': states}


def per_video_metrics(logits: jax.Array, labels: jax.Array,
                      query_chunks: jax.Array | None = None,
                      near_chunks: int = 6) -> dict[str, jax.Array]:
  """`[C, B, Q]` logits and bool labels -> metrics `[B]` (see docstring).

  With `query_chunks` (`[C, B, Q]`, the chunk each query shows), also
  accuracy_near / accuracy_far: queries at most / more than `near_chunks`
  from the step that asks them.
  """
  labels = labels.astype(bool)
  correct = ((logits > 0) == labels).astype(jnp.float32)
  num_chunks = logits.shape[0]
  first = (jnp.arange(num_chunks) < num_chunks / 2)[:, None, None]

  def mean_where(mask):
    mask = jnp.broadcast_to(mask, correct.shape).astype(jnp.float32)
    return jnp.sum(correct * mask, axis=(0, 2)) / jnp.maximum(
        jnp.sum(mask, axis=(0, 2)), 1.0)

  # Step-balanced: at each step that has queries of both kinds, the mean of
  # its past and future accuracies, averaged over such steps. Answering from
  # the step count alone (past iff t > C/2) is right 3/4 of the time overall
  # but scores exactly 1/2 here; only recognising the query scores higher.
  past = labels.astype(jnp.float32)
  future = 1.0 - past
  step_past = jnp.sum(correct * past, axis=2) / jnp.maximum(
      jnp.sum(past, axis=2), 1.0)
  step_future = jnp.sum(correct * future, axis=2) / jnp.maximum(
      jnp.sum(future, axis=2), 1.0)
  both = ((jnp.sum(past, axis=2) > 0) & (jnp.sum(future, axis=2) > 0)).astype(
      jnp.float32)  # [C, B]
  step_balanced = jnp.sum(0.5 * (step_past + step_future) * both,
                          axis=0) / jnp.maximum(jnp.sum(both, axis=0), 1.0)
  metrics = {
      'loss': jnp.mean(_bce(logits, labels), axis=(0, 2)),
      'accuracy': jnp.mean(correct, axis=(0, 2)),
      'accuracy_step_balanced': step_balanced,
      'accuracy_past': mean_where(labels),
      'accuracy_future': mean_where(~labels),
      'accuracy_first_half': mean_where(first),
      'accuracy_second_half': mean_where(~first),
  }
  if query_chunks is not None:
    steps = jnp.arange(num_chunks)[:, None, None]
    near = jnp.abs(query_chunks - steps) <= near_chunks
    metrics['accuracy_near'] = mean_where(near)
    metrics['accuracy_far'] = mean_where(~near)
  return metrics


def _with_gradient(value: jax.Array, params: PyTree,
                   grads: PyTree) -> jax.Array:
  """`value`, with `grads` as its gradient with respect to `params`.

  The core differentiates the loss; the gradient we want was computed step
  by step inside the scan. `value + <params, g> - stop_gradient(<params,
  g>)` has that value and, since g is constant, exactly g as its gradient.
  """
  grads = jax.lax.stop_gradient(grads)
  inner = sum(jnp.vdot(p, g.astype(p.dtype)) for p, g in zip(
      jax.tree.leaves(params), jax.tree.leaves(grads)))
  return value + inner - jax.lax.stop_gradient(inner)


# ---------------------------------------------------------------------------
# The task.


def _frozen_codebook(config: ml_collections.ConfigDict) -> np.ndarray:
  """The codebook of the codec that wrote `data.dataset_dir`, checked."""
  if not config.data.dataset_dir:
    raise ValueError('The past-future task reads long videos of codes: pass '
                     '--config.data.dataset_dir=<a directory written by '
                     'python -m cvision.projects.codec.long_video_codes>.')
  return frozen.codec_for_code_dataset(
      config.codec, config.data.dataset_dir,
      what='The past-future task').codebook


def standardize(codebook: np.ndarray) -> np.ndarray:
  """Each codebook's entries centred and scaled to unit variance.

  A fixed, data-independent change of the inputs (the codebook is frozen):
  the adapter then starts from zero-mean inputs, whatever the codec.
  """
  codebook = np.asarray(codebook, np.float32)
  centred = codebook - codebook.mean(axis=1, keepdims=True)
  return centred / (centred.std(axis=(1, 2), keepdims=True) + 1e-6)


def build_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  """The past-future task of `config.model.memory` on `data.dataset_dir`."""
  return build(config).task


@dataclasses.dataclass(frozen=True)
class PastFuture:
  """The past-future task and its parts (tests and benchmarks drive them).

  Attributes:
    task: the core's task.
    runner: runs a batch of videos chunk by chunk (`VideoRunner`).
    training_queries: `(codes, rng) -> (codes, plan)`, what `loss` runs on.
  """
  task: task_lib.Task
  runner: 'VideoRunner'
  training_queries: Any


def build(config: ml_collections.ConfigDict) -> PastFuture:
  """The past-future task of `config.model.memory` on `data.dataset_dir`."""
  m, p = check_configs(config)
  dtype = precision.compute_dtype(config.train.compute_dtype)
  model = build_model(m, dtype)
  codebook = standardize(_frozen_codebook(config))
  runner = VideoRunner(model, jnp.asarray(codebook), p.chunk_frames,
                       tuple(p.crop_scale), p.chunks_per_block)

  def check_length(codes):
    if p.video_frames and codes.shape[1] != p.video_frames:
      raise ValueError(f'The videos have {codes.shape[1]} frames of codes; '
                       f'config.past_future.video_frames={p.video_frames} '
                       '(the length preset) expects another length.')
    split_chunks(codes, p.chunk_frames)

  def init(rng, batch):
    codes = batch[CODES_KEY]
    check_length(codes)
    chunk = runner.embed({}, codes[:1, :p.chunk_frames])
    return model.init(rng, chunk, chunk[:, None])

  def training_queries(codes, rng):
    """`(codes, plan)`: videos randomly played backwards, and queries."""
    reverse_rng, query_rng = jax.random.split(rng)
    # A walk played backwards is another cut-free walk: twice the videos,
    # and no link between content and time survives in the training set.
    backwards = jax.random.bernoulli(reverse_rng, p.reverse_prob,
                                     (codes.shape[0],))
    codes = jnp.where(backwards[:, None, None, None, None],
                      codes[:, ::-1], codes)
    num_chunks = codes.shape[1] // p.chunk_frames
    return codes, plan_queries(query_rng, num_chunks, codes.shape[0],
                               p.queries_per_chunk)

  def loss(params, collections, batch, rng):
    codes, plan = training_queries(batch[CODES_KEY], rng)
    out = runner.run(jax.lax.stop_gradient(params), codes, plan,
                     with_grads=True)
    metrics = {k: jnp.mean(v) for k, v in
               per_video_metrics(out['logits'], plan.labels).items()
               # Needs several queries per step; training draws one.
               if k != 'accuracy_step_balanced' or p.queries_per_chunk > 1}
    value = _with_gradient(metrics['loss'], params, out['grads'])
    return value, (metrics, collections)

  def evaluate(params, collections, batch):
    del collections
    codes = batch[CODES_KEY]
    num_chunks = codes.shape[1] // p.chunk_frames
    # Each video's queries depend on its index only, not on its batch.
    keys = jax.vmap(lambda i: jax.random.fold_in(
        jax.random.PRNGKey(p.eval_seed), i))(batch[VIDEO_INDEX_KEY])
    plans = jax.vmap(lambda k: plan_queries(
        k, num_chunks, 1, p.eval_queries_per_chunk))(keys)
    # Each field [B, C, 1, ...] -> [C, B, ...].
    plan = jax.tree.map(lambda x: jnp.moveaxis(x[:, :, 0], 0, 1), plans)
    out = runner.run(params, codes, plan, with_grads=False)
    return per_video_metrics(out['logits'], plan.labels, plan.chunks,
                             p.near_chunks)

  task = task_lib.Task(
      name=NAME, init=init, loss=loss, evaluate=evaluate,
      input_keys=(CODES_KEY, VIDEO_INDEX_KEY), time_keys=(CODES_KEY,))
  return PastFuture(task, runner, training_queries)
