"""Reading the arrays of a release file: Haiku trees, listings, its digest.

Shared by the codec's and the augmenter's importers (one release pickle holds
both): each takes arrays out of a Haiku `{module path: {name: array}}` tree,
and refuses a file whose arrays do not match its network, naming them.
"""
from __future__ import annotations

import hashlib
from typing import Any, Mapping

import numpy as np

_MAX_LISTED = 8


def listed(items) -> str:
  """Sorted names, the first few and how many in all."""
  items = sorted(items)
  return ', '.join(items[:_MAX_LISTED]) + (
      f' ... ({len(items)} in all)' if len(items) > _MAX_LISTED else '')


def file_sha256(path: str) -> str:
  """The file's SHA-256, recorded with the run that imported it."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


class HaikuTree:
  """A Haiku `{module: {name: array}}` tree that records what is taken.

  Args:
    tree: the tree (None: an empty one).
    what: names the tree in errors ("The params of FILE").
    error: the error raised for a malformed tree or a missing array.
    network: names the network whose arrays are taken, in errors.
  """

  def __init__(self, tree: Any, what: str, *,
               error: type[Exception] = ValueError,
               network: str = 'the release network'):
    tree = {} if tree is None else tree
    if not isinstance(tree, Mapping) or not all(
        isinstance(v, Mapping) for v in tree.values()):
      raise error(
          f'{what} is not a Haiku tree {{module path: {{name: array}}}}.')
    self._tree = tree
    self._what = what
    self._error = error
    self._network = network
    self._taken: set[tuple[str, str]] = set()

  def has(self, module: str) -> bool:
    return module in self._tree

  def take(self, module: str, name: str) -> np.ndarray:
    try:
      value = self._tree[module][name]
    except KeyError:
      raise self._error(
          f'{self._what} lacks {module!r}/{name!r}, which '
          f'{self._network} of this config has.') from None
    self._taken.add((module, name))
    return np.asarray(value)

  def left_over(self) -> list[str]:
    """`module/name` of every array not taken."""
    return [f'{m}/{n}' for m, names in self._tree.items() for n in names
            if (m, n) not in self._taken]
