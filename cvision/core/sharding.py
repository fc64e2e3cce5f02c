"""Sharding, stated once: the mesh, the batch sharding and the state rules.

* The mesh comes from config: `config.mesh.shape` over `config.mesh.axes`
  (default `(-1, 1)` over `('data', 'model')`; `-1` takes the remaining
  devices).
* The batch's leading axis is sharded over `data`; the input pipeline and the
  train step use the same `batch_sharding`.
* Parameters are replicated unless a model boxes them with
  `nn.with_logical_partitioning` and `config.sharding.logical_axis_rules` maps
  one of their logical axis names to a mesh axis. Logical names absent from
  the rules are replicated.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from absl import logging
import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'
PyTree = Any


def make_mesh(config: ml_collections.ConfigDict,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds the device mesh described by `config.mesh` (Auto axis types)."""
  devices = list(jax.devices() if devices is None else devices)
  axes = tuple(config.axes)
  shape = list(config.shape)
  if len(shape) != len(axes):
    raise ValueError(f'mesh.shape={tuple(shape)} and mesh.axes={axes} must '
                     'have the same length.')
  if DATA_AXIS not in axes:
    raise ValueError(f'mesh.axes={axes} must contain {DATA_AXIS!r}: the batch '
                     'is sharded over it.')
  if shape.count(-1) > 1:
    raise ValueError(f'mesh.shape={tuple(shape)}: at most one -1.')
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if len(devices) % known:
      raise ValueError(f'mesh.shape={tuple(shape)} does not divide the '
                       f'{len(devices)} available devices.')
    shape[shape.index(-1)] = len(devices) // known
  if math.prod(shape) != len(devices):
    raise ValueError(f'mesh.shape={tuple(shape)} needs {math.prod(shape)} '
                     f'devices; {len(devices)} are available.')
  # Mesh(...) keeps Auto axis types: shardings are propagated by XLA.
  return Mesh(np.asarray(devices).reshape(shape), axes)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
  data_size = mesh.shape[DATA_AXIS]
  if global_batch_size % data_size:
    raise ValueError(
        f'The global batch size {global_batch_size} must be divisible by the '
        f'{data_size} devices on the {DATA_AXIS!r} mesh axis.')
  if global_batch_size % jax.process_count():
    raise ValueError(
        f'The global batch size {global_batch_size} must be divisible by the '
        f'number of processes ({jax.process_count()}).')


def _is_box(x) -> bool:
  return isinstance(x, nn.meta.AxisMetadata)


def state_shardings(boxed_tree: PyTree, mesh: Mesh,
                    rules: Sequence[tuple[str, str | None]]) -> PyTree:
  """NamedShardings for every leaf of the (unboxed) tree.

  Args:
    boxed_tree: an abstract tree (from `jax.eval_shape`) whose leaves may be
      `nn.Partitioned` boxes carrying logical axis names.
    mesh: the device mesh.
    rules: `(logical_name, mesh_axis_or_None)` pairs. Names not listed are
      replicated, and so is a dimension the mesh axis does not divide (a
      3-channel output layer under a 2-way `model` axis): a warning names it.
  """
  rules = tuple((name, axis) for name, axis in rules)
  known = {name for name, _ in rules}

  def leaf_sharding(path, leaf) -> NamedSharding:
    if not isinstance(leaf, nn.Partitioned):
      return NamedSharding(mesh, P())
    if not hasattr(leaf.value, 'shape'):
      # A box around no array (optax's MaskedNode: no optimizer state for a
      # frozen parameter) has nothing to shard; keep its empty structure.
      return leaf.value
    names = tuple(n if n in known else None for n in leaf.names)
    mesh_axes = list(nn.logical_to_mesh_axes(names, rules))
    shape = leaf.value.shape
    for dim, axis in enumerate(mesh_axes):
      size = math.prod(mesh.shape[a] for a in
                       ((axis,) if isinstance(axis, str) else axis or ()))
      if size > 1 and shape[dim] % size:
        logging.warning('%s: dimension %d (%d) is not divisible by mesh axis '
                        '%s (%d); replicated along it.',
                        jax.tree_util.keystr(path), dim, shape[dim], axis, size)
        mesh_axes[dim] = None
    return NamedSharding(mesh, P(*mesh_axes))

  return jax.tree_util.tree_map_with_path(leaf_sharding, boxed_tree,
                                          is_leaf=_is_box)


def unbox(tree: PyTree) -> PyTree:
  """Removes `nn.Partitioned` boxes, leaving plain arrays."""
  return nn.meta.unbox(tree)
