"""Building a network from its config fields, each written once.

A field and its default live in the experiment's config file
(`experiments/configs/<name>.py`); a network's dataclass fields have no
defaults of their own, and `build_module` passes every config field to the
network, no more and no fewer, so the two cannot drift apart.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping


def module_fields(cls) -> set[str]:
  """The constructor fields of a Flax module class (not parent/name)."""
  return set(cls.__dataclass_fields__) - {'parent', 'name'}


def build_module(cls, fields: Mapping[str, Any], what: str, **extra: Any):
  """`cls(**fields, **extra)`, refusing fields it lacks or does not get.

  Args:
    cls: a Flax module class.
    fields: the config's fields for it (e.g. `config.model`).
    what: the config section, for messages (e.g. 'codec model').
    **extra: constructor fields that are not config fields (a compute
      dtype derived from `train.compute_dtype`, say).

  Raises:
    ValueError: naming unknown fields (typos) and missing ones.
  """
  fields = dict(fields.items())
  known = module_fields(cls) - set(extra)

  def required(name):
    field = cls.__dataclass_fields__[name]
    return (field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING)

  check_fields(fields, known, f'{what} config', cls.__name__,
               required={k for k in known if required(k)})
  return cls(**fields, **extra)


def check_fields(fields: Mapping[str, Any], known: set[str], what: str,
                 reader: str, required: set[str] | None = None) -> None:
  """Raises naming the fields of `fields` that `reader` does not read.

  For a config section a task maps onto a module itself (renaming fields,
  deriving some): a typo in an override is named rather than ignored.

  Args:
    fields: the config section.
    known: the fields `reader` reads.
    what: the section, for messages (e.g. 's3d model config').
    reader: what reads it, for messages.
    required: fields that must be present (default: all of `known`).
  """
  required = known if required is None else required
  unknown = sorted(set(fields) - known)
  missing = sorted(required - set(fields))
  if unknown or missing:
    raise ValueError(
        f'The {what} does not fit {reader}: '
        + '; '.join(part for part in (
            f'unknown fields {unknown}' if unknown else '',
            f'missing fields {missing}' if missing else '') if part)
        + f' (its fields: {sorted(known)}).')
