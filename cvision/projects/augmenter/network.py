"""The augmentation network `a(z, p)` (paper Sec. 3.4, App. E.1).

Transforms a codec's quantised latents `z` `[B, T, H, W, C]` so that the
frozen decoder turns them into the augmented video: `decode(a(z, p)) ~
A(X; p)`. Two parts, as in App. E.1:

* an MLP (hidden layers of 64, 64, 64 by default) maps the flattened
  augmentation parameters `p` `[B, P]` to a vector of C channels, broadcast
  over time and space and concatenated to `z` (2C channels);
* a transformer (2 layers of width 128, 4 heads) over the T x H x W tokens,
  with learned absolute position embeddings, outputs a latent of z's shape.

Choices the paper leaves open, stated here:
* Attention is factorised, over the H x W tokens of a frame then over the T
  tokens of a location (as in the official release's space-time
  transformer), so its cost grows with T*(HW)^2 + HW*T^2, not (THW)^2.
  `attention='joint'` attends over all T*H*W tokens at once.
* The output is a residual, `z + Dense(...)`, whose last layer starts at
  zero: an untrained network is the identity, so training starts from the
  plain reconstruction.
* The position table is `[max_frames, H, W, width]`; clips of T <= max_frames
  use its first T rows, longer clips go through in windows of max_frames.
  `time_positions=False` keeps only the (y, x) part, `[1, H, W, width]`, the
  same for every frame: frames are then told apart by their content alone,
  so a still clip stays still. With a time axis, the CR-32 CPU crop network
  changed a still clip's decoded frames by 0.0049 per step (a third of the
  digits' real motion, 0.0143) at the same SSIM (README, "Augmentation in
  code space"). The table is learned, and starts as sines and cosines of
  (t, y, x): from a
  N(0, 0.02) start (`position_init='normal'`) the crop network's l1 loss
  fell a third as far in its first 400 steps (0.0887 -> 0.0843 against
  0.0884 -> 0.0754, `augmenter.py:crop` on the CPU codec).

Parameters are small and replicated (no logical axis names).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ATTENTION = ('factorized', 'joint')
POSITION_INITS = ('sinusoidal', 'normal')


class _Block(nn.Module):
  """Pre-LayerNorm transformer block over `[B, T, H, W, D]` tokens."""
  num_heads: int
  ffw_size: int
  attention: str
  dtype: Any = jnp.float32

  def _attend(self, x: Array, name: str) -> Array:
    """Self-attention over axis -2 of `[..., L, D]`."""
    return nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype, name=name)(x, x)

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b, t, h, w, d = x.shape
    norm = lambda name: nn.LayerNorm(dtype=self.dtype, name=name)
    if self.attention == 'joint':
      y = norm('ln_attention')(x).reshape(b, t * h * w, d)
      x = x + self._attend(y, 'attention').reshape(x.shape)
    else:
      y = norm('ln_space')(x).reshape(b, t, h * w, d)
      x = x + self._attend(y, 'space_attention').reshape(x.shape)
      y = norm('ln_time')(x)
      y = jnp.moveaxis(y.reshape(b, t, h * w, d), 1, 2)  # [B, HW, T, D]
      y = self._attend(y, 'time_attention')
      x = x + jnp.moveaxis(y, 2, 1).reshape(x.shape)
    y = norm('ln_ffw')(x)
    y = nn.Dense(self.ffw_size, dtype=self.dtype, name='ffw_in')(y)
    y = nn.Dense(d, dtype=self.dtype, name='ffw_out')(nn.gelu(y))
    return x + y


def _sincos(positions: int, channels: int) -> np.ndarray:
  """`[positions, channels]` transformer sinusoids (channels even)."""
  freqs = 1.0 / 10000 ** (np.arange(channels // 2) / max(channels // 2, 1))
  angles = np.arange(positions)[:, None] * freqs[None]
  return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sinusoidal_positions(shape: Sequence[int], width: int) -> np.ndarray:
  """`[T, H, W, width]`: a third of the channels per axis, sines and cosines
  of the index (the rest zero)."""
  per_axis = (width // 3) // 2 * 2
  table = np.zeros(tuple(shape) + (width,), np.float32)
  for axis, size in enumerate(shape):
    values = _sincos(size, per_axis)
    view = [1, 1, 1, per_axis]
    view[axis] = size
    table[..., axis * per_axis:(axis + 1) * per_axis] = values.reshape(view)
  return table


class _Transformer(nn.Module):
  """`[B, T, H, W, 2C]` tokens -> `[B, T, H, W, C]`, for T <= max_frames."""
  width: int
  num_layers: int
  num_heads: int
  ffw_size: int
  max_frames: int
  attention: str
  position_init: str
  time_positions: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: Array) -> Array:
    _, t, h, w, c2 = tokens.shape
    x = nn.Dense(self.width, dtype=self.dtype, name='embed')(tokens)
    # Without a time axis the one row is broadcast over every frame.
    rows = self.max_frames if self.time_positions else 1
    shape = (rows, h, w, self.width)
    if self.position_init == 'sinusoidal':
      init = lambda *_: jnp.asarray(sinusoidal_positions(shape[:3],
                                                         self.width))
    else:
      init = nn.initializers.truncated_normal(0.02)
    positions = self.param('position_embedding', init, shape)
    x = x + positions[:min(t, rows)].astype(self.dtype)
    for i in range(self.num_layers):
      x = _Block(self.num_heads, self.ffw_size, self.attention, self.dtype,
                 name=f'block_{i}')(x)
    x = nn.LayerNorm(dtype=self.dtype, name='ln_out')(x)
    return nn.Dense(c2 // 2, dtype=self.dtype,
                    kernel_init=nn.initializers.zeros, name='out')(x)


def time_windows(num_frames: int, max_frames: int) -> list[int]:
  """Starts of the windows of `max_frames` that cover `num_frames` frames.

  Consecutive windows, the last one ending on the last frame (overlapping
  the one before when `max_frames` does not divide `num_frames`).
  """
  if num_frames <= max_frames:
    return [0]
  starts = list(range(0, num_frames - max_frames + 1, max_frames))
  if starts[-1] + max_frames < num_frames:
    starts.append(num_frames - max_frames)
  return starts


class AugmentationNetwork(nn.Module):
  """`a(z, p)`: `[B, T, H, W, C]` latents, `[B, P]` parameters -> latents.

  Clips longer than `max_frames` are transformed in consecutive windows of
  `max_frames` (`time_windows`): the augmentations are the same for every
  frame, so a window needs no frame outside it, and clips of any length
  work.

  Attributes:
    mlp_features: hidden layer sizes of the parameter MLP.
    width: transformer token width.
    num_layers: transformer blocks.
    num_heads: attention heads.
    ffw_size: hidden size of each block's feed-forward layer.
    max_frames: rows of the time axis of the position table.
    attention: 'factorized' (space, then time) or 'joint'.
    position_init: 'sinusoidal' (the learned table starts as sines and
      cosines of t, y, x) or 'normal' (N(0, 0.02)).
    time_positions: whether the position table has a time axis (the
      paper's T x H x W); False: one (y, x) table shared by every frame.
    dtype: compute dtype.
  """
  mlp_features: Sequence[int]
  width: int
  num_layers: int
  num_heads: int
  ffw_size: int
  max_frames: int
  attention: str
  position_init: str
  time_positions: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, latents: Array, params: Array) -> Array:
    """Returns the transformed latents, `[B, T, H, W, C]`, in `dtype`.

    Args:
      latents: `[B, T, H, W, C]` float, the codes' embeddings.
      params: `[B, P]` float augmentation parameters (or `[B, ...]`,
        flattened).
    """
    if self.attention not in ATTENTION:
      raise ValueError(f'attention={self.attention!r}: expected one of '
                       f'{ATTENTION}.')
    if self.position_init not in POSITION_INITS:
      raise ValueError(f'position_init={self.position_init!r}: expected one '
                       f'of {POSITION_INITS}.')
    if latents.ndim != 5:
      raise ValueError(f'latents must be [B, T, H, W, C], got '
                       f'{latents.shape}.')
    b, t, _, _, c = latents.shape
    if params.shape[0] != b:
      raise ValueError(f'params {params.shape} and latents {latents.shape} '
                       'differ in batch size.')
    z = latents.astype(self.dtype)
    e = params.reshape(b, -1).astype(self.dtype)
    for i, features in enumerate(self.mlp_features):
      e = nn.relu(nn.Dense(features, dtype=self.dtype, name=f'mlp_{i}')(e))
    e = nn.Dense(c, dtype=self.dtype, name='mlp_out')(e)
    tokens = jnp.concatenate(
        [z, jnp.broadcast_to(e[:, None, None, None, :], z.shape)], axis=-1)
    transformer = _Transformer(self.width, self.num_layers, self.num_heads,
                               self.ffw_size, self.max_frames, self.attention,
                               self.position_init, self.time_positions,
                               self.dtype, name='transformer')
    window = min(t, self.max_frames)
    deltas = [transformer(jax.lax.slice_in_dim(tokens, s, s + window, axis=1))
              for s in time_windows(t, self.max_frames)]
    if len(deltas) == 1:
      return z + deltas[0]
    delta = jnp.zeros_like(z)
    for s, d in zip(time_windows(t, self.max_frames), deltas):
      delta = delta.at[:, s:s + window].set(d)
    return z + delta
