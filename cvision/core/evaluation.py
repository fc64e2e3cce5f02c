"""The one evaluation loop: restore, iterate a split, reduce exactly, report.

Every task's `--mode=eval` and the validation during training go through
`reduce_split`: per-example metrics (`[B, ...]`, any trailing shape, e.g. a
confusion matrix's one-hot `[B, C, C]`) are summed over the real examples of
a split, padding left out, with their squares, on device; the host reads the
sums once at the end. The mean and standard deviation over examples are
therefore exact whatever the batch size, the number of devices or of hosts.

Multi-clip evaluation (Tables 2-4: logits averaged over N uniformly spaced
clips of a video) is an option of the loop for any task that gives `predict`
and `score`: `multi_clip` builds the per-example function. Test-time views of
one clip (crops, flips) are a model's own: its `predict` averages them.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Any, Callable, Iterable, Mapping

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cvision.core import input_pipeline
from cvision.core import metric_logging
from cvision.core import run_setup
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.core.task import EvalFn, Task

PyTree = Any


@dataclasses.dataclass(frozen=True)
class SplitMetrics:
  """Per-example metrics reduced over a split.

  Attributes:
    mean: metric -> mean over examples (a float, or an array for metrics
      with a trailing shape).
    std: metric -> standard deviation over examples, likewise.
    count: examples reduced (padding excluded).
    examples_per_s: examples per second after the first batch (which
      compiles); NaN for a single batch.
  """
  mean: dict[str, Any]
  std: dict[str, Any]
  count: int
  examples_per_s: float

  def means(self) -> dict[str, float]:
    """The scalar means as floats (trailing-shape metrics left out)."""
    return {k: float(v) for k, v in self.mean.items() if np.ndim(v) == 0}


@jax.jit
def _add_batch(totals, metrics: dict[str, jax.Array], valid: jax.Array):
  """Adds one batch's sums, sums of squares and count to `totals`."""
  w = valid.astype(jnp.float32)

  def weighted(v, power):
    v = v.astype(jnp.float32)
    return jnp.tensordot(w, v**power, axes=(0, 0))

  sums = {k: weighted(v, 1) for k, v in metrics.items()}
  squares = {k: weighted(v, 2) for k, v in metrics.items()}
  batch = (sums, squares, jnp.sum(w))
  if totals is None:
    return batch
  return jax.tree.map(jnp.add, totals, batch)


def reduce_batches(eval_step: Callable[..., dict[str, jax.Array]], params,
                   collections, batches: Iterable[dict[str, jax.Array]]
                   ) -> SplitMetrics:
  """Runs `eval_step(params, collections, batch)` over `batches`, reduced.

  Each batch carries `input_pipeline.VALID_KEY`. Sums stay on device until
  the last batch: the host never waits for a batch before dispatching the
  next one.
  """
  totals, start, timed_from = None, None, 0.0
  for index, batch in enumerate(batches):
    valid = batch.pop(input_pipeline.VALID_KEY)
    totals = _add_batch(totals, eval_step(params, collections, batch), valid)
    if index == 0:
      # The first batch compiles: time from its end.
      jax.block_until_ready(totals)
      start, timed_from = time.perf_counter(), float(jax.device_get(
          totals[2]))
  if totals is None:
    raise ValueError('The evaluation split gave no batch.')
  sums, squares, count = jax.device_get(totals)
  elapsed = time.perf_counter() - start
  count = float(count)
  mean = {k: np.asarray(v) / count for k, v in sums.items()}
  std = {k: np.sqrt(np.maximum(np.asarray(squares[k]) / count - mean[k]**2,
                               0.0)) for k in sums}
  as_python = lambda d: {k: (float(v) if np.ndim(v) == 0 else v)
                         for k, v in d.items()}
  timed = count - timed_from
  return SplitMetrics(as_python(mean), as_python(std), int(round(count)),
                      timed / elapsed if timed and elapsed > 0
                      else float('nan'))


def reduce_split(run: run_setup.Setup, eval_step, split: str, *,
                 max_batches: int | None = None,
                 clip_frames: int = 0) -> SplitMetrics:
  """`eval_step` over `split` of `run` (see `reduce_batches`).

  `clip_frames > 0` evaluates the middle clip of that many frames of each
  example (the task's `time_keys`) instead of the whole of it.
  """
  preprocess = None
  if clip_frames:
    preprocess = input_pipeline.center_temporal_crop(clip_frames,
                                                     run.task.time_keys)
  batches = input_pipeline.eval_batches(
      run.source(split), global_batch_size=run.config.data.batch_size,
      keys=run.task.input_keys, sharding=sharding.batch_sharding(run.mesh),
      max_batches=max_batches, preprocess=preprocess)
  return reduce_batches(eval_step, run.state.params, run.state.collections,
                        batches)


def evaluate_split(run: run_setup.Setup, eval_step, split: str,
                   max_batches: int | None = None,
                   clip_frames: int = 0) -> dict[str, float]:
  """The scalar means of `reduce_split` (validation during training)."""
  return reduce_split(run, eval_step, split, max_batches=max_batches,
                      clip_frames=clip_frames).means()


# ---------------------------------------------------------------------------
# Multi-clip evaluation.


def clip_starts(num_frames: int, num_clips: int,
                clip_frames: int) -> list[int]:
  """First frames of `num_clips` uniformly spaced clips of `clip_frames`.

  One clip is centred; more clips span the video from its first frame to its
  last, evenly (rounded), overlapping when they must.
  """
  if num_clips < 1:
    raise ValueError(f'num_clips must be >= 1, got {num_clips}.')
  if not 1 <= clip_frames <= num_frames:
    raise ValueError(f'clip_frames={clip_frames} must be in [1, '
                     f'{num_frames}] (the frames of the example).')
  span = num_frames - clip_frames
  if num_clips == 1:
    return [span // 2]
  return [int(i * span / (num_clips - 1) + 0.5) for i in range(num_clips)]


def multi_clip_logits(apply_fn: Callable[[Any], jax.Array], batch,
                      time_keys, num_clips: int,
                      clip_frames: int) -> jax.Array:
  """Logits averaged over `num_clips` uniformly spaced temporal clips.

  Clips go through `apply_fn` one after another in a `lax.scan`, so memory
  is that of one clip whatever `num_clips` is.

  Args:
    apply_fn: batch of clips -> `[B, C]` (video logits) or
      `[B, clip_frames, C]` (per-frame logits).
    batch: a dict (or one array) whose `time_keys` entries are `[B, T, ...]`.
    time_keys: the entries cut into clips (all of them if `batch` is an
      array).
    num_clips: clips per example (see `clip_starts`).
    clip_frames: length of a clip along axis 1.

  Returns:
    `[B, C]`: the mean of the clips' logits; or, for per-frame logits,
    `[B, T, C]`: each frame's logits averaged over the clips that hold it,
    NaN on frames that no clip holds.
  """
  as_dict = isinstance(batch, Mapping)
  batch = dict(batch) if as_dict else {'x': batch}
  keys = tuple(time_keys) if as_dict else ('x',)
  num_frames = batch[keys[0]].shape[1]
  starts = clip_starts(num_frames, num_clips, clip_frames)

  def clip_at(start):
    clip = {k: (jax.lax.dynamic_slice_in_dim(v, start, clip_frames, axis=1)
                if k in keys else v) for k, v in batch.items()}
    return clip if as_dict else clip['x']

  first = jax.eval_shape(lambda: apply_fn(clip_at(0)))
  if first.ndim == 2:
    def add(total, start):
      return total + apply_fn(clip_at(start)).astype(jnp.float32), None
    total, _ = jax.lax.scan(add, jnp.zeros(first.shape, jnp.float32),
                            jnp.asarray(starts))
    return total / len(starts)
  if first.ndim != 3 or first.shape[1] != clip_frames:
    raise ValueError(f'apply_fn gave logits of shape {first.shape}; '
                     f'expected [B, C] or [B, {clip_frames}, C].')
  b, _, c = first.shape

  def add_frames(total, start):
    out = apply_fn(clip_at(start)).astype(jnp.float32)
    window = jax.lax.dynamic_slice_in_dim(total, start, clip_frames, axis=1)
    return jax.lax.dynamic_update_slice_in_dim(total, window + out, start,
                                               axis=1), None

  total, _ = jax.lax.scan(add_frames,
                          jnp.zeros((b, num_frames, c), jnp.float32),
                          jnp.asarray(starts))
  count = np.zeros((num_frames,), np.float32)
  for s in starts:
    count[s:s + clip_frames] += 1
  count = jnp.asarray(count)[None, :, None]
  return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def multi_clip(task: Task, num_clips: int, clip_frames: int) -> EvalFn:
  """Per-example metrics of logits averaged over `num_clips` clips.

  Needs the task's `predict` and `score`; `score` sees the whole example's
  labels (per-frame logits of frames between clips are NaN).
  """
  if task.predict is None or task.score is None:
    raise ValueError(f'Task {task.name!r} has no predict/score: it cannot '
                     'be evaluated over several clips.')

  def evaluate(params, collections, batch):
    logits = multi_clip_logits(
        lambda clip: task.predict(params, collections, clip), batch,
        task.time_keys, num_clips, clip_frames)
    return task.score(logits, batch)
  return evaluate


# ---------------------------------------------------------------------------
# --mode=eval.


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """What a project's report receives.

  Attributes:
    run: the restored run (its checkpointer already closed).
    split: the evaluated split.
    step: the checkpoint's step.
    results: variant name -> its `SplitMetrics` ('' for `task.evaluate`).
  """
  run: run_setup.Setup
  split: str
  step: int
  results: dict[str, SplitMetrics]


Report = Callable[[Evaluation], Mapping[str, Any]]


def evaluate(task: Task, config: ml_collections.ConfigDict, workdir: str, *,
             split: str | None = None,
             variants: Mapping[str, EvalFn] | None = None,
             clip_frames: int = 0,
             report: Report | None = None) -> dict[str, Any]:
  """`--mode=eval` of any task: the latest checkpoint on `config.eval.split`.

  Args:
    task: the model.
    config: the run's config; `eval.split` and `eval.num_batches` (0 = the
      whole split) are read.
    workdir: the run directory.
    split: the split to evaluate (a TFDS split spec, slices included);
      default `config.eval.split`.
    variants: name -> per-example function, each reduced over the split
      (e.g. one per number of clips); default `{'': task.evaluate}`.
    clip_frames: > 0 evaluates the middle clip of that many frames.
    report: `Evaluation -> dict`, the project's tables and files; its entries
      are added to the result.

  Returns:
    `{'step', 'split', 'num_examples', 'metrics'}` (metrics: the scalar
    means of the first variant) plus the report's entries. Also written to
    `WORKDIR/eval_<split>.json` (a sliced split's name made file-safe).
  """
  split = split or config.eval.split
  run = run_setup.restore_trained(task, config, workdir, shapes_split=split)
  results = {}
  try:
    for name, fn in (variants or {'': task.evaluate}).items():
      step_fn = train_step_lib.make_eval_step(
          fn, state_shardings=run.state_shardings, mesh=run.mesh,
          compute_dtype_name=config.train.compute_dtype)
      results[name] = reduce_split(run, step_fn, split,
                                   max_batches=config.eval.num_batches or None,
                                   clip_frames=clip_frames)
      logging.info('eval %s%s @ step %d: %s', split,
                   f' ({name})' if name else '', run.step,
                   results[name].means())
  finally:
    run.checkpointer.close()
  first = next(iter(results.values()))
  result = {'step': run.step, 'split': split, 'num_examples': first.count,
            'metrics': first.means()}
  if report is not None:
    result.update(report(Evaluation(run, split, run.step, results)))
  name = re.sub(r'\W+', '_', split).strip('_')
  metric_logging.write_json(os.path.join(workdir, f'eval_{name}.json'),
                            result)
  return result
