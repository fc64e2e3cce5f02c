"""Augmentation parameters `p`: random ones for training, fixed ones for tests.

`sample_params(rng, family, batch, config)` draws one row per clip from the
ranges of `config` (`default_config()` lists them); the row layout of each
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

from cvision.augment import pixel_transforms as pt
from cvision.core import config_utils

Array = jax.Array


def default_config() -> ml_collections.ConfigDict:
  """Ranges of the random parameters; `config.augment` overrides any."""
  return ml_collections.ConfigDict({
      'family': 'crop',  # One of pixel_transforms.FAMILIES.
      # Crop: side of the box as a fraction of the frame's, uniform in
      # [min, max]; aspect ratio (h/w) log-uniform in [min, max]; position
      # uniform over the frame.
      'crop_min_scale': 0.5,
      'crop_max_scale': 0.9,
      'crop_min_aspect_ratio': 1.0,
      'crop_max_aspect_ratio': 1.0,
      'flip_probability': 0.5,
      'brightness_max_delta': 0.3,  # delta uniform in [-max, max].
      'saturation_min_factor': 0.0,  # factor uniform in [min, max].
      'saturation_max_factor': 2.0,
      'rotation_max_degrees': 30.0,  # angle uniform in [-max, max].
      # The uncovered corners: pixel_transforms.ROTATION_FILLS.
      'rotation_fill': pt.DEFAULT_ROTATION_FILL,
  })


def resolve_config(config: Any) -> ml_collections.ConfigDict:
  """Defaults overridden by `config`; unknown fields and bad ranges raise."""
  c = config_utils.with_defaults(default_config(), config, 'augment')
  pt.check_family(c.family)
  pt.check_rotation_fill(c.rotation_fill, 'augment.rotation_fill')
  ranges = [('crop_min_scale', 'crop_max_scale', 1e-3, 1.0),
            ('crop_min_aspect_ratio', 'crop_max_aspect_ratio', 1e-3, 1e3),
            ('saturation_min_factor', 'saturation_max_factor', 0.0, 1e3)]
  for low, high, floor, ceiling in ranges:
    if not floor <= c[low] <= c[high] <= ceiling:
      raise ValueError(f'augment.{low}={c[low]} and augment.{high}={c[high]}'
                       f' must satisfy {floor} <= {low} <= {high} <= '
                       f'{ceiling}.')
  if not 0.0 <= c.flip_probability <= 1.0:
    raise ValueError(f'augment.flip_probability={c.flip_probability} must be '
                     'in [0, 1].')
  for name in ('brightness_max_delta', 'rotation_max_degrees'):
    if c[name] < 0:
      raise ValueError(f'augment.{name}={c[name]} must be >= 0.')
  return c


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


def sample_params(rng: Array, family: str, batch: int,
                  config: Any = None) -> Array:
  """Random parameters `[batch, P]` float32 of `family`; jittable.

  Args:
    rng: a PRNG key.
    family: one of `pixel_transforms.FAMILIES`.
    batch: rows (clips).
    config: ranges (see `default_config`; its `family` field is ignored
      here); None = the defaults.
  """
  pt.check_family(family)
  overrides = dict(config.items()) if config is not None else {}
  c = resolve_config(dict(overrides, family=family))
  return _sample(rng, family, batch, tuple(sorted(c.items())))


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
