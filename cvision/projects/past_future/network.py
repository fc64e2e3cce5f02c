"""The past-future network on long videos of codes (paper Sec. 4.6, App. D).

A long video is seen as a sequence of chunks (5 s of codes each). At step t
the network observes chunk t and is asked about a query chunk: has it been
seen already? Four parts, one `step` per chunk:

* adapter: a shallow 3D CNN on a chunk's code embeddings
  `[B, F, h, w, C]` -> `[B, t', D]` tokens (reduces the dimension; shared by
  observed chunks and queries);
* memory, holding what has been observed, as a state passed from step to
  step (never parameters):
  - `slot`: appends each chunk's tokens, non-parametric
    (`M^{t+1} = {m^t} u M^t`); a preallocated `[B, C * t', D]` array with a
    validity mask, so its size is fixed for jit and slots after t are empty;
  - `lstm`: a fixed-size recurrent state, updated with each chunk's mean
    token, read out as one token;
  - `none`: nothing;
* core: cross-attention transformer layers, the query's tokens attending to
  the memory's (`MemoryAttention`: cosine attention with an attention sink,
  so that "nothing in memory matches" is an answer it can give);
* predictor: one linear layer, one logit (> 0: the query is in the past).
"""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
MemoryState = dict[str, Array]
MEMORIES = ('slot', 'lstm', 'none')


class PatchConv3D(nn.Module):
  """A 3D conv (SAME padding) computed as gathered patches times a matrix.

  The same function as `nn.Conv(features, kernel, strides, 'SAME')`, with the
  same `[kt, kh, kw, C_in, C_out]` kernel. On XLA's CPU backend the gradient
  of a small strided 3D conv is about 10x slower than this form's (20 ms
  against 1 ms per 5 s chunk for the first layer, measured), and the
  past-future task differentiates the adapter for every chunk of a video.
  """
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    pads, outs = [(0, 0)], []
    for d, (k, s) in enumerate(zip(self.kernel_size, self.strides)):
      n = x.shape[1 + d]
      out = -(-n // s)
      pad = max((out - 1) * s + k - n, 0)
      pads.append((pad // 2, pad - pad // 2))
      outs.append(out)
    x = jnp.pad(x, pads + [(0, 0)])
    patches = [x[(slice(None),) + tuple(
        slice(o, o + (n - 1) * s + 1, s)
        for o, n, s in zip(offset, outs, self.strides))]
               for offset in itertools.product(
                   *(range(k) for k in self.kernel_size))]
    x = jnp.concatenate(patches, axis=-1)
    kernel = kernel.reshape(-1, self.features).astype(self.dtype)
    return x.astype(self.dtype) @ kernel + bias.astype(self.dtype)


class Adapter(nn.Module):
  """Chunk code embeddings `[B, F, h, w, C]` -> tokens `[B, t', dim]`.

  Strided 3D convs (SAME padding, ReLU between them), then a mean over
  space: `t'` is F divided by the product of the temporal strides (rounded
  up). The last conv has no ReLU: averaging non-negative features gives
  every chunk nearly the same token (cosine 0.76 between different chunks at
  initialisation, against 0.57 without it, measured on generated walks).
  """
  channels: Sequence[int]
  kernels: Sequence[Sequence[int]]
  strides: Sequence[Sequence[int]]
  dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    for i, (c, k, s) in enumerate(zip(self.channels, self.kernels,
                                      self.strides)):
      if i:
        x = nn.relu(x)
      x = PatchConv3D(c, tuple(k), tuple(s), dtype=self.dtype,
                      name=f'conv{i}')(x)
    x = jnp.mean(x, axis=(2, 3))
    x = nn.Dense(self.dim, dtype=self.dtype, name='project')(x)
    return nn.LayerNorm(dtype=self.dtype, name='norm')(x)


class MemoryAttention(nn.Module):
  """Multi-head cross-attention from query tokens to a memory, built to find
  one matching entry among thousands.

  * Cosine logits: per head, queries and keys are L2-normalised and their
    cosine scaled by a learnt temperature, so logits are bounded and the
    temperature sets how far a match stands above the rest.
  * Top-k: each query token reads only its `top_k` highest-scoring entries
    (0 = all), so the answer does not drift with the size of the memory.
  * A sink: one extra entry per head whose logit is the temperature times a
    learnt cosine threshold and whose value is learnt. A query that matches
    no memory entry better than the threshold attends to the sink, so
    "nothing matches" reaches the output as the sink's value (and with an
    empty memory, `none`, the output is the sink's value alone).
    `sink=False` drops it: a plain softmax over the entries (the LSTM
    memory's one summary token, always read).
  * Keys start as a copy of the query projection (then train on their own),
    so an entry with the query's content has the largest logit from the
    first step.

  Why, measured on generated walks: with standard dot-product attention and
  a learnt null token the network only learnt to count the observed chunks
  (75%; its logits varied with the step, not with the query); with cosine
  logits but a null *key* the null token started with zero weight and never
  learnt; with the sink but a softmax over the whole memory, a model at 88%
  on 5-minute videos fell to 63% on 30-minute ones (future queries judged
  past: 1800 entries that each match a little outweigh the sink). Trained
  on 30-minute videos, a softmax over the whole memory reaches 76% by
  counting the steps (the total weight of the entries against the sink's
  grows with t), not by recognising the query: step-balanced accuracy 52%.
  Top-k reads a fixed number of entries, so counting is impossible.
  """
  num_heads: int
  top_k: int = 4
  sink: bool = True
  temperature_init: float = 30.0
  threshold_init: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, query: Array, memory: Array, valid: Array) -> Array:
    """`[B, q, D]` queries, `[B, m, D]` memory, `[B, m]` bool -> `[B, q, D]`."""
    dim = query.shape[-1]
    if dim % self.num_heads:
      raise ValueError(f'dim={dim} is not divisible by num_heads='
                       f'{self.num_heads}.')
    heads, head_dim = self.num_heads, dim // self.num_heads
    init = nn.initializers.lecun_normal()
    w_query = self.param('query', init, (dim, heads, head_dim))
    w_key = self.param('key', lambda rng, shape: w_query, w_query.shape)
    w_value = self.param('value', init, (dim, heads, head_dim))
    w_out = self.param('out', nn.initializers.lecun_normal(
        in_axis=(0, 1), out_axis=2), (heads, head_dim, dim))
    log_temperature = self.param('log_temperature', nn.initializers.constant(
        jnp.log(self.temperature_init)), (heads,))
    cast = lambda x: x.astype(self.dtype)
    normalize = lambda x: x * jax.lax.rsqrt(
        jnp.sum(jnp.square(x), axis=-1, keepdims=True) + 1e-6)
    temperature = jnp.exp(log_temperature)[None, :, None, None]
    q = normalize(jnp.einsum('bqd,dhk->bqhk', cast(query), cast(w_query)))
    k = normalize(jnp.einsum('bmd,dhk->bmhk', cast(memory), cast(w_key)))
    values = jnp.einsum('bmd,dhk->bhmk', cast(memory), cast(w_value))
    logits = jnp.einsum('bqhk,bmhk->bhqm', q, k).astype(jnp.float32)
    logits = jnp.where(valid[:, None, None, :], logits * temperature,
                       -jnp.inf)
    read = min(self.top_k or logits.shape[-1], logits.shape[-1])
    if read < logits.shape[-1]:
      logits, index = jax.lax.top_k(logits, read)  # [B, H, q, read]
      # values [B, H, m, hd] -> per query token its entries [B, H, q, read,
      # hd]; then `bhqm` below runs over the entries read.
      values = jax.vmap(jax.vmap(lambda v, i: v[i]))(values, index)
      read_values = 'bhqmk'
    else:
      read_values = 'bhmk'
    if not self.sink:
      weights = jax.nn.softmax(logits, axis=-1)
      out = jnp.einsum(f'bhqm,{read_values}->bqhk', cast(weights), values)
      return jnp.einsum('bqhk,hkd->bqd', out, cast(w_out))
    threshold = self.param('sink_threshold', nn.initializers.constant(
        self.threshold_init), (heads,))
    sink_value = self.param('sink_value', nn.initializers.normal(1.0),
                            (heads, head_dim))
    sink = jnp.broadcast_to(threshold[None, :, None, None] * temperature,
                            logits.shape[:3] + (1,))
    weights = jax.nn.softmax(jnp.concatenate([sink, logits], axis=-1), axis=-1)
    out = (jnp.einsum(f'bhqm,{read_values}->bqhk', cast(weights[..., 1:]),
                      values)
           + jnp.einsum('bhq,hk->bqhk', cast(weights[..., 0]),
                        cast(sink_value)))
    return jnp.einsum('bqhk,hkd->bqd', out, cast(w_out))


class CrossAttentionCore(nn.Module):
  """Query tokens attend to memory tokens: `[B, q, D]` -> `[B, q, D]`."""
  num_layers: int
  num_heads: int
  mlp_dim: int
  top_k: int = 4
  sink: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, query: Array, memory: Array, valid: Array) -> Array:
    dim = query.shape[-1]
    for i in range(self.num_layers):
      attend = MemoryAttention(self.num_heads, self.top_k, self.sink,
                               dtype=self.dtype, name=f'attend{i}')
      keys = nn.LayerNorm(dtype=self.dtype, name=f'norm_memory{i}')(memory)
      h = nn.LayerNorm(dtype=self.dtype, name=f'norm_query{i}')(query)
      query = query + attend(h, keys, valid)
      h = nn.LayerNorm(dtype=self.dtype, name=f'norm_mlp{i}')(query)
      h = nn.Dense(self.mlp_dim, dtype=self.dtype, name=f'mlp{i}_in')(h)
      h = nn.Dense(dim, dtype=self.dtype, name=f'mlp{i}_out')(nn.gelu(h))
      query = query + h
    return nn.LayerNorm(dtype=self.dtype, name='norm_out')(query)


class PastFutureModel(nn.Module):
  """Adapter, memory, cross-attention core and linear predictor.

  Use `initial_memory` once per video, then `step` per chunk; `__call__`
  runs one step from an empty memory (for `init`).
  """
  memory: str
  dim: int
  adapter_channels: Sequence[int]
  adapter_kernels: Sequence[Sequence[int]]
  adapter_strides: Sequence[Sequence[int]]
  core_layers: int
  num_heads: int
  mlp_dim: int
  attention_top_k: int
  lstm_size: int
  dtype: Any = jnp.float32

  def setup(self):
    if self.memory not in MEMORIES:
      raise ValueError(f'memory={self.memory!r}: expected one of {MEMORIES}.')
    self.adapter = Adapter(self.adapter_channels, self.adapter_kernels,
                           self.adapter_strides, self.dim, self.dtype)
    if self.memory == 'lstm':
      self.lstm = nn.OptimizedLSTMCell(self.lstm_size, dtype=self.dtype)
      self.lstm_read = nn.Dense(self.dim, dtype=self.dtype)
    # The LSTM's one summary token is always read (softmax over one entry):
    # behind a sink it would need a cosine match above the threshold to be
    # read at all, and its gradient vanishes (measured: LSTM = no memory).
    self.core = CrossAttentionCore(self.core_layers, self.num_heads,
                                   self.mlp_dim, self.attention_top_k,
                                   sink=self.memory != 'lstm',
                                   dtype=self.dtype)
    self.predictor = nn.Dense(1, dtype=self.dtype)

  def tokens_per_chunk(self, chunk_frames: int) -> int:
    """t': the adapter's output tokens for a chunk of `chunk_frames`."""
    t = chunk_frames
    for s in self.adapter_strides:
      t = -(-t // s[0])
    return t

  def initial_memory(self, batch: int, num_chunks: int,
                     chunk_frames: int) -> MemoryState:
    """The empty memory of `batch` videos of `num_chunks` chunks."""
    if self.memory == 'slot':
      n = num_chunks * self.tokens_per_chunk(chunk_frames)
      return {'slots': jnp.zeros((batch, n, self.dim), self.dtype),
              'valid': jnp.zeros((batch, n), bool)}
    if self.memory == 'lstm':
      zeros = jnp.zeros((batch, self.lstm_size), self.dtype)
      return {'cell': zeros, 'hidden': zeros}
    return {}

  def adapt(self, embeddings: Array) -> Array:
    """`[..., F, h, w, C]` -> `[..., t', dim]` (any leading batch axes)."""
    lead = embeddings.shape[:-4]
    tokens = self.adapter(embeddings.reshape((-1,) + embeddings.shape[-4:]))
    return tokens.reshape(lead + tokens.shape[1:])

  def write(self, state: MemoryState, tokens: Array,
            t: Array) -> MemoryState:
    """Adds chunk `t`'s tokens `[B, t', dim]` to the memory."""
    if self.memory == 'slot':
      n = tokens.shape[1]
      slots = jax.lax.dynamic_update_slice_in_dim(
          state['slots'], tokens.astype(state['slots'].dtype), t * n, axis=1)
      valid = jax.lax.dynamic_update_slice_in_dim(
          state['valid'], jnp.ones(tokens.shape[:2], bool), t * n, axis=1)
      return {'slots': slots, 'valid': valid}
    if self.memory == 'lstm':
      (cell, hidden), _ = self.lstm((state['cell'], state['hidden']),
                                    jnp.mean(tokens, axis=1))
      return {'cell': cell, 'hidden': hidden}
    return state

  def read(self, state: MemoryState,
           batch: int) -> tuple[Array, Array]:
    """Memory tokens `[B, m, dim]` and their validity `[B, m]` (m = 0 for
    `none`)."""
    if self.memory == 'slot':
      return state['slots'], state['valid']
    if self.memory == 'lstm':
      return (self.lstm_read(state['hidden'])[:, None],
              jnp.ones((batch, 1), bool))
    return (jnp.zeros((batch, 0, self.dim), self.dtype),
            jnp.zeros((batch, 0), bool))

  def predict(self, query_tokens: Array, memory: Array,
              valid: Array) -> Array:
    """Query tokens `[B, Q, t', dim]` -> logits `[B, Q]` (> 0: past).

    The core has no attention between query tokens, so the Q queries go
    through it as one sequence of Q * t' tokens: the memory's keys and
    values are computed once, not once per query.
    """
    b, q, t = query_tokens.shape[:3]
    out = self.core(query_tokens.reshape(b, q * t, -1), memory, valid)
    out = jnp.mean(out.reshape(b, q, t, -1), axis=2)
    return self.predictor(out)[..., 0]

  def step(self, state: MemoryState, chunk: Array, queries: Array,
           t: Array) -> tuple[MemoryState, Array]:
    """Observes chunk `t`, then answers the queries.

    Args:
      state: the memory after chunks 0..t-1.
      chunk: `[B, F, h, w, C]` code embeddings of chunk t.
      queries: `[B, Q, F, h, w, C]` code embeddings of Q query chunks.
      t: the step (int scalar).

    Returns:
      `(memory after chunks 0..t, logits [B, Q])`.
    """
    return self.step_tokens(state, self.adapt(chunk), self.adapt(queries), t)

  def step_tokens(self, state: MemoryState, chunk_tokens: Array,
                  query_tokens: Array,
                  t: Array) -> tuple[MemoryState, Array]:
    """`step` on adapted tokens (`[B, t', dim]`, `[B, Q, t', dim]`)."""
    state = self.write(state, chunk_tokens, t)
    memory, valid = self.read(state, chunk_tokens.shape[0])
    return state, self.predict(query_tokens, memory, valid)

  def __call__(self, chunk: Array, queries: Array) -> Array:
    state = self.initial_memory(chunk.shape[0], 1, chunk.shape[1])
    return self.step(state, chunk, queries, jnp.zeros((), jnp.int32))[1]
