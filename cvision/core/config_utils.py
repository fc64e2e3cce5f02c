"""Small helpers for ml_collections configs shared by every task."""
from __future__ import annotations

from typing import Any

import ml_collections


def with_defaults(defaults: ml_collections.ConfigDict, overrides: Any,
                  what: str) -> ml_collections.ConfigDict:
  """`defaults` updated by `overrides`; unknown fields raise, naming `what`.

  A typo in a config field (`num_codebook=4`) fails at once, listing the
  known fields, instead of silently training the default.
  """
  overrides = dict(overrides.items()) if overrides is not None else {}
  unknown = sorted(set(overrides) - set(defaults.keys()))
  if unknown:
    raise ValueError(f'unknown {what} fields {unknown}; known: '
                     f'{sorted(defaults.keys())}.')
  defaults.update(overrides)
  return defaults
