"""The training loop every model shares, and standalone evaluation.

Reads top to bottom: mesh, task, input, state and shardings, checkpoint,
compiled steps, loop. A model brings a `Task` (see `cvision.core.task`); the
loop, like the step, is the same for all of them.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from cvision import tasks
from cvision.core import checkpointing
from cvision.core import metric_logging
from cvision.core import optimizer as optimizer_lib
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.core import warm_start
from cvision.core.task import Task
from cvision.core.train_state import TrainState
from data_pipelines import input_pipeline

PyTree = Any
# Batch entries whose first example axis is time (cut by temporal crops).
_TIME_KEYS = ('video', 'frame_labels', 'codes')


def _train_preprocess(config, task):
  """Random temporal crops of `data.train_clip_frames` frames (0 = off)."""
  frames = config.data.get('train_clip_frames', 0)
  if not frames:
    return None
  keys = tuple(k for k in task.input_keys if k in _TIME_KEYS)
  return input_pipeline.random_temporal_crop(frames, keys)


@dataclasses.dataclass
class Setup:
  """What both training and evaluation build from a config."""
  config: ml_collections.ConfigDict
  workdir: str
  mesh: jax.sharding.Mesh
  task: Task
  state: TrainState
  state_shardings: PyTree
  checkpointer: checkpointing.Checkpointer
  batch_spec: dict[str, jax.ShapeDtypeStruct]
  tx: Any
  train_source: Any
  _sources: dict[str, Any] = dataclasses.field(default_factory=dict)

  def source(self, split: str):
    """The split's random-access source, opened once per run."""
    if split not in self._sources:
      self._sources[split] = input_pipeline.load_source(self.config.data,
                                                        split)
    return self._sources[split]


class _StopRequest:
  """Set by SIGTERM: the loop saves a checkpoint and returns."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    logging.warning('Signal %d received: saving a checkpoint, then stopping.',
                    signum)
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _abstract(state: TrainState) -> TrainState:
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      state)


def setup(config: ml_collections.ConfigDict, workdir: str, *,
          restore: bool = True, shapes_split: str | None = None) -> Setup:
  """Mesh, task, input shapes, state (restored when a checkpoint exists).

  `shapes_split` (default `data.train_split`) is the split whose batches
  give the input shapes the state is built for; evaluation passes its own,
  so a dataset holding only a test split can be evaluated. `train_source`
  is that split's source.
  """
  mesh = sharding.make_mesh(config.mesh)
  sharding.check_batch_size(config.data.batch_size, mesh)
  task = tasks.build_task(config)
  shapes_split = shapes_split or config.data.train_split
  source = input_pipeline.load_source(config.data, shapes_split)
  spec = input_pipeline.batch_spec(source, global_batch_size=config.data.batch_size,
                                   keys=task.input_keys)
  if config.data.get('train_clip_frames'):
    spec = {k: (jax.ShapeDtypeStruct(
        (v.shape[0], config.data.train_clip_frames) + v.shape[2:], v.dtype)
                if k in _TIME_KEYS else v) for k, v in spec.items()}
  tx = optimizer_lib.freeze(
      optimizer_lib.make_optimizer(config.optimizer, config.train.steps),
      task.frozen)
  state, shardings = train_step_lib.create_train_state(
      task, tx, spec, config.seed, mesh,
      list(config.sharding.logical_axis_rules))
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, 'checkpoints'),
      keep=config.train.keep_checkpoints, task_name=task.name,
      abstract_state=_abstract(state))
  if restore and checkpointer.latest_step() is not None:
    step = checkpointer.latest_step()
    logging.info('Restoring checkpoint at step %d from %s.', step,
                 checkpointer.directory)
    state = checkpointer.restore(step)
  elif restore and config.train.get('init_from', {}).get('workdir'):
    state = _warm_start(state, config.train.init_from, workdir)
  return Setup(config, workdir, mesh, task, state, shardings, checkpointer,
               spec, tx, source, {shapes_split: source})


@jax.jit
def _masked_sums(metrics: dict[str, jax.Array], valid: jax.Array):
  weights = valid.astype(jnp.float32)
  return ({k: jnp.sum(v * weights) for k, v in metrics.items()},
          jnp.sum(weights))


def evaluate_split(run: Setup, eval_step, split: str,
                   max_batches: int | None = None,
                   clip_frames: int = 0) -> dict[str, float]:
  """Per-example metrics averaged over a split (padding left out).

  `clip_frames > 0` evaluates the middle clip of that many frames of each
  example instead of the whole of it.
  """
  source = run.source(split)
  preprocess = None
  if clip_frames:
    preprocess = input_pipeline.center_temporal_crop(
        clip_frames, tuple(k for k in run.task.input_keys if k in _TIME_KEYS))
  totals, count = None, 0.0
  for batch in input_pipeline.eval_batches(
      source, global_batch_size=run.config.data.batch_size,
      keys=run.task.input_keys, sharding=sharding.batch_sharding(run.mesh),
      max_batches=max_batches, preprocess=preprocess):
    valid = batch.pop(input_pipeline.VALID_KEY)
    metrics = eval_step(run.state.params, run.state.collections, batch)
    sums, n = jax.device_get(_masked_sums(metrics, valid))
    totals = sums if totals is None else {k: totals[k] + sums[k] for k in sums}
    count += float(n)
  return {k: float(v) / count for k, v in totals.items()}


def _mean_metrics(pending: list[dict[str, jax.Array]]) -> dict[str, float]:
  pending = jax.device_get(pending)
  return {k: float(np.mean([m[k] for m in pending])) for k in pending[0]}


def _warm_start(state: TrainState, init_from, workdir: str) -> TrainState:
  """Parameters from `init_from.workdir`'s run (stage-wise training)."""
  state, report = warm_start.warm_start(
      state, init_from.workdir, step=init_from.get('step', 0),
      skip_mismatched=init_from.get('skip_mismatched', False),
      params_under=init_from.get('params_under', ''))
  metric_logging.write_json(os.path.join(workdir, 'warm_start.json'),
                            report.to_dict())
  return state


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict[str, Any]:
  """Trains `config.task` to `config.train.steps`, resuming if possible.

  Returns:
    `{'step': last step, 'train': last logged train metrics,
      'eval': last evaluation metrics, 'preempted': stopped by SIGTERM}`.
  """
  os.makedirs(workdir, exist_ok=True)
  metric_logging.write_json(os.path.join(workdir, 'config.json'),
                            config.to_dict())
  run = setup(config, workdir)
  # Fail now, not after the last step, if the evaluation split is missing.
  run.source(config.data.eval_split)
  train_cfg = config.train
  total_steps = train_cfg.steps
  start_step = int(jax.device_get(run.state.step))

  step_fn = train_step_lib.make_train_step(
      run.task, run.tx, state_shardings=run.state_shardings, mesh=run.mesh,
      grad_accum_steps=train_cfg.grad_accum_steps,
      compute_dtype_name=train_cfg.compute_dtype)
  eval_fn = train_step_lib.make_eval_step(
      run.task, state_shardings=run.state_shardings, mesh=run.mesh,
      compute_dtype_name=train_cfg.compute_dtype)
  batches = input_pipeline.train_iterator(
      input_pipeline.train_dataset(
          run.train_source, global_batch_size=config.data.batch_size,
          seed=config.seed, keys=run.task.input_keys,
          preprocess=_train_preprocess(config, run.task)),
      start_step=start_step, sharding=sharding.batch_sharding(run.mesh),
      num_threads=config.data.num_threads)

  logger = metric_logging.ProgressLogger(workdir, total_steps, start_step)
  try:
    result = _train_loop(run, step_fn, eval_fn, batches, logger, start_step)
  finally:
    # Also on errors: pending asynchronous saves finish, threads stop.
    run.checkpointer.close()
    logger.close()
  metric_logging.write_json(os.path.join(workdir, 'train_result.json'), result)
  return result


def _train_loop(run: Setup, step_fn, eval_fn, batches, logger,
                start_step: int) -> dict[str, Any]:
  """Steps from `start_step` to `train.steps`: log, save, evaluate."""
  config, train_cfg = run.config, run.config.train
  total_steps = train_cfg.steps
  result = {'step': start_step, 'train': {}, 'eval': {}, 'preempted': False}
  if start_step >= total_steps:
    logging.info('Already trained to step %d (train.steps=%d).', start_step,
                 total_steps)

  def run_eval(step):
    # The middle clip of the training length: the input the network is
    # trained on. Whole videos can score far lower than clips for a network
    # that learnt its clip length (README, "S3D on codes"), which made the
    # validation curve say little about the 1-clip test figure.
    metrics = evaluate_split(run, eval_fn, config.data.eval_split,
                             train_cfg.eval_batches or None,
                             clip_frames=config.data.get('train_clip_frames',
                                                         0))
    logger.log_eval(step, config.data.eval_split, metrics)
    result['eval'] = metrics

  pending = []
  with _StopRequest() as stop:
    for step in range(start_step + 1, total_steps + 1):
      run.state, metrics = step_fn(run.state, next(batches))
      pending.append(metrics)
      if len(pending) > 1:
        # Async dispatch lets the host run up to `log_every` steps ahead of
        # the device: a SIGTERM would then wait for all of them before the
        # checkpoint (minutes for slow steps), and their batches would pile
        # up in device memory. One step in flight still overlaps the input
        # pipeline with compute.
        jax.block_until_ready(pending[-2])
      if step % train_cfg.log_every == 0 or step == total_steps:
        result['train'] = _mean_metrics(pending)
        pending = []
        if not np.isfinite(result['train']['loss']):
          raise FloatingPointError(
              f'Loss is {result["train"]["loss"]} at step {step}; stopping. '
              f'Last checkpoint: {run.checkpointer.latest_step()}.')
        logger.log_train(step, result['train'])
      if step % train_cfg.checkpoint_every == 0:
        run.checkpointer.save(run.state)
      if train_cfg.eval_every and step % train_cfg.eval_every == 0:
        run_eval(step)
      result['step'] = step
      if stop.requested:
        run.checkpointer.save(run.state, force=True)
        result['preempted'] = True
        break

  if not result['preempted']:
    run.checkpointer.save(run.state, force=True)
    if not result['eval'] or result['step'] % (train_cfg.eval_every or 1):
      run_eval(result['step'])
  return result


def restore_trained(config: ml_collections.ConfigDict, workdir: str, *,
                    shapes_split: str | None = None) -> Setup:
  """The run in `workdir` at its latest checkpoint; an error if it has none.

  `shapes_split`: as in `setup` (e.g. the split about to be evaluated).
  """
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(ckpt_dir) or not any(
      d.isdigit() for d in os.listdir(ckpt_dir)):
    raise FileNotFoundError(f'No checkpoint in {ckpt_dir}: train first '
                            '(--mode=train) or point --workdir at a run.')
  return setup(config, workdir, shapes_split=shapes_split)


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Evaluates the latest checkpoint in `workdir` on `config.eval.split`."""
  run = restore_trained(config, workdir, shapes_split=config.eval.split)
  eval_fn = train_step_lib.make_eval_step(
      run.task, state_shardings=run.state_shardings, mesh=run.mesh,
      compute_dtype_name=config.train.compute_dtype)
  split = config.eval.split
  metrics = evaluate_split(run, eval_fn, split)
  step = int(jax.device_get(run.state.step))
  logging.info('eval %s @ step %d: %s', split, step, metrics)
  result = {'step': step, 'split': split, 'metrics': metrics}
  metric_logging.write_json(os.path.join(workdir, f'eval_{split}.json'), result)
  run.checkpointer.close()
  return result
