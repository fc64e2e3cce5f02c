"""What a model brings to the shared train-step core.

A project (codec, augmenter, S3D, memory models, ...) is a `Task`: a way to
initialise variables, a pure loss, and a pure evaluation function. The core
(`cvision.core.train_step`, `cvision.core.trainer`,
`cvision.core.evaluation`) owns everything else: optimizer, sharding,
precision, gradient accumulation, checkpoints, logging, the evaluation loop.
What else a project's own modes need from its model it declares in its own
typed objects, not here.

Conventions
-----------
* `variables` is a Flax variables dict: `{'params': ..., <collection>: ...}`.
  Every collection other than `params` is *mutable state* (batch statistics,
  codebook EMA statistics, ...): the loss returns its new value and the core
  stores it in the train state. Parameters may be boxed with
  `nn.with_logical_partitioning`; the core unboxes them.
* `batch` is a dict of arrays whose leading axis is the (global) batch.
* Losses are pure: no Python side effects, no global state, jittable.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Protocol

import jax

PyTree = Any
Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]


class InitFn(Protocol):

  def __call__(self, rng: jax.Array, batch: Batch) -> PyTree:
    """Returns the variables dict for a model seeing `batch` (shapes only)."""


class LossFn(Protocol):

  def __call__(self, params: PyTree, collections: PyTree, batch: Batch,
               rng: jax.Array) -> tuple[jax.Array, tuple[Metrics, PyTree]]:
    """Returns `(scalar_loss, (metrics, new_collections))`.

    `metrics` are scalars averaged over the batch; `new_collections` has the
    structure of `collections` (return it unchanged when nothing is mutable).
    """


class EvalFn(Protocol):

  def __call__(self, params: PyTree, collections: PyTree,
               batch: Batch) -> Metrics:
    """Returns per-example metrics, each of shape `[B, ...]`.

    The core averages them over a whole split, leaving out the padding that
    fills the last batch (so an evaluation is exact, whatever the batch size).
    """


class PredictFn(Protocol):

  def __call__(self, params: PyTree, collections: PyTree,
               batch: Batch) -> jax.Array:
    """Returns logits: `[B, C]` per example, or `[B, T, C]` per frame."""


class ScoreFn(Protocol):

  def __call__(self, logits: jax.Array, batch: Batch) -> Metrics:
    """Per-example metrics `[B, ...]` of `logits` against `batch`'s labels.

    Per-frame logits may hold NaN on frames no clip covered (multi-clip
    evaluation, `cvision.core.evaluation.multi_clip`); leave those out.
    """


@dataclasses.dataclass(frozen=True)
class Task:
  """A model plugged into the core: init, loss and evaluation, nothing else.

  Attributes:
    name: identifies the model in checkpoints; restoring a checkpoint written
      by a task of another name fails with a message naming both.
    init: builds the variables from an example batch.
    loss: the training loss (see `LossFn`).
    evaluate: per-example evaluation metrics for one batch (see `EvalFn`).
    input_keys: the batch entries the task reads; the input pipeline drops the
      others before they reach the device.
    time_keys: the entries of `input_keys` whose first example axis is time:
      temporal crops (`data.train_clip_frames`) and multi-clip evaluation
      cut them, all at the same frames.
    frozen: None, or `params -> tree of bool` (the same structure), True
      where a parameter must never change (a frozen backbone). The core
      gives those no update at all, weight decay included, and keeps no
      optimizer moments for them. A zero gradient is not enough: Adam turns
      the weight-decay term alone into full-size steps.
    predict: optional, the model's logits for a batch; with `score`, what
      multi-clip evaluation averages over clips.
    score: optional, per-example metrics of logits (`evaluate` is then
      `score(predict(...), batch)` on whole examples).
  """
  name: str
  init: InitFn
  loss: LossFn
  evaluate: EvalFn
  input_keys: tuple[str, ...]
  time_keys: tuple[str, ...] = ()
  frozen: Callable[[PyTree], PyTree] | None = None
  predict: PredictFn | None = None
  score: ScoreFn | None = None
