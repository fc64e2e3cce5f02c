"""Every project the binary runs, by the name configs give in `task`.

An explicit table rather than a decorator registry: a reader sees every
project here, and an unknown name fails at once listing the known ones.
Each project package has `task.py` (`build_task(config) -> Task`) and, when
it has modes beyond train and eval, `modes.py` (`MODES`: name ->
`fn(config, workdir)`, which may replace the default `eval`). The core never
imports this module: `experiments/main.py` builds the task here and hands it
to the core.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import ml_collections

from cvision.core import evaluation
from cvision.core import trainer
from cvision.core.task import Task

# config.task -> project package.
PROJECTS = {
    'augmenter': 'cvision.projects.augmenter',
    'autoencoder': 'cvision.projects.autoencoder',
    'codec': 'cvision.projects.codec',
    'collab_memory': 'cvision.projects.collab_memory',
    'mpeg_stm': 'cvision.projects.mpeg_stm',
    's3d_classification': 'cvision.projects.s3d',
    'past_future': 'cvision.projects.past_future',
}
Mode = Callable[[ml_collections.ConfigDict, str], Any]


def _package(config: ml_collections.ConfigDict) -> str:
  if config.task not in PROJECTS:
    raise ValueError(f'config.task={config.task!r} is not a known task; '
                     f'known: {sorted(PROJECTS)}.')
  return PROJECTS[config.task]


def build_task(config: ml_collections.ConfigDict) -> Task:
  """The `Task` of `config.task`, built from `config`."""
  return importlib.import_module(_package(config) + '.task').build_task(config)


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """`--mode=train`: the core's loop on the config's task."""
  return trainer.train_and_evaluate(build_task(config), config, workdir)


def evaluate(config: ml_collections.ConfigDict,
             workdir: str) -> dict[str, Any]:
  """`--mode=eval` of a project without its own report."""
  return evaluation.evaluate(build_task(config), config, workdir)


def modes(config: ml_collections.ConfigDict) -> dict[str, Mode]:
  """`--mode` name -> `fn(config, workdir)`: train, eval, the project's own."""
  package = _package(config)
  try:
    project_modes = importlib.import_module(package + '.modes').MODES
  except ModuleNotFoundError as e:
    if e.name != package + '.modes':
      raise
    project_modes = {}
  return {'train': train, 'eval': evaluate, **project_modes}
