"""The training loop every model shares.

Reads top to bottom: run setup (mesh, state, checkpoint), compiled steps,
input, loop. A model brings a `Task` (see `cvision.core.task`); the loop,
like the step and the evaluation (`cvision.core.evaluation`), is the same
for all of them.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from cvision.core import evaluation
from cvision.core import input_pipeline
from cvision.core import metric_logging
from cvision.core import run_setup
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.core.task import Task

PyTree = Any
NONFINITE_KEY = train_step_lib.NONFINITE_KEY


def _train_preprocess(config, task: Task):
  """Random temporal crops of `data.train_clip_frames` frames (0 = off)."""
  frames = config.data.train_clip_frames
  if not frames:
    return None
  return input_pipeline.random_temporal_crop(frames, task.time_keys)


class _StopRequest:
  """Set by SIGTERM: the loop saves a checkpoint and returns.

  With several processes they must all stop after the same step, or the
  checkpoint (a collective) of one waits forever for the train step of
  another; a scheduler may also signal only some of them. JAX's preemption
  service (started by `jax.distributed.initialize`) catches SIGTERM in every
  process and agrees on a step; `should_stop` asks it.
  """

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    if (jax.process_count() == 1
        and threading.current_thread() is threading.main_thread()):
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def should_stop(self, step: int) -> bool:
    """Every process calls this after every step, from the same first step."""
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step)
    return self.requested

  def _handle(self, signum, frame):
    del frame
    logging.warning('Signal %d received: saving a checkpoint, then stopping.',
                    signum)
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _mean_metrics(pending: list[dict[str, jax.Array]]) -> dict[str, float]:
  pending = jax.device_get(pending)
  return {k: float(np.mean([m[k] for m in pending])) for k in pending[0]
          if k != NONFINITE_KEY}


class NonFiniteLossError(FloatingPointError):
  """The loss or a gradient stopped being finite; nothing after was saved."""


def _check_finite(pending: list[tuple[int, dict[str, jax.Array]]],
                  checkpointer) -> None:
  """Raises naming the first step whose loss or gradient was not finite.

  Reads only the per-step flags (one small transfer), at the moments the
  loop looks at the host anyway: before logging, saving or evaluating.
  """
  flags = jax.device_get([m[NONFINITE_KEY] for _, m in pending
                          if NONFINITE_KEY in m])
  bad = [step for (step, _), flag in zip(pending, flags) if flag]
  if bad:
    latest = checkpointer.latest_step()
    raise NonFiniteLossError(
        f'The loss or gradient is not finite at step {bad[0]}; stopping. '
        'Nothing from that step on was saved; the last good checkpoint is '
        + (f'step {latest} in {checkpointer.directory}' if latest is not None
           else 'none (no checkpoint yet)')
        + '. Lower optimizer.learning_rate or set optimizer.grad_clip_norm.')


def train_and_evaluate(task: Task, config: ml_collections.ConfigDict,
                       workdir: str) -> dict[str, Any]:
  """Trains `task` to `config.train.steps`, resuming if possible.

  Returns:
    `{'step': last step, 'train': last logged train metrics,
      'eval': last evaluation metrics, 'preempted': stopped by SIGTERM}`.
  """
  run = run_setup.setup(task, config, workdir)
  # Fail now, not after the last step, if the evaluation split is missing.
  run.source(config.data.eval_split)
  # Only now, every check passed, does the run write into its workdir.
  metric_logging.write_json(os.path.join(workdir, 'config.json'),
                            config.to_dict())
  train_cfg = config.train
  start_step = run.step

  step_fn = train_step_lib.make_train_step(
      task, run.tx, state_shardings=run.state_shardings, mesh=run.mesh,
      grad_accum_steps=train_cfg.grad_accum_steps,
      compute_dtype_name=train_cfg.compute_dtype)
  eval_fn = train_step_lib.make_eval_step(
      task.evaluate, state_shardings=run.state_shardings, mesh=run.mesh,
      compute_dtype_name=train_cfg.compute_dtype)
  batches = input_pipeline.train_iterator(
      input_pipeline.train_dataset(
          run.train_source, global_batch_size=config.data.batch_size,
          seed=config.seed, keys=task.input_keys,
          preprocess=_train_preprocess(config, task)),
      start_step=start_step, sharding=sharding.batch_sharding(run.mesh),
      num_threads=config.data.num_threads)

  logger = metric_logging.ProgressLogger(workdir, train_cfg.steps, start_step)
  try:
    result = _train_loop(run, step_fn, eval_fn, batches, logger, start_step)
  finally:
    # Also on errors: pending asynchronous saves finish, threads stop.
    run.checkpointer.close()
    logger.close()
  metric_logging.write_json(os.path.join(workdir, 'train_result.json'), result)
  return result


def _train_loop(run: run_setup.Setup, step_fn, eval_fn, batches, logger,
                start_step: int) -> dict[str, Any]:
  """Steps from `start_step` to `train.steps`: log, save, evaluate."""
  config, train_cfg = run.config, run.config.train
  total_steps = train_cfg.steps
  in_flight = train_cfg.max_steps_in_flight
  if in_flight < 0:
    raise ValueError('train.max_steps_in_flight must be >= 0 (0 = wait for '
                     f'every step), got {in_flight}.')
  result = {'step': start_step, 'train': {}, 'eval': {}, 'preempted': False}
  if start_step >= total_steps:
    logging.info('Already trained to step %d (train.steps=%d).', start_step,
                 total_steps)

  def run_eval(step):
    # The middle clip of the training length: the input the network is
    # trained on. Whole videos can score far lower than clips for a network
    # that learnt its clip length (docs/results/s3d.md), which made the
    # validation curve say little about the 1-clip test figure.
    metrics = evaluation.evaluate_split(
        run, eval_fn, config.data.eval_split, train_cfg.eval_batches or None,
        clip_frames=config.data.train_clip_frames)
    logger.log_eval(step, config.data.eval_split, metrics)
    result['eval'] = metrics

  # (step, metrics) since the last log; `unchecked` since the last finite
  # check (a save or an evaluation between two logs checks too).
  pending, unchecked = [], []

  def check():
    _check_finite(unchecked, run.checkpointer)
    unchecked.clear()

  with _StopRequest() as stop:
    for step in range(start_step + 1, total_steps + 1):
      run.state, metrics = step_fn(run.state, next(batches))
      pending.append((step, metrics))
      unchecked.append((step, metrics))
      if not in_flight:
        # Synchronous (debugging, and the benchmark's baseline): the host
        # waits for each step's metrics before dispatching the next.
        jax.block_until_ready(metrics)
      elif len(pending) > in_flight:
        # Async dispatch lets the host run up to `log_every` steps ahead of
        # the device: a SIGTERM would then wait for all of them before the
        # checkpoint (minutes for slow steps), and their batches would pile
        # up in device memory. `max_steps_in_flight` steps in flight still
        # overlap the input pipeline with compute.
        jax.block_until_ready(pending[-in_flight - 1][1])
      if step % train_cfg.log_every == 0 or step == total_steps:
        check()
        result['train'] = _mean_metrics([m for _, m in pending])
        pending = []
        logger.log_train(step, result['train'])
      if step % train_cfg.checkpoint_every == 0:
        check()
        run.checkpointer.save(run.state)
      if train_cfg.eval_every and step % train_cfg.eval_every == 0:
        check()
        run_eval(step)
      result['step'] = step
      if stop.should_stop(step):
        check()
        run.checkpointer.save(run.state, force=True)
        result['preempted'] = True
        break

  if not result['preempted']:
    check()
    run.checkpointer.save(run.state, force=True)
    if not result['eval'] or result['step'] % (train_cfg.eval_every or 1):
      run_eval(result['step'])
  return result
