"""Checkpoints that resume: orbax, keep the last K, check what is restored.

Each checkpoint holds the whole `TrainState` and a small JSON description of
the model that wrote it (task name and every state leaf's shape and dtype).
Restoring compares that description with the model being restored into and
fails with a message naming what differs, before any array is read.

`read_saved_variables` is the other way in: parts of another run's state
(a frozen codec or augmenter, a warm start) read as numpy arrays, without
building that run's model.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from cvision.core.train_state import TrainState

PyTree = Any
_MAX_LISTED = 8


class CheckpointMismatchError(ValueError):
  """A checkpoint does not fit the model or config it is restored into."""


def describe_state(task_name: str, abstract_state: PyTree) -> dict[str, Any]:
  """The JSON-able description stored beside each checkpoint."""
  leaves = jax.tree_util.tree_flatten_with_path(abstract_state)[0]
  return {
      'task': task_name,
      'leaves': {
          jax.tree_util.keystr(path): [list(leaf.shape), str(leaf.dtype)]
          for path, leaf in leaves
      },
  }


def describe_differences(saved: dict[str, Any],
                         current: dict[str, Any]) -> list[str]:
  """What differs between two `describe_state` descriptions, in words."""
  problems = []
  if saved['task'] != current['task']:
    problems.append(f"it was written by task {saved['task']!r}, this run is "
                    f"task {current['task']!r}")
  old, new = saved['leaves'], current['leaves']
  missing = sorted(set(new) - set(old))
  extra = sorted(set(old) - set(new))
  changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
  if missing:
    problems.append('absent from the checkpoint: ' + ', '.join(
        missing[:_MAX_LISTED]) + (' ...' if len(missing) > _MAX_LISTED else ''))
  if extra:
    problems.append('not in this model: ' + ', '.join(
        extra[:_MAX_LISTED]) + (' ...' if len(extra) > _MAX_LISTED else ''))
  for key in changed[:_MAX_LISTED]:
    problems.append(f'{key}: checkpoint has shape/dtype {old[key]}, this '
                    f'model {new[key]}')
  if len(changed) > _MAX_LISTED:
    problems.append(f'... and {len(changed) - _MAX_LISTED} more differing '
                    'leaves')
  return problems


class Checkpointer:
  """Saves every N steps and at the end; restores the latest automatically."""

  def __init__(self, directory: str, *, keep: int, task_name: str,
               abstract_state: TrainState):
    """Args:

      directory: where checkpoints live (created if missing).
      keep: how many recent checkpoints to keep.
      task_name: the model's name, stored and checked on restore.
      abstract_state: the state's shapes, dtypes and shardings
        (`jax.ShapeDtypeStruct`s with `.sharding`), used to restore.
    """
    self.directory = os.path.abspath(directory)
    self._abstract_state = abstract_state
    self._description = describe_state(task_name, abstract_state)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: TrainState, *, force: bool = False) -> bool:
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return False
    return self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            model=ocp.args.JsonSave(self._description)),
        force=force)

  def check_compatible(self, step: int) -> None:
    """Raises `CheckpointMismatchError` if checkpoint `step` does not fit."""
    path = os.path.join(self.directory, str(step))
    try:
      saved = self._manager.restore(
          step, args=ocp.args.Composite(model=ocp.args.JsonRestore()))['model']
    except (FileNotFoundError, KeyError, ValueError) as e:
      raise CheckpointMismatchError(
          f'Checkpoint {path} has no model description (was it written by '
          f'cvision?): {e}') from e
    problems = describe_differences(saved, self._description)
    if problems:
      raise CheckpointMismatchError(
          f'Checkpoint {path} does not match this model/config:\n  - '
          + '\n  - '.join(problems)
          + '\nUse a fresh --workdir, or the config that wrote it.')

  def restore(self, step: int | None = None) -> TrainState:
    """Restores checkpoint `step` (default: latest) into the abstract state."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    self.check_compatible(step)
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(self._abstract_state)))
    return restored['state']

  def wait(self) -> None:
    """Blocks until asynchronous saves have been written."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


@dataclasses.dataclass(frozen=True)
class SavedVariables:
  """Parts of a run's saved state.

  Attributes:
    directory: the run's checkpoints folder.
    step: the checkpoint read.
    task: the task that wrote it (from its model description).
    variables: the selected subtrees of the saved `TrainState`, numpy arrays.
  """
  directory: str
  step: int
  task: str
  variables: dict[str, PyTree]


def _all_of(*keys: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
  return lambda tree: {k: tree[k] for k in keys if tree.get(k)}


def read_saved_variables(
    workdir: str, *, step: int | None = None,
    select: Callable[[dict[str, Any]], dict[str, Any]] = _all_of(
        'params', 'collections'),
    expect_task: str | None = None,
    missing_step_hint: str = '') -> SavedVariables:
  """Reads parts of run `workdir`'s checkpoint, without building its model.

  Only the subtrees `select` picks from the saved state's metadata tree are
  read (a partial restore: no optimizer state, no device arrays), so a frozen
  codec costs its codebook and decoder, not its Adam moments.

  Args:
    workdir: the run's --workdir (its checkpoints are in `checkpoints/`).
    step: the checkpoint step; None or 0 = the latest.
    select: metadata tree of the saved `TrainState` (a dict with 'params',
      'collections', 'opt_state', ...) -> the subtrees to read, same
      structure.
    expect_task: if set, the task that must have written the checkpoint.
    missing_step_hint: appended to the error for a step that is not kept.

  Raises:
    FileNotFoundError: no checkpoints folder, no checkpoint, or not `step`.
    CheckpointMismatchError: the checkpoint was written by another task.
  """
  directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
  if not os.path.isdir(directory):
    raise FileNotFoundError(
        f'No checkpoints in {directory}: {workdir!r} must be the --workdir '
        'of a trained run.')
  manager = ocp.CheckpointManager(
      # Stating what read_only implies keeps Orbax from warning about it on
      # every load.
      directory, options=ocp.CheckpointManagerOptions(
          read_only=True, save_interval_steps=0, create=False),
      item_handlers={'state': ocp.PyTreeCheckpointHandler(),
                     'model': ocp.JsonCheckpointHandler()})
  try:
    steps = sorted(manager.all_steps())
    if not steps:
      raise FileNotFoundError(f'No checkpoint in {directory}.')
    step = int(step) if step else steps[-1]
    if step not in steps:
      raise FileNotFoundError(
          f'Checkpoint step {step} is not in {directory} (it has {steps}).'
          + (f' {missing_step_hint}' if missing_step_hint else ''))
    tree = manager.item_metadata(step)['state'].tree
    item = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype),
                        select(tree))
    restored = manager.restore(step, args=ocp.args.Composite(
        model=ocp.args.JsonRestore(),
        state=ocp.args.PyTreeRestore(
            item=item, partial_restore=True,
            restore_args=jax.tree.map(
                lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item))))
  finally:
    manager.close()
  task = restored['model']['task']
  if expect_task is not None and task != expect_task:
    raise CheckpointMismatchError(
        f'{directory} holds a {task!r} run, not {expect_task!r}.')
  return SavedVariables(directory, step, task, dict(restored['state']))
