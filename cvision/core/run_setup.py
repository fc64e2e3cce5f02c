"""What training and evaluation both build from a task and a config.

Mesh, input shapes, the train state initialised into its shardings, and the
checkpointer; the state is restored when the workdir holds a checkpoint, or
warm-started from another run when `train.init_from` says so. Nothing is
written to the workdir here except by the checkpoint manager (which creates
its folder): callers write their own files once every check has passed.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from absl import logging
import jax
import ml_collections

from cvision.core import checkpointing
from cvision.core import input_pipeline
from cvision.core import metric_logging
from cvision.core import optimizer as optimizer_lib
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.core import warm_start
from cvision.core.task import Task
from cvision.core.train_state import TrainState
from data_pipelines import sources

PyTree = Any


@dataclasses.dataclass
class Setup:
  """A task's run: mesh, state, shardings, checkpointer and data sources."""
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
      self._sources[split] = sources.load_source(self.config.data, split)
    return self._sources[split]

  @property
  def step(self) -> int:
    return int(jax.device_get(self.state.step))


def _abstract(state: TrainState) -> TrainState:
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      state)


def _clip_spec(spec: dict[str, jax.ShapeDtypeStruct], time_keys, frames: int):
  """The batch shapes once time entries are cut to `frames` frames."""
  return {k: (jax.ShapeDtypeStruct((v.shape[0], frames) + v.shape[2:],
                                   v.dtype) if k in time_keys else v)
          for k, v in spec.items()}


def setup(task: Task, config: ml_collections.ConfigDict, workdir: str, *,
          restore: bool = True, shapes_split: str | None = None) -> Setup:
  """Mesh, input shapes, state (restored when a checkpoint exists).

  `shapes_split` (default `data.train_split`) is the split whose batches
  give the input shapes the state is built for; evaluation passes its own,
  so a dataset holding only a test split can be evaluated. `train_source`
  is that split's source.
  """
  mesh = sharding.make_mesh(config.mesh)
  sharding.check_batch_size(config.data.batch_size, mesh)
  shapes_split = shapes_split or config.data.train_split
  source = sources.load_source(config.data, shapes_split)
  spec = input_pipeline.batch_spec(source,
                                   global_batch_size=config.data.batch_size,
                                   keys=task.input_keys)
  if config.data.train_clip_frames:
    spec = _clip_spec(spec, task.time_keys, config.data.train_clip_frames)
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
  elif restore and config.train.init_from.workdir:
    state = _warm_start(state, config.train.init_from, workdir)
  return Setup(config, workdir, mesh, task, state, shardings, checkpointer,
               spec, tx, source, {shapes_split: source})


def _warm_start(state: TrainState, init_from, workdir: str) -> TrainState:
  """Parameters from `init_from.workdir`'s run (stage-wise training)."""
  state, report = warm_start.warm_start(
      state, init_from.workdir, step=init_from.step,
      skip_mismatched=init_from.skip_mismatched,
      params_under=init_from.params_under)
  metric_logging.write_json(os.path.join(workdir, 'warm_start.json'),
                            report.to_dict())
  return state


def restore_trained(task: Task, config: ml_collections.ConfigDict,
                    workdir: str, *, shapes_split: str | None = None) -> Setup:
  """The run in `workdir` at its latest checkpoint; an error if it has none.

  `shapes_split`: as in `setup` (e.g. the split about to be evaluated).
  """
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(ckpt_dir) or not any(
      d.isdigit() for d in os.listdir(ckpt_dir)):
    raise FileNotFoundError(f'No checkpoint in {ckpt_dir}: train first '
                            '(--mode=train) or point --workdir at a run.')
  return setup(task, config, workdir, shapes_split=shapes_split)
