"""Multi-codebook vector quantiser with EMA codebooks and dead-code restarts.

The V_e latent channels are split into N groups of D = V_e / N channels; group
n is quantised to the nearest of the K entries of codebook n (paper E.1,
"Quantized embeddings").

Why EMA + restarts rather than a codebook loss: with a codebook trained by
gradient (VQ-VAE's ||sg(z) - e||^2 term) only the selected entries move, so
entries that start far from the encoder outputs are never selected again and
the usable K shrinks ("codebook collapse"); the compression rate then promises
log2(K) bits per index while far fewer are used. EMA updates (van den Oord et
al. 2017, App. A.1; Razavi et al. 2019) move each entry to the running mean of
its assigned vectors, independent of the optimizer and its learning rate, and
restarting entries whose running usage falls below a threshold onto random
encoder outputs of the batch (Dhariwal et al. 2020, Jukebox) keeps every entry
in use. The encoder is tied to the codebook by the commitment loss
beta * ||z - sg(e)||^2 (beta = 0.25) and receives straight-through gradients.

Variables (collection 'vq_ema', mutable, not trained by the optimizer):
  codebook      [N, K, D] float32  entries; downstream models read it.
  cluster_size  [N, K]    float32  EMA of assignments per step.
  embed_sum     [N, K, D] float32  EMA of the sum of assigned vectors.
A training call needs `rngs={'vq': key}` (restart sampling) and
`mutable=['vq_ema']`.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

COLLECTION = 'vq_ema'


def codes_to_latents(codebook: jax.Array, codes: jax.Array) -> jax.Array:
  """Looks codes up in their codebooks.

  Args:
    codebook: `[N, K, D]` float, the 'vq_ema'/'codebook' variable.
    codes: `[..., N]` integer indices in [0, K) (any int/uint dtype).

  Returns:
    `[..., N * D]` latents (codebook n fills channels n*D .. (n+1)*D - 1).
  """
  codebook = jnp.asarray(codebook)
  n, _, d = codebook.shape
  codes = jnp.asarray(codes)
  if codes.shape[-1:] != (n,):
    raise ValueError(
        f'codes last axis must be num_codebooks={n}, got shape {codes.shape}.')
  latents = codebook[jnp.arange(n), codes.astype(jnp.int32)]  # [..., N, D]
  return latents.reshape(codes.shape[:-1] + (n * d,))


def _nearest(x: jax.Array, codebook: jax.Array) -> jax.Array:
  """Indices `[M, N]` of the nearest entries of `[N, K, D]` for `[M, N, D]`."""
  # HIGHEST: TPU/GPU default matmul precision (bf16 / TF32) flips near ties.
  dots = jnp.einsum('mnd,nkd->mnk', x, codebook,
                    precision=jax.lax.Precision.HIGHEST)
  dist = (jnp.sum(x**2, -1, keepdims=True) - 2 * dots +
          jnp.sum(codebook**2, -1)[None])
  return jnp.argmin(dist, axis=-1).astype(jnp.int32)


def snap_to_codebook(latents: jax.Array, codebook: jax.Array) -> jax.Array:
  """Replaces each latent by its nearest codebook entries (no gradient).

  What the codec's quantiser does to encoder outputs, for latents made
  elsewhere (the augmentation network's outputs): afterwards they are codes'
  embeddings again, the only latents a model trained on codes has seen.

  Args:
    latents: `[..., N * D]` float.
    codebook: `[N, K, D]` float.

  Returns:
    `[..., N * D]` float32, codebook n's nearest entry in channels
    [n * D, (n + 1) * D).
  """
  codebook = jnp.asarray(codebook, jnp.float32)
  n, _, d = codebook.shape
  if latents.shape[-1] != n * d:
    raise ValueError(f'latents have {latents.shape[-1]} channels; codebooks '
                     f'{codebook.shape} give {n}x{d} = {n * d}.')
  flat = jax.lax.stop_gradient(latents).astype(jnp.float32).reshape(-1, n, d)
  codes = _nearest(flat, codebook).reshape(latents.shape[:-1] + (n,))
  return codes_to_latents(codebook, codes)


class VectorQuantizer(nn.Module):
  """Splits latents into N groups and quantises each with its own codebook.

  Attributes:
    num_codebooks: N.
    codebook_size: K entries per codebook.
    embedding_dim: V_e, total latent channels (divisible by N).
    commitment_cost: beta of the commitment loss.
    ema_decay: decay of the EMA statistics.
    epsilon: Laplace smoothing of the cluster sizes.
    dead_code_threshold: entries whose EMA usage (assignments per step) falls
      below this are restarted on random batch vectors; <= 0 disables restarts.
  """
  num_codebooks: int
  codebook_size: int
  embedding_dim: int
  commitment_cost: float
  ema_decay: float
  dead_code_threshold: float
  epsilon: float = 1e-5

  def setup(self):
    if self.embedding_dim % self.num_codebooks:
      raise ValueError(
          f'embedding_dim={self.embedding_dim} is not divisible by '
          f'num_codebooks={self.num_codebooks}.')
    n, k = self.num_codebooks, self.codebook_size
    d = self.embedding_dim // n
    self.codebook = self.variable(
        COLLECTION, 'codebook',
        # Drawn flat: see `layers.lecun_uniform_flat` on compile times.
        lambda: jax.random.normal(self.make_rng('params'),
                                  (n * k * d,)).reshape(n, k, d) * d**-0.5)
    # Zero usage: the first training step restarts every entry on encoder
    # outputs, a data-dependent initialisation.
    self.cluster_size = self.variable(COLLECTION, 'cluster_size',
                                      lambda: jnp.zeros((n, k), jnp.float32))
    self.embed_sum = self.variable(COLLECTION, 'embed_sum',
                                   lambda: jnp.zeros((n, k, d), jnp.float32))

  def lookup(self, codes: jax.Array) -> jax.Array:
    """`[..., N]` int codes -> `[..., V_e]` float32 latents."""
    return codes_to_latents(self.codebook.value, codes)

  def __call__(self, x: jax.Array,
               train: bool = False) -> tuple[jax.Array, jax.Array, dict[
                   str, Any]]:
    """Quantises latents.

    Args:
      x: `[..., V_e]` float latents (e.g. `[B, T_c, H_c, W_c, V_e]`).
      train: update the EMA statistics and restart dead entries (needs
        `rngs={'vq': ...}` and a mutable 'vq_ema').

    Returns:
      quantized: `[..., V_e]` float32, the codebook entries with
        straight-through gradients to `x`.
      codes: `[..., N]` int32 indices in [0, K).
      aux: 'commitment_loss' (scalar, already times beta), 'perplexity' `[N]`
        (exp of the entropy of the batch code histogram, in [1, K]), 'usage'
        `[N]` (fraction of the K entries used in the batch).
    """
    n, k = self.num_codebooks, self.codebook_size
    d = self.embedding_dim // n
    if x.shape[-1] != self.embedding_dim:
      raise ValueError(f'latents have {x.shape[-1]} channels, expected '
                       f'embedding_dim={self.embedding_dim}.')
    lead = x.shape[:-1]
    # Distances and statistics in float32 even under a bf16 forward pass.
    x = x.astype(jnp.float32)
    flat = x.reshape(-1, n, d)  # [M, N, D]
    codebook = self.codebook.value
    codes = _nearest(jax.lax.stop_gradient(flat), codebook)  # [M, N]
    quantized = codebook[jnp.arange(n), codes]  # [M, N, D]

    counts = jax.vmap(
        lambda c: jnp.bincount(c, length=k), in_axes=1)(codes).astype(
            jnp.float32)  # [N, K]
    if train and not self.is_initializing():
      self._ema_update(jax.lax.stop_gradient(flat), codes, counts)

    commitment = jnp.mean(
        (flat - jax.lax.stop_gradient(quantized))**2) * self.commitment_cost
    quantized = flat + jax.lax.stop_gradient(quantized - flat)
    probs = counts / flat.shape[0]
    perplexity = jnp.exp(-jnp.sum(probs * jnp.log(probs + 1e-10), axis=-1))
    aux = {
        'commitment_loss': commitment,
        'perplexity': perplexity,
        'usage': jnp.mean((counts > 0).astype(jnp.float32), axis=-1),
    }
    return (quantized.reshape(lead + (n * d,)), codes.reshape(lead + (n,)),
            aux)

  def _ema_update(self, flat: jax.Array, codes: jax.Array,
                  counts: jax.Array) -> None:
    """EMA step on the statistics, then restarts of rarely used entries."""
    n, k = self.num_codebooks, self.codebook_size
    decay = self.ema_decay
    # Per-codebook sums of assigned vectors without a [M, N, K] one-hot.
    sums = jax.vmap(
        lambda v, c: jax.ops.segment_sum(v, c, num_segments=k),
        in_axes=(1, 1))(flat, codes)  # [N, K, D]
    cluster_size = decay * self.cluster_size.value + (1 - decay) * counts
    embed_sum = decay * self.embed_sum.value + (1 - decay) * sums
    # Laplace smoothing keeps never-assigned entries from dividing by zero.
    total = jnp.sum(cluster_size, axis=-1, keepdims=True)
    smoothed = (cluster_size + self.epsilon) / (
        total + k * self.epsilon) * total
    codebook = embed_sum / smoothed[..., None]

    if self.dead_code_threshold > 0:
      dead = cluster_size < self.dead_code_threshold  # [N, K]
      idx = jax.random.randint(self.make_rng('vq'), (n, k), 0, flat.shape[0])
      restart = flat[idx, jnp.arange(n)[:, None]]  # [N, K, D]
      # A restarted entry counts as one assignment, so it survives the next
      # step only if it is chosen at least about once per step.
      codebook = jnp.where(dead[..., None], restart, codebook)
      embed_sum = jnp.where(dead[..., None], restart, embed_sum)
      cluster_size = jnp.where(dead, 1.0, cluster_size)

    self.cluster_size.value = cluster_size
    self.embed_sum.value = embed_sum
    self.codebook.value = codebook
