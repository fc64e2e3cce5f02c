"""The released augmentation network ("Compressed Vision", official release).

A second augmenter architecture beside cvision's own `AugmentationNetwork`
(`augmenter/network.py`): the `NeuralTransformation` of
google-deepmind/compressed_vision (an MLP on the transformation, broadcast and
concatenated to the latents, then its `SpatioTemporalTransformerXL`), written
in Flax so that the release's weights, imported with `release/importer.py`,
compute what they computed there. Its call is `AugmentationNetwork`'s,
`(latents [B, T, H, W, C], params [B, P]) -> latents [B, T, H, W, C]`, so the
frozen augmenter, S3D's code augmentation and the augmenter task accept it.

What it computes, as the release's code does:
  * `e = MLP(p)`: Dense + ReLU for each of `mlp_features`, then a Dense to
    C with no activation (Haiku's `hk.nets.MLP`).
  * tokens `[B, T, H*W, 2C]`: e broadcast over time and cells, *then* the
    latents (that order); `d_model = 2C`, no input projection.
  * plus a learned position table `[T, H*W, 2C]`.
  * each block (pre-LayerNorm): attention over time (each cell attends to
    its own cell in every frame), residual; attention over the H*W cells of
    a frame, residual; a feed-forward of `ffw_size` with tanh-approximated
    GELU, residual. Queries, keys and values have no bias; the attention's
    output projection and the feed-forward layers do. Logits are scaled by
    key_size**-0.5. LayerNorms have Haiku's epsilon 1e-5 and exact variance.
  * a final LayerNorm, and the output is its *last* C channels (the
    latents' half of the tokens): no residual around the network, no output
    projection.
  * dropout: the release calls its transformer in training mode with rate
    0.0, which keeps every value, so there is none here.

Clip lengths: the release builds its position table from the clip it sees,
so its weights run only on clips of the training clip's code grid,
`position_frames` x `position_cells`. Those clips give the release's output.
Beyond it (cvision's choice, as its own augmenter does): a clip of fewer
frames reads the table's first rows; a longer one goes through in
consecutive windows of `position_frames` (`network.time_windows`). A grid of
other H * W is refused: the table's rows are cells.

Every field comes from the release's `augm_config` through
`release/config.py`, the one place its defaults live.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cvision.projects.augmenter import network as augmenter_network

Array = jax.Array
# Haiku's LayerNorm epsilon (Flax's default is 1e-6).
LAYER_NORM_EPSILON = 1e-5


def _layer_norm(dtype: Any, name: str) -> nn.LayerNorm:
  # Haiku's LayerNorm computes the variance as jnp.var does.
  return nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, use_fast_variance=False,
                      dtype=dtype, name=name)


class SpaceTimeAttention(nn.Module):
  """Multi-head self-attention over the time or the cell axis of tokens.

  Attributes:
    num_heads: heads.
    key_size: query and key size per head.
    value_size: value size per head.
    axis: 'time' (axis 1 of `[B, T, L, D]`) or 'space' (axis 2).
    dtype: compute dtype.
  """
  num_heads: int
  key_size: int
  value_size: int
  axis: str
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """`[B, T, L, D]` -> `[B, T, L, D]`."""
    b, t, l, d = x.shape
    h = self.num_heads

    def heads(size, name):
      y = nn.Dense(h * size, use_bias=False, dtype=self.dtype, name=name)(x)
      return y.reshape(b, t, l, h, size)

    query = heads(self.key_size, 'query')
    key = heads(self.key_size, 'key')
    value = heads(self.value_size, 'value')
    if self.axis == 'time':
      logits = jnp.einsum('btlhd,bTlhd->blhtT', query, key)
    elif self.axis == 'space':
      logits = jnp.einsum('btlhd,btLhd->bthlL', query, key)
    else:
      raise ValueError(f"axis must be 'time' or 'space', got {self.axis!r}.")
    weights = jax.nn.softmax(logits * self.key_size**-0.5)
    if self.axis == 'time':
      out = jnp.einsum('blhtT,bTlhd->btlhd', weights, value)
    else:
      out = jnp.einsum('bthlL,btLhd->btlhd', weights, value)
    out = out.reshape(b, t, l, h * self.value_size)
    return nn.Dense(d, dtype=self.dtype, name='out')(out)


class _Block(nn.Module):
  """One release block: time attention, space attention, feed-forward."""
  num_heads: int
  key_size: int
  value_size: int
  ffw_size: int
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    for axis in ('time', 'space'):
      y = _layer_norm(self.dtype, f'ln_{axis}')(x)
      x = x + SpaceTimeAttention(self.num_heads, self.key_size,
                                 self.value_size, axis, self.dtype,
                                 name=f'{axis}_attention')(y)
    y = _layer_norm(self.dtype, 'ln_ffw')(x)
    y = nn.Dense(self.ffw_size, dtype=self.dtype, name='ffw_in')(y)
    y = nn.gelu(y, approximate=True)  # jax.nn.gelu's default, the release's.
    return x + nn.Dense(x.shape[-1], dtype=self.dtype, name='ffw_out')(y)


class _Transformer(nn.Module):
  """`[B, T, L, D]` tokens -> `[B, T, L, D]`, for T <= position_frames."""
  num_layers: int
  num_heads: int
  key_size: int
  value_size: int
  ffw_size: int
  position_frames: int
  position_cells: int
  dtype: Any

  @nn.compact
  def __call__(self, tokens: Array) -> Array:
    _, t, l, d = tokens.shape
    positions = self.param('position_embedding',
                           nn.initializers.truncated_normal(0.02),
                           (self.position_frames, self.position_cells, d))
    x = tokens + positions[:t, :l].astype(self.dtype)
    for i in range(self.num_layers):
      x = _Block(self.num_heads, self.key_size, self.value_size,
                 self.ffw_size, self.dtype, name=f'block_{i}')(x)
    return _layer_norm(self.dtype, 'ln_out')(x)


class ReleaseAugmentationNetwork(nn.Module):
  """The release's `NeuralTransformation`: `a(z, p)`.

  Attributes:
    mlp_features: hidden sizes of the transformation MLP (`channels`).
    num_layers: transformer blocks (`num_hidden_layers`).
    num_heads: attention heads (`num_attention_heads`).
    key_size: query/key size per head.
    value_size: value size per head.
    ffw_size: feed-forward hidden size (`intermediate_size`).
    position_frames: rows (frames) of the position table, the training
      clip's code frames.
    position_cells: its columns, the training clip's H * W code cells.
    dtype: compute dtype.
  """
  mlp_features: Sequence[int]
  num_layers: int
  num_heads: int
  key_size: int
  value_size: int
  ffw_size: int
  position_frames: int
  position_cells: int
  dtype: Any

  @nn.compact
  def __call__(self, latents: Array, params: Array) -> Array:
    """Returns the transformed latents, `[B, T, H, W, C]`, in `dtype`.

    Args:
      latents: `[B, T, H, W, C]` float, the codes' embeddings.
      params: `[B, P]` float transformation parameters (or `[B, ...]`,
        flattened, as the release does).
    """
    if latents.ndim != 5:
      raise ValueError(f'latents must be [B, T, H, W, C], got '
                       f'{latents.shape}.')
    b, t, h, w, c = latents.shape
    if params.shape[0] != b:
      raise ValueError(f'params {params.shape} and latents {latents.shape} '
                       'differ in batch size.')
    if h * w != self.position_cells:
      raise ValueError(
          f'The release augmentation network was trained on code grids of '
          f'{self.position_cells} cells (its position table); latents of '
          f'{h}x{w} = {h * w} cells cannot go through it.')
    e = params.reshape(b, -1).astype(self.dtype)
    for i, features in enumerate(self.mlp_features):
      e = nn.relu(nn.Dense(features, dtype=self.dtype, name=f'mlp_{i}')(e))
    e = nn.Dense(c, dtype=self.dtype, name='mlp_out')(e)
    z = latents.astype(self.dtype).reshape(b, t, h * w, c)
    tokens = jnp.concatenate(
        [jnp.broadcast_to(e[:, None, None, :], z.shape), z], axis=-1)
    transformer = _Transformer(
        self.num_layers, self.num_heads, self.key_size, self.value_size,
        self.ffw_size, self.position_frames, self.position_cells, self.dtype,
        name='transformer')
    window = min(t, self.position_frames)
    starts = augmenter_network.time_windows(t, self.position_frames)
    # The latents' half of the tokens is the output.
    outs = [transformer(jax.lax.slice_in_dim(tokens, s, s + window,
                                             axis=1))[..., -c:]
            for s in starts]
    out = outs[0]
    if len(outs) > 1:
      out = jnp.zeros_like(z)
      for s, o in zip(starts, outs):
        out = out.at[:, s:s + window].set(o)
    return out.reshape(latents.shape)


def build_release_augmenter(model_config: Any,
                            dtype: Any) -> ReleaseAugmentationNetwork:
  """The network of an imported augmenter's `config.model`.

  `model_config.release` holds every field but dtype (`release/config.py`
  writes it).
  """
  # Imported here: config_utils is core, and this keeps the network file
  # importable on its own for tests that only need the layers.
  from cvision.core import config_utils  # pylint: disable=g-import-not-at-top
  fields = dict(model_config.release)
  fields['mlp_features'] = tuple(fields['mlp_features'])
  return config_utils.build_module(ReleaseAugmentationNetwork, fields,
                                   'release augmenter model', dtype=dtype)
