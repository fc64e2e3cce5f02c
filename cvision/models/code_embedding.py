"""Input layer that turns integer neural codes into float features.

The codec quantises each location with N codebooks of K entries of size D.
A downstream model sees the codes' embeddings, concatenated along channels:
codebook n fills channels [n * D, (n + 1) * D). The codebooks belong to the
frozen codec, so they are an input here, never a trainable parameter.
"""
from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def embed_codes(codebooks: Array, codes: Array,
                dtype: Any = jnp.float32) -> Array:
  """Looks up codes in their codebooks, on device.

  Args:
    codebooks: `[N, K, D]` float, codebook n's K embeddings of size D.
    codes: `[..., N]` any integer dtype (e.g. `[B, T, H, W, N]` uint16), the
      index into codebook n at each location.
    dtype: output dtype.

  Returns:
    `[..., N * D]` embeddings. Codes outside [0, K) give NaN (jnp.take
    'fill'), so corrupt codes show up instead of silently reading another
    entry.

  Raises:
    ValueError: on rank / codebook-count mismatch or non-integer codes.
  """
  codebooks = jnp.asarray(codebooks)
  codes = jnp.asarray(codes)
  if codebooks.ndim != 3:
    raise ValueError(f'codebooks must be [N, K, D], got {codebooks.shape}.')
  num_books, _, dim = codebooks.shape
  if codes.ndim < 1 or codes.shape[-1] != num_books:
    raise ValueError(
        f'codes must end in N={num_books} codebooks, got {codes.shape}.')
  if not jnp.issubdtype(codes.dtype, jnp.integer):
    raise ValueError(f'codes must be integers, got {codes.dtype}.')
  # The codec is frozen: no gradient should ever reach its codebooks.
  codebooks = jax.lax.stop_gradient(codebooks.astype(dtype))
  # int32 so unsigned codes index like signed ones (K is far below 2**31).
  codes = codes.astype(jnp.int32)
  # jnp.take wraps negative indices numpy-style; send them out of range
  # instead so that they are filled with NaN like any other invalid code.
  codes = jnp.where(codes < 0, codebooks.shape[1], codes)
  # One take per codebook, mapped over N: [..., N] -> [..., N, D].
  take = lambda book, idx: jnp.take(
      book, idx, axis=0, mode='fill', fill_value=jnp.nan)
  out = jax.vmap(take, in_axes=(0, -1), out_axes=-2)(codebooks, codes)
  return out.reshape(*codes.shape[:-1], num_books * dim)


class CodeEmbedding(nn.Module):
  """`[B, T, H, W, N]` int codes -> `[B, T, H, W, N * D]` float embeddings.

  The frozen codebooks `[N, K, D]` are given either as the `codebooks`
  attribute or per call (the call argument wins); the module has no
  parameters.
  """
  codebooks: Optional[Array] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, codes: Array, codebooks: Optional[Array] = None) -> Array:
    books = self.codebooks if codebooks is None else codebooks
    if books is None:
      raise ValueError('CodeEmbedding needs codebooks [N, K, D].')
    return embed_codes(books, codes, self.dtype)


def temporal_correlation(x: Array, radius: int = 1) -> Array:
  """Cosine similarity of each cell with its neighbours one step later.

  `[B, T, H, W, C]` -> `[B, T, H, W, (2r+1)^2]`: channel `(dy + r) * (2r+1)
  + (dx + r)` holds `cos(x[t, y, x], x[t+1, y+dy, x+dx])`. Out-of-frame
  neighbours read 0; the last time step, which has no successor, repeats
  the one before it.

  Why: a cell of neural codes that moves by a fraction of a cell mostly
  changes its index, so a linear filter and a rectifier over code
  embeddings cannot line up a pattern from one step to the next the way
  they do with pixel edges (README, "S3D on codes"). Where a cell's content
  went is a comparison of embeddings, and a cost volume (FlowNet's
  correlation layer, here over the code grid) hands that comparison to the
  network. Parameter free; the frozen codebooks stay the only input.
  """
  if x.ndim != 5:
    raise ValueError(f'temporal_correlation expects [B, T, H, W, C], got '
                     f'{x.shape}.')
  if radius < 1:
    raise ValueError(f'temporal_correlation radius must be >= 1, got '
                     f'{radius}.')
  unit = x * jax.lax.rsqrt(jnp.sum(jnp.square(x), -1, keepdims=True) + 1e-12)
  now, later = unit[:, :-1], unit[:, 1:]
  h, w = x.shape[2], x.shape[3]
  padded = jnp.pad(later, ((0, 0), (0, 0), (radius, radius),
                           (radius, radius), (0, 0)))
  span = range(2 * radius + 1)
  maps = [jnp.sum(now * padded[:, :, dy:dy + h, dx:dx + w], axis=-1)
          for dy in span for dx in span]
  out = jnp.stack(maps, axis=-1)
  # The last step has no successor. Repeating the one before keeps T and
  # keeps the input alike at every step: with a step of zeros instead, a
  # network trained on 8-step clips learnt where the clip ends, and scored
  # 52% on 16-step clips against 76% on 8 (README, "S3D on codes").
  return jnp.concatenate([out, out[:, -1:]], axis=1)
