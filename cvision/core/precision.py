"""Mixed precision: float32 parameters, compute in float32 or bfloat16.

The train step casts parameters (and floating batch entries) to the compute
dtype before calling a task's loss. Integer inputs (uint8 pixels, codes,
labels) are left alone, so a task converting pixels to floats should use
`floating_dtype(params)`: otherwise float32 pixels would promote bf16
parameters back to float32 in every layer.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str) -> jnp.dtype:
  if name not in COMPUTE_DTYPES:
    raise ValueError(f'train.compute_dtype={name!r}: expected one of '
                     f'{tuple(COMPUTE_DTYPES)}.')
  return COMPUTE_DTYPES[name]


def cast_floating(tree: PyTree, dtype: jnp.dtype) -> PyTree:
  """Casts floating-point leaves to `dtype`; integers (codes, labels) stay."""
  def cast(x):
    if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating):
      return x.astype(dtype)
    return x
  return jax.tree.map(cast, tree)


def floating_dtype(params: PyTree) -> jnp.dtype:
  """The dtype a task should compute in: that of its (cast) parameters."""
  for leaf in jax.tree.leaves(params):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      return leaf.dtype
  return jnp.float32


def to_unit_float(pixels: jax.Array, params: PyTree) -> jax.Array:
  """`[..., 3] uint8` pixels to floats in [0, 1], in the compute dtype."""
  return pixels.astype(floating_dtype(params)) / 255.0
