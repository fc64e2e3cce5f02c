"""Every model the core can train, by the name configs give in `task`.

An explicit table rather than a decorator registry: a reader sees every
project here, and an unknown name fails at once listing the known ones.
"""
from __future__ import annotations

import importlib

import ml_collections

from cvision.core.task import Task

# config.task -> module with `build_task(config) -> Task`.
TASK_MODULES = {
    'augmenter': 'cvision.tasks.augmenter',
    'autoencoder': 'cvision.tasks.autoencoder',
    'codec': 'cvision.tasks.codec',
    'collab_memory': 'cvision.tasks.collab_memory',
    'mpeg_stm': 'cvision.tasks.mpeg_stm',
    's3d_classification': 'cvision.tasks.s3d_classification',
    'past_future': 'cvision.tasks.past_future',
}


def build_task(config: ml_collections.ConfigDict) -> Task:
  if config.task not in TASK_MODULES:
    raise ValueError(f'config.task={config.task!r} is not a known task; '
                     f'known: {sorted(TASK_MODULES)}.')
  return importlib.import_module(TASK_MODULES[config.task]).build_task(config)


def modes(config: ml_collections.ConfigDict) -> dict:
  """`--mode` name -> `fn(config, workdir)`: train, eval, plus the task's own.

  A task module may define `MODES`, a dict that adds modes or replaces the
  default `eval`.
  """
  from cvision.core import trainer  # pylint: disable=g-import-not-at-top
  if config.task not in TASK_MODULES:
    build_task(config)  # Raises the error listing the known tasks.
  module = importlib.import_module(TASK_MODULES[config.task])
  return {'train': trainer.train_and_evaluate, 'eval': trainer.evaluate,
          **getattr(module, 'MODES', {})}
