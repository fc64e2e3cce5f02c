"""PRNG keys that compile fast."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def fast_init_key(rng: jax.Array) -> jax.Array:
  """The same 64 bits as an 'rbg' key, for initialising large networks.

  S3D has ~120 initialisers; with threefry keys XLA spends ~30 s on a 2-core
  CPU compiling their hash chains, with 'rbg' (one RngBitGenerator op each)
  about a third of that. The values differ from threefry's and, like any
  RngBitGenerator output, may differ between backends.
  """
  if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)
  data = jnp.ravel(rng).astype(jnp.uint32)[:2]
  return jax.random.wrap_key_data(jnp.concatenate([data, data]), impl='rbg')
