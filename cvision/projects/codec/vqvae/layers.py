"""Reflection-padded 3D convolutions shared by the VQ-VAE encoder and decoder.

All activations are `[B, T, H, W, C]`. Convolutions run with VALID padding on a
tensor padded by reflection, so that a clip of any length is treated the same
at its borders (paper Appendix E.1: "we have to reflect the tensor at the
boundary when padding (as opposed to padding with zeros)").

Logical axis names of the parameters (for a sharding rule table):
  conv kernels `[kt, kh, kw, in, out]`: ('conv_t', 'conv_h', 'conv_w',
    'conv_in', 'conv_out');
  biases `[out]`: ('conv_out',).
The rule table maps them to mesh axes (e.g. 'conv_out' -> 'model') or to None
(replicated, the default of the core).
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

KERNEL_AXES = ('conv_t', 'conv_h', 'conv_w', 'conv_in', 'conv_out')
BIAS_AXES = ('conv_out',)

_SPATIAL_NAMES = ('T', 'H', 'W')


def variance_scaling_flat(scale: float = 1.0, fan_in_divisor: int = 1):
  """Uniform init with variance scale / fan_in, fan_in = prod(shape[:-1]).

  Args:
    scale: 1 is LeCun's init, 2 He's (for layers followed by a ReLU).
    fan_in_divisor: a transposed conv with strides s feeds each output from
      only prod(k) / prod(s) taps; dividing the fan-in by prod(s) keeps its
      output variance that of a plain conv.

  The draw is a flat vector reshaped: with the partitionable threefry PRNG,
  XLA:CPU spends 1-2 s compiling each multi-dimensional draw (0.2 s flat),
  which dominated model init in tests.
  """

  def init(key: jax.Array, shape: Sequence[int],
           dtype: jnp.dtype = jnp.float32) -> jax.Array:
    fan_in = max(1.0, math.prod(shape[:-1]) / fan_in_divisor)
    limit = math.sqrt(3.0 * scale / fan_in)
    flat = jax.random.uniform(key, (math.prod(shape),), dtype, -limit, limit)
    return flat.reshape(shape)

  return init


def _kernel_init(scale: float = 1.0, fan_in_divisor: int = 1):
  return nn.with_logical_partitioning(
      variance_scaling_flat(scale, fan_in_divisor), KERNEL_AXES)


def _bias_init():
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), BIAS_AXES)


def pad_3d(x: jax.Array, pads: Sequence[tuple[int, int]]) -> jax.Array:
  """Pads T, H, W of `[B, T, H, W, C]` by reflection.

  Reflection needs a dimension longer than its pad; shorter ones (e.g. a T=1
  clip) fall back to repeating the edge, which is what a reflection of a
  constant signal would give.

  Args:
    x: `[B, T, H, W, C]` array.
    pads: three (low, high) pad sizes for T, H, W.

  Returns:
    The padded array.
  """
  for axis, (lo, hi) in enumerate(pads, start=1):
    if lo == 0 and hi == 0:
      continue
    widths = [(0, 0)] * x.ndim
    widths[axis] = (lo, hi)
    mode = 'reflect' if x.shape[axis] > max(lo, hi) else 'edge'
    x = jnp.pad(x, widths, mode=mode)
  return x


def _same_pads(kernel: Sequence[int],
               strides: Sequence[int]) -> list[tuple[int, int]]:
  """Pads making a strided VALID conv map a length L to L / stride."""
  pads = []
  for k, s in zip(kernel, strides):
    if k < s:
      raise ValueError(f'kernel {tuple(kernel)} smaller than stride '
                       f'{tuple(strides)}.')
    lo = (k - s) // 2
    pads.append((lo, k - s - lo))
  return pads


def _check_divisible(shape: Sequence[int], strides: Sequence[int],
                     where: str) -> None:
  for name, size, s in zip(_SPATIAL_NAMES, shape, strides):
    if size % s:
      raise ValueError(
          f'{where}: {name}={size} is not divisible by the stride {s}; '
          f'input [B, T, H, W, C] shape must be a multiple of the strides.')


# XLA:CPU runs strided and input-dilated (transposed) 3D convolutions, and the
# weight gradient of padded ones, on a slow generic path: 10-50x slower than a
# stride-1 VALID convolution of the same FLOPs. The two helpers below rewrite
# strided and transposed convolutions exactly as stride-1 VALID convolutions
# on space-to-depth / depth-to-space rearrangements (their gradients are then
# stride-1 convolutions too). Padding is always done beforehand with jnp.pad.


def _conv_valid(x: jax.Array, kernel: jax.Array) -> jax.Array:
  # Compute in the kernel's dtype: the core casts parameters to the compute
  # dtype (e.g. bfloat16), which float32 activations must not undo.
  return jax.lax.conv_general_dilated(
      x.astype(kernel.dtype), kernel, window_strides=(1, 1, 1),
      padding='VALID',
      dimension_numbers=('NDHWC', 'DHWIO', 'NDHWC'))


def _taps(kernel_size: Sequence[int], strides: Sequence[int]) -> list[int]:
  return [-(-k // s) for k, s in zip(kernel_size, strides)]  # ceil(k / s).


def _pad_kernel(kernel: jax.Array, taps: Sequence[int],
                strides: Sequence[int]) -> jax.Array:
  """Zero taps so each spatial kernel size is J*s."""
  pads = [(0, j * s - k) for j, s, k in zip(taps, strides, kernel.shape[:3])]
  return jnp.pad(kernel, pads + [(0, 0), (0, 0)])


def conv_strided_s2d(x: jax.Array, kernel: jax.Array,
                     strides: Sequence[int]) -> jax.Array:
  """VALID strided convolution computed as a stride-1 conv on space-to-depth.

  y[q] = sum_t x[q*s + t] * kernel[t] per axis, i.e. `lax.conv` with
  `window_strides=strides` and VALID padding.

  Args:
    x: `[B, T, H, W, C_in]` (already padded).
    kernel: `[kt, kh, kw, C_in, C_out]`.
    strides: (st, sh, sw).

  Returns:
    `[B, (T-kt)//st + 1, (H-kh)//sh + 1, (W-kw)//sw + 1, C_out]`.
  """
  strides = tuple(strides)
  taps = _taps(kernel.shape[:3], strides)
  out = [(n - k) // s + 1 for n, k, s in zip(x.shape[1:4], kernel.shape[:3],
                                               strides)]
  # Trailing zeros so every axis is (out + J - 1) * s long; the extra entries
  # only meet the zero taps added to the kernel.
  lengths = [(o + j - 1) * s for o, j, s in zip(out, taps, strides)]
  x = jnp.pad(x, [(0, 0)] + [(0, max(0, n - m)) for n, m in zip(
      lengths, x.shape[1:4])] + [(0, 0)])
  x = x[:, :lengths[0], :lengths[1], :lengths[2]]
  (jt, jh, jw), (st, sh, sw) = taps, strides
  b, c_in, c_out = x.shape[0], kernel.shape[3], kernel.shape[4]
  x = x.reshape(b, lengths[0] // st, st, lengths[1] // sh, sh,
                lengths[2] // sw, sw, c_in)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(
      b, lengths[0] // st, lengths[1] // sh, lengths[2] // sw,
      st * sh * sw * c_in)
  kernel = _pad_kernel(kernel, taps, strides)
  kernel = kernel.reshape(jt, st, jh, sh, jw, sw, c_in, c_out)
  kernel = kernel.transpose(0, 2, 4, 1, 3, 5, 6, 7).reshape(
      jt, jh, jw, st * sh * sw * c_in, c_out)
  return _conv_valid(x, kernel)


def conv_transpose_subpixel(x: jax.Array, kernel: jax.Array,
                            strides: Sequence[int]) -> jax.Array:
  """Fully-supported part of a transposed convolution, as a sub-pixel conv.

  The transposed convolution is y[o] = sum_i x[i] * kernel[o - i*s] per axis.
  Output phase r = o mod s is a stride-1 convolution of x with the taps
  kernel[j*s + r]; all phases run as one convolution with st*sh*sw times the
  output channels, then interleave (depth-to-space).

  Args:
    x: `[B, T, H, W, C_in]`.
    kernel: `[kt, kh, kw, C_in, C_out]`.
    strides: (st, sh, sw).

  Returns:
    y[o] for o in [(J-1)*s, L*s) per axis (the outputs that all J = ceil(k/s)
    taps reach): `[B, (T-J_t+1)*st, (H-J_h+1)*sh, (W-J_w+1)*sw, C_out]`.
  """
  strides = tuple(strides)
  taps = _taps(kernel.shape[:3], strides)
  c_in, c_out = kernel.shape[3:]
  (jt, jh, jw), (st, sh, sw) = taps, strides
  kernel = _pad_kernel(kernel, taps, strides)
  # Split each axis into (J, s) and flip J: a cross-correlation then applies
  # kernel[j*s + r] to x[q - j].
  kernel = kernel.reshape(jt, st, jh, sh, jw, sw, c_in, c_out)
  kernel = kernel[::-1, :, ::-1, :, ::-1]
  kernel = kernel.transpose(0, 2, 4, 6, 1, 3, 5, 7).reshape(
      jt, jh, jw, c_in, st * sh * sw * c_out)
  z = _conv_valid(x, kernel)
  b, lt, lh, lw, _ = z.shape
  z = z.reshape(b, lt, lh, lw, st, sh, sw, c_out)
  z = z.transpose(0, 1, 4, 2, 5, 3, 6, 7)
  return z.reshape(b, lt * st, lh * sh, lw * sw, c_out)


class ReflectConv3D(nn.Module):
  """Conv3D with reflection padding; maps (T, H, W) to (T, H, W) / strides.

  Attributes:
    features: output channels.
    kernel_size: (kt, kh, kw).
    strides: (st, sh, sw); each must divide the matching input dimension.
    init_scale: kernel variance times fan-in (1 LeCun, 2 He before a ReLU).
  """
  features: int
  kernel_size: Sequence[int] = (3, 3, 3)
  strides: Sequence[int] = (1, 1, 1)
  init_scale: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """`[B, T, H, W, C]` -> `[B, T/st, H/sh, W/sw, features]`."""
    _check_divisible(x.shape[1:4], self.strides, self.name or 'conv')
    kernel = self.param('kernel', _kernel_init(self.init_scale),
                        tuple(self.kernel_size) + (x.shape[-1], self.features))
    bias = self.param('bias', _bias_init(), (self.features,))
    x = pad_3d(x, _same_pads(self.kernel_size, self.strides))
    if all(s == 1 for s in self.strides):
      y = _conv_valid(x, kernel)
    else:
      y = conv_strided_s2d(x, kernel, self.strides)
    return y + bias.astype(y.dtype)


def _transpose_pads(k: int, s: int) -> tuple[int, int, int]:
  """Input pads and output crop start of a reflection-padded transposed conv.

  A transposed conv with stride s and kernel k writes input i to outputs
  i*s .. i*s+k-1. Keeping the L*s outputs from offset c0 = (k - s) // 2 (the
  'SAME' convention) needs input neighbours from floor((k-1-c0)/s) before to
  floor((s-1+c0)/s) after; padding those by reflection instead of zeros keeps
  the borders as well-fed as the interior.

  Returns:
    (pad_lo, pad_hi, crop_start) for one axis, crop_start counted in the
    output of the padded input.
  """
  c0 = (k - s) // 2
  lo = (k - 1 - c0) // s
  hi = (s - 1 + c0) // s
  return lo, hi, c0 + lo * s


class ReflectConvTranspose3D(nn.Module):
  """Transposed Conv3D, reflection padded: (T, H, W) -> (T, H, W) * strides.

  Computes y[o] = sum_i x[i] * kernel[o - i*s] (the textbook transposed conv;
  the kernel is the flip of `nn.ConvTranspose`'s) on the reflection-padded
  input, keeping L*s outputs in the 'SAME' alignment.

  Attributes:
    features: output channels.
    kernel_size: (kt, kh, kw), each >= its stride.
    strides: (st, sh, sw) upsampling factors.
    init_scale: kernel variance times effective fan-in (1 LeCun, 2 He).
  """
  features: int
  kernel_size: Sequence[int] = (4, 4, 4)
  strides: Sequence[int] = (1, 2, 2)
  init_scale: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """`[B, T, H, W, C]` -> `[B, T*st, H*sh, W*sw, features]`."""
    kernel = self.param(
        'kernel', _kernel_init(self.init_scale, math.prod(self.strides)),
        tuple(self.kernel_size) + (x.shape[-1], self.features))
    bias = self.param('bias', _bias_init(), (self.features,))
    taps = _taps(self.kernel_size, self.strides)
    reflect, zeros, starts = [], [], []
    for n, k, s, j in zip(x.shape[1:4], self.kernel_size, self.strides, taps):
      if k < s:
        raise ValueError(f'kernel {tuple(self.kernel_size)} smaller than '
                         f'stride {tuple(self.strides)}.')
      lo, hi, start = _transpose_pads(k, s)
      # `conv_transpose_subpixel` yields outputs from (J-1)*s on; zeros beyond
      # the reflection make sure [start, start + n*s) is among them (they
      # only reach outputs outside that range).
      zlo = max(0, -(-((j - 1) * s - start) // s))
      padded = n + lo + hi + zlo
      zhi = max(0, -(-(start + zlo * s + n * s - padded * s) // s))
      reflect.append((lo, hi))
      zeros.append((zlo, zhi))
      starts.append(start + zlo * s - (j - 1) * s)
    out_t, out_h, out_w = [n * s for n, s in zip(x.shape[1:4], self.strides)]
    x = pad_3d(x, reflect)
    x = jnp.pad(x, [(0, 0)] + zeros + [(0, 0)])
    y = conv_transpose_subpixel(x, kernel, self.strides)
    t0, h0, w0 = starts
    y = y[:, t0:t0 + out_t, h0:h0 + out_h, w0:w0 + out_w]
    return y + bias.astype(y.dtype)


class Pointwise(nn.Module):
  """1x1x1 Conv3D (a per-location linear map), `[..., C] -> [..., features]`."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', _kernel_init(),
                        (1, 1, 1, x.shape[-1], self.features))
    bias = self.param('bias', _bias_init(), (self.features,))
    y = _conv_valid(x, kernel)
    return y + bias.astype(y.dtype)


class ResBlock(nn.Module):
  """Residual block of Table 10: Conv3D 3^3 -> 4*C, ReLU, Conv3D 3^3 -> C, skip.

  Attributes:
    expansion: hidden width as a multiple of the input channels (paper: 4).
  """
  expansion: int = 4

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """`[B, T, H, W, C]` -> `[B, T, H, W, C]`."""
    channels = x.shape[-1]
    h = ReflectConv3D(self.expansion * channels, name='conv_in')(x)
    h = nn.relu(h)
    h = ReflectConv3D(channels, name='conv_out')(h)
    return x + h
