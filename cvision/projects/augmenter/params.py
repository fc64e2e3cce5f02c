"""Augmentation parameters `p`: random ones for training, fixed ones for tests.

`sample_params(rng, family, batch, config)` draws one row per clip from the
ranges of `config` (`config.augment`, `FAMILY_FIELDS`); the row layout of each
family is `pixel_transforms.PARAM_NAMES[family]`. For the family 'all' each
clip gets one family, drawn uniformly, and identity values in the fields of
the others (compositions are never drawn).

Deterministic parameters for evaluation: `central_box`, `linspace_boxes` (N
linearly spaced crops, paper Sec. 3.4), `flip_params`.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cvision.projects.augmenter import pixel_transforms as pt

Array = jax.Array


# The fields of `config.augment` (experiments/configs/augmenter.py, where
# their defaults are written) that each family's parameters are drawn from.
FAMILY_FIELDS = {
    'crop': ('crop_min_scale', 'crop_max_scale', 'crop_min_aspect_ratio',
             'crop_max_aspect_ratio'),
    'flip': ('flip_probability',),
    'brightness': ('brightness_max_delta',),
    'saturation': ('saturation_min_factor', 'saturation_max_factor'),
    'rotation': ('rotation_max_degrees',),
}
_RANGES = [('crop_min_scale', 'crop_max_scale', 1e-3, 1.0),
           ('crop_min_aspect_ratio', 'crop_max_aspect_ratio', 1e-3, 1e3),
           ('saturation_min_factor', 'saturation_max_factor', 0.0, 1e3)]


def _fields_of(family: str) -> tuple[str, ...]:
  pt.check_family(family)
  if family == 'all':
    return sum(FAMILY_FIELDS.values(), ())
  return FAMILY_FIELDS[family]


def check_config(config: Any, family: str | None = None
                 ) -> ml_collections.ConfigDict:
  """`config` (the ranges of `family`, default `config.family`), checked.

  Raises:
    ValueError: a missing field or a bad range, named.
  """
  c = ml_collections.ConfigDict(dict(config.items()))
  family = family or c.family
  missing = [f for f in _fields_of(family) if f not in c]
  if missing:
    raise ValueError(f'augment: {family!r} parameters need the fields '
                     f'{missing}.')
  if 'rotation_fill' in c:
    pt.check_rotation_fill(c.rotation_fill, 'augment.rotation_fill')
  for low, high, floor, ceiling in _RANGES:
    if low in c and not floor <= c[low] <= c[high] <= ceiling:
      raise ValueError(f'augment.{low}={c[low]} and augment.{high}={c[high]}'
                       f' must satisfy {floor} <= {low} <= {high} <= '
                       f'{ceiling}.')
  if 'flip_probability' in c and not 0.0 <= c.flip_probability <= 1.0:
    raise ValueError(f'augment.flip_probability={c.flip_probability} must be '
                     'in [0, 1].')
  for name in ('brightness_max_delta', 'rotation_max_degrees'):
    if name in c and c[name] < 0:
      raise ValueError(f'augment.{name}={c[name]} must be >= 0.')
  return c


def crop_ranges(min_scale: float, max_scale: float
                ) -> ml_collections.ConfigDict:
  """Square training boxes with sides in [min_scale, max_scale], checked."""
  return check_config({'crop_min_scale': min_scale,
                       'crop_max_scale': max_scale,
                       'crop_min_aspect_ratio': 1.0,
                       'crop_max_aspect_ratio': 1.0}, 'crop')


def _uniform(rng, batch, low, high):
  return jax.random.uniform(rng, (batch, 1), jnp.float32, low, high)


def _crop(rng, batch, c) -> Array:
  k_scale, k_aspect, k_y, k_x = jax.random.split(rng, 4)
  scale = _uniform(k_scale, batch, c.crop_min_scale, c.crop_max_scale)
  log_aspect = _uniform(k_aspect, batch, math.log(c.crop_min_aspect_ratio),
                        math.log(c.crop_max_aspect_ratio))
  h = jnp.minimum(scale * jnp.exp(log_aspect / 2), 1.0)
  w = jnp.minimum(scale * jnp.exp(-log_aspect / 2), 1.0)
  y0 = jax.random.uniform(k_y, (batch, 1)) * (1.0 - h)
  x0 = jax.random.uniform(k_x, (batch, 1)) * (1.0 - w)
  return jnp.concatenate([y0, x0, y0 + h, x0 + w], axis=1)


_SAMPLERS = {
    'crop': _crop,
    'flip': lambda rng, b, c: jax.random.bernoulli(
        rng, c.flip_probability, (b, 1)).astype(jnp.float32),
    'brightness': lambda rng, b, c: _uniform(
        rng, b, -c.brightness_max_delta, c.brightness_max_delta),
    'saturation': lambda rng, b, c: _uniform(
        rng, b, c.saturation_min_factor, c.saturation_max_factor),
    'rotation': lambda rng, b, c: _uniform(
        rng, b, -math.radians(c.rotation_max_degrees),
        math.radians(c.rotation_max_degrees)),
}


def sample_params(rng: Array, family: str, batch: int, config: Any) -> Array:
  """Random parameters `[batch, P]` float32 of `family`; jittable.

  Args:
    rng: a PRNG key.
    family: one of `pixel_transforms.FAMILIES`.
    batch: rows (clips).
    config: ranges, at least `FAMILY_FIELDS` of `family` (`config.augment`;
      its `family` field is ignored here).
  """
  c = check_config(config, family)
  wanted = set(_fields_of(family))
  return _sample(rng, family, batch,
                 tuple(sorted((k, v) for k, v in c.items() if k in wanted)))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _sample(rng: Array, family: str, batch: int, ranges: tuple) -> Array:
  # Jitted even when called eagerly: one compile instead of one per op.
  c = ml_collections.ConfigDict(dict(ranges))
  if family != 'all':
    return _SAMPLERS[family](rng, batch, c)
  k_choice, *keys = jax.random.split(rng, 1 + len(pt.SINGLE_FAMILIES))
  chosen = jax.random.randint(k_choice, (batch, 1), 0,
                              len(pt.SINGLE_FAMILIES))
  parts = []
  for i, (single, key) in enumerate(zip(pt.SINGLE_FAMILIES, keys)):
    identity = jnp.asarray(pt.IDENTITY[single], jnp.float32)[None]
    parts.append(jnp.where(chosen == i, _SAMPLERS[single](key, batch, c),
                           identity))
  return jnp.concatenate(parts, axis=1)


def embed_in_all(family: str, params: Array) -> Array:
  """`[B, P_family]` parameters as rows of the 'all' family (others identity).

  Lets a network trained on 'all' take parameters of one family.
  """
  params = jnp.asarray(params, jnp.float32)
  if family == 'all':
    return params
  rows = jnp.asarray(pt.identity_params('all', params.shape[0]))
  return rows.at[:, pt.field_slice('all', family)].set(params)


# ---------------------------------------------------------------------------
# Deterministic parameters (test-time augmentation, baselines).


def central_box(scale: float) -> np.ndarray:
  """`[4]` (y0, x0, y1, x1): the centred square box of side `scale`."""
  if not 0 < scale <= 1:
    raise ValueError(f'crop scale {scale} must be in (0, 1].')
  margin = (1.0 - scale) / 2
  return np.asarray([margin, margin, margin + scale, margin + scale],
                    np.float32)


def linspace_boxes(num_crops: int, scale: float) -> np.ndarray:
  """`[num_crops, 4]` boxes of side `scale` linearly spaced over the frame.

  The paper's test-time crops (Sec. 3.4): box corners interpolated linearly
  from the top-left box to the bottom-right one; one crop is the central
  box.
  """
  if num_crops < 1:
    raise ValueError(f'num_crops={num_crops} must be >= 1.')
  if num_crops == 1:
    return central_box(scale)[None]
  central_box(scale)  # Checks the scale.
  starts = np.linspace(0.0, 1.0 - scale, num_crops, dtype=np.float32)
  return np.stack([starts, starts, starts + scale, starts + scale], axis=1)


def flip_params(flipped: bool, batch: int) -> np.ndarray:
  """`[batch, 1]`: every clip flipped (True) or none."""
  return np.full((batch, 1), float(flipped), np.float32)
