"""Warm start: a new run's parameters from another run's checkpoint.

Stage-wise recipes (a backbone trained first, then a model that adds parts
to it, e.g. collaborative memory) start stage 2 from stage 1's weights with
a fresh optimizer and step 0. Leaves are matched by their path in the
`params` and `collections` trees: a leaf present in both with the same shape
is copied; the new run's other leaves keep their initial values. A leaf
whose shape differs is an error unless `skip_mismatched` (e.g. a new head
with another class count). What was copied and kept is logged and returned,
so the run's workdir can record it.

The source checkpoint is read by `checkpointing.read_saved_variables`
(numpy arrays, as saved): the source run's model need not be built, and
nothing it holds but parameters and collections is read.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp

from cvision.core import checkpointing
from cvision.core.train_state import TrainState

PyTree = Any
_MAX_LISTED = 8


class WarmStartError(ValueError):
  """The source checkpoint cannot initialise this model."""


@dataclasses.dataclass
class WarmStartReport:
  """Which leaves came from the source run (paths as `jax.tree_util.keystr`)."""
  source: str
  step: int
  copied: list[str]
  kept: list[str]
  skipped: list[str]

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def load_variables(workdir: str, step: int = 0) -> tuple[dict[str, PyTree],
                                                         int]:
  """`({'params': ..., 'collections': ...}, step)` of a run's checkpoint.

  Args:
    workdir: the source run's --workdir.
    step: the checkpoint step; 0 = the latest.
  """
  if not os.path.isdir(os.path.join(os.path.abspath(workdir), 'checkpoints')):
    raise WarmStartError(
        f'train.init_from.workdir={workdir!r} has no checkpoints/ folder: '
        'name the --workdir of a finished run.')
  try:
    saved = checkpointing.read_saved_variables(workdir, step=step)
  except FileNotFoundError as e:
    raise WarmStartError(str(e)) from e
  return {'params': saved.variables['params'],
          'collections': saved.variables.get('collections', {})}, saved.step


def _by_path(tree: PyTree) -> dict[str, Any]:
  return {jax.tree_util.keystr(path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def merge(target: PyTree, source: PyTree, *, prefix: str,
          skip_mismatched: bool, report: WarmStartReport) -> PyTree:
  """`target` with every leaf of `source` at the same path and shape."""
  available = _by_path(source)

  def pick(path, leaf):
    key = jax.tree_util.keystr(path)
    name = prefix + key
    if key not in available:
      report.kept.append(name)
      return leaf
    value = available[key]
    if tuple(value.shape) != tuple(leaf.shape):
      if not skip_mismatched:
        raise WarmStartError(
            f'{name}: the source checkpoint has shape {tuple(value.shape)}, '
            f'this model {tuple(leaf.shape)}. Set '
            'train.init_from.skip_mismatched=True to keep such leaves at '
            'their initial values.')
      report.skipped.append(name)
      return leaf
    report.copied.append(name)
    # Same dtype and sharding as the freshly initialised leaf.
    return jax.device_put(jnp.asarray(value, leaf.dtype), leaf.sharding)

  return jax.tree_util.tree_map_with_path(pick, target)


def warm_start(state: TrainState, workdir: str, *, step: int = 0,
               skip_mismatched: bool = False, params_under: str = ''
               ) -> tuple[TrainState, WarmStartReport]:
  """`state` with parameters and collections copied from `workdir`'s run.

  The optimizer state, step and rng stay those of `state` (a fresh run).
  `params_under` nests the source's parameters under that key first, for a
  model that holds the source model as a submodule: 'backbone' starts
  collaborative memory from an S3D classification run (the source's leaves
  that the new model lacks, such as its classifier, are not read into it).

  Raises:
    WarmStartError: no checkpoint, a shape mismatch (unless
      `skip_mismatched`), or no leaf in common (the wrong run).
  """
  source, step = load_variables(workdir, step)
  if params_under:
    source['params'] = {params_under: source['params']}
  report = WarmStartReport(source=os.path.abspath(workdir), step=step,
                           copied=[], kept=[], skipped=[])
  params = merge(state.params, source['params'], prefix='params',
                 skip_mismatched=skip_mismatched, report=report)
  collections = merge(state.collections, source['collections'],
                      prefix='collections', skip_mismatched=skip_mismatched,
                      report=report)
  if not report.copied:
    raise WarmStartError(
        f'The checkpoint of {workdir!r} (step {step}) shares no parameter '
        'with this model: is it a run of another model? This model has '
        + ', '.join(report.kept[:_MAX_LISTED]) + ' ...')
  logging.info('Warm start from %s step %d: %d leaves copied, %d kept at '
               'init%s.', workdir, step, len(report.copied), len(report.kept),
               f', {len(report.skipped)} skipped (shape)' if report.skipped
               else '')
  return state.replace(params=params, collections=collections), report
