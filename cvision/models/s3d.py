"""S3D and S3D-G video classifiers (Xie et al. 2018), for pixels and codes.

"Rethinking Spatiotemporal Feature Learning: Speed-Accuracy Trade-offs in
Video Classification", https://arxiv.org/abs/1712.04851. Every 3D conv is
separable (1xkxk spatial then kx1x1 temporal, each with BatchNorm + ReLU);
S3D-G adds self-gating (`gating=True`).

Neural codes (Wiles et al. 2022, Appendix E.1) have a smaller spatial grid
than pixels, so only the stem changes: `stem_for_input` drops spatial strides
from the first conv and the first max-pools until every tensor after the stem
has the shape it has in the RGB network. Time is not compressed by the codec,
so temporal strides stay.

Inputs are `[B, T, H, W, C]`; shapes below use SAME padding, so every strided
layer maps a dimension `d` to `ceil(d / stride)`.

Logical axis names of the parameters (for `nn.logical_to_mesh_sharding`; with
no rules the core replicates them):
  conv kernels   ('conv_t', 'conv_h', 'conv_w', 'embed_in', 'embed_out')
  dense kernels  ('embed_in', 'embed_out') gating, ('embed_in', 'classes') head
  biases / norms ('embed_out',) or ('classes',)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cvision.models import code_embedding

Array = jax.Array
Triple = tuple[int, int, int]

CONV_AXES = ('conv_t', 'conv_h', 'conv_w', 'embed_in', 'embed_out')
GATE_AXES = ('embed_in', 'embed_out')
CLASSIFIER_AXES = ('embed_in', 'classes')

# Mixed block channels from the paper (as in Inception-v1 / I3D):
# (branch0 1x1x1, (branch1 1x1x1, sep 3x3x3), (branch2 1x1x1, sep 3x3x3),
#  branch3 pool-projection 1x1x1).
MIXED_CHANNELS = {
    'Mixed_3b': (64, (96, 128), (16, 32), 32),
    'Mixed_3c': (128, (128, 192), (32, 96), 64),
    'Mixed_4b': (192, (96, 208), (16, 48), 64),
    'Mixed_4c': (160, (112, 224), (24, 64), 64),
    'Mixed_4d': (128, (128, 256), (24, 64), 64),
    'Mixed_4e': (112, (144, 288), (32, 64), 64),
    'Mixed_4f': (256, (160, 320), (32, 128), 128),
    'Mixed_5b': (256, (160, 320), (32, 128), 128),
    'Mixed_5c': (384, (192, 384), (48, 128), 128),
}

RGB_THW = (32, 224, 224)


def _triple(v: Sequence[int], name: str) -> Triple:
  v = tuple(int(s) for s in v)
  if len(v) != 3 or min(v) < 1:
    raise ValueError(f'{name} must be 3 positive ints (t, h, w), got {v}.')
  return v


@dataclasses.dataclass(frozen=True)
class StemConfig:
  """The only hyper-parameters that differ between pixel and code inputs.

  Attributes:
    conv1_stride: (t, h, w) stride of Conv3d_1a_7x7.
    pool1_stride: stride of MaxPool_2a (1x3x3 kernel).
    pool2_stride: stride of MaxPool_3a (1x3x3 kernel).
    pool3_stride: stride of MaxPool_4a (3x3x3 kernel).
    conv1_channels: output channels of Conv3d_1a_7x7 (before width scaling).
    conv2_channels: output channels of Conv3d_2b_1x1 (before width scaling).
    conv1_separable: Conv3d_1a_7x7 as S3D has it, 1x7x7 then 7x1x1 with a
      ReLU between; False makes it one full conv of `conv1_kernel` (as in
      I3D), whose linear filters can compare a location at t with a shifted
      one at t+1 before any rectification.
    conv1_kernel: (t, h, w) kernel of the full first conv; the separable one
      is always 7x7x7. A code cell spans several pixels, so a smaller
      kernel on codes still sees as many pixels as 7x7 on RGB.
  """
  conv1_stride: Triple = (2, 2, 2)
  pool1_stride: Triple = (1, 2, 2)
  pool2_stride: Triple = (1, 2, 2)
  pool3_stride: Triple = (2, 2, 2)
  conv1_channels: int = 64
  conv2_channels: int = 64
  conv1_separable: bool = True
  conv1_kernel: Triple = (7, 7, 7)

  def __post_init__(self):
    for name in ('conv1_stride', 'pool1_stride', 'pool2_stride',
                 'pool3_stride', 'conv1_kernel'):
      # Frozen dataclass: normalise lists to tuples so configs stay hashable.
      object.__setattr__(self, name, _triple(getattr(self, name), name))
    if self.conv1_channels < 1 or self.conv2_channels < 1:
      raise ValueError('Stem channels must be positive.')

  @property
  def strides(self) -> tuple[Triple, Triple, Triple, Triple]:
    """Strides of (conv1, pool1, pool2, pool3), in the order they apply."""
    return (self.conv1_stride, self.pool1_stride, self.pool2_stride,
            self.pool3_stride)


def _spatial_drop(rgb: int, code: int, axis: str) -> int:
  """Returns k such that a code grid of `code` matches pixels `rgb` / 2**k."""
  if code > rgb:
    raise ValueError(
        f'Code grid {axis}={code} is larger than the pixel grid {rgb}.')
  # Codecs downsample by stride-2 SAME convs, i.e. ceil(rgb / 2**k); the S3D
  # stem does the same, so matching ceil at every stage matches all shapes.
  for k in range(0, 5):
    if -(-rgb // 2**k) == code:
      return k
  raise ValueError(
      f'Code grid {axis}={code} is not the pixel grid {rgb} divided by a '
      'power of two in [1, 16]; the S3D stem cannot match its shapes.')


def stem_for_input(input_thw: Sequence[int],
                   rgb_thw: Sequence[int] = RGB_THW,
                   conv1_channels: int = 64,
                   conv2_channels: int = 64,
                   conv1_separable: bool = True,
                   conv1_kernel: Sequence[int] = (7, 7, 7)) -> StemConfig:
  """Chooses stem strides so a code grid reproduces the RGB net's shapes.

  A code grid at 1/2**k of the pixel grid drops the spatial stride from the
  first k of (conv1, pool1, pool2, pool3): 1/4 -> conv1 and pool1 (paper Fig.
  13), 1/8 -> also pool2 (Fig. 14). Temporal strides are kept, because the
  codec does not compress time. The paper also changes the channels of the
  first two convs; their values are only in its figures, so the RGB numbers
  are the default here and can be overridden.

  Args:
    input_thw: (T, H, W) of the network input (pixels or code grid).
    rgb_thw: (T, H, W) of the RGB input whose internal shapes to reproduce.
    conv1_channels: output channels of the first conv.
    conv2_channels: output channels of the second (1x1x1) conv.
    conv1_separable, conv1_kernel: see `StemConfig`.

  Returns:
    The `StemConfig`; `StemConfig()` when `input_thw == rgb_thw`.

  Raises:
    ValueError: if the grids differ in T, the code grid is larger than the
      pixels, or H/W ratios are not the same power of two (<= 16).
  """
  t, h, w = _triple(input_thw, 'input_thw')
  rgb_t, rgb_h, rgb_w = _triple(rgb_thw, 'rgb_thw')
  if t != rgb_t:
    raise ValueError(
        f'Input has T={t} but the RGB reference has T={rgb_t}: time is not '
        'compressed by the codec, so pass rgb_thw with the same T.')
  k = _spatial_drop(rgb_h, h, 'H')
  if _spatial_drop(rgb_w, w, 'W') != k:
    raise ValueError(
        f'H and W are compressed by different factors: {input_thw} vs '
        f'{rgb_thw}.')
  strides = list(StemConfig().strides)
  for i in range(k):
    strides[i] = (strides[i][0], 1, 1)
  return StemConfig(*strides, conv1_channels=conv1_channels,
                    conv2_channels=conv2_channels,
                    conv1_separable=conv1_separable,
                    conv1_kernel=conv1_kernel)


def _conv(features: int, kernel: Triple, strides: Triple, dtype: Any,
          name: str) -> nn.Conv:
  # No bias: BatchNorm follows and would cancel it.
  return nn.Conv(
      features, kernel, strides=strides, padding='SAME', use_bias=False,
      dtype=dtype, param_dtype=jnp.float32,
      kernel_init=nn.with_logical_partitioning(
          nn.initializers.lecun_normal(), CONV_AXES),
      name=name)


class ConvBNReLU(nn.Module):
  """Conv3D -> BatchNorm -> ReLU. `[B, T, H, W, C] -> [B, T', H', W', F]`."""
  features: int
  kernel: Triple = (1, 1, 1)
  strides: Triple = (1, 1, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    x = _conv(self.features, self.kernel, self.strides, self.dtype, 'conv')(x)
    # epsilon as in the TF-slim S3D-G reference; momentum is Flax's default.
    x = nn.BatchNorm(
        use_running_average=not train, epsilon=1e-3,
        dtype=self.dtype, param_dtype=jnp.float32,
        scale_init=nn.with_logical_partitioning(
            nn.initializers.ones, ('embed_out',)),
        bias_init=nn.with_logical_partitioning(
            nn.initializers.zeros, ('embed_out',)),
        name='bn')(x)
    return nn.relu(x)


class SepConv3D(nn.Module):
  """Separable k x k x k unit: 1xkxk spatial then kx1x1 temporal conv.

  Each conv is followed by BatchNorm + ReLU; spatial strides go to the spatial
  conv and the temporal stride to the temporal one.
  `[B, T, H, W, C] -> [B, ceil(T/st), ceil(H/sh), ceil(W/sw), F]`.
  """
  features: int
  kernel_size: int = 3
  strides: Triple = (1, 1, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    k = self.kernel_size
    st, sh, sw = self.strides
    x = ConvBNReLU(self.features, (1, k, k), (1, sh, sw), self.dtype,
                   name='spatial')(x, train)
    return ConvBNReLU(self.features, (k, 1, 1), (st, 1, 1), self.dtype,
                      name='temporal')(x, train)


class SelfGating(nn.Module):
  """S3D-G feature gating: x * sigmoid(W mean_thw(x) + b), per channel."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    channels = x.shape[-1]
    context = jnp.mean(x, axis=(1, 2, 3))  # [B, C]
    gate = nn.Dense(
        channels, dtype=self.dtype, param_dtype=jnp.float32,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.lecun_normal(), GATE_AXES),
        bias_init=nn.with_logical_partitioning(
            nn.initializers.zeros, ('embed_out',)),
        name='dense')(context)
    return x * nn.sigmoid(gate)[:, None, None, None, :]


class MixedBlock(nn.Module):
  """Inception block with separable 3x3x3 branches, concatenated on channels.

  Branches: 1x1x1 | 1x1x1 -> sep 3x3x3 | 1x1x1 -> sep 3x3x3 |
  maxpool 3x3x3 -> 1x1x1. With `gating`, each branch output is self-gated
  before the concat (as in the reference S3D-G implementation).
  `[B, T, H, W, C] -> [B, T, H, W, sum of branch channels]`.
  """
  channels: tuple[int, tuple[int, int], tuple[int, int], int]
  gating: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    c0, (c1a, c1b), (c2a, c2b), c3 = self.channels
    d = self.dtype
    b0 = ConvBNReLU(c0, dtype=d, name='Branch_0_1x1')(x, train)
    b1 = ConvBNReLU(c1a, dtype=d, name='Branch_1_1x1')(x, train)
    b1 = SepConv3D(c1b, dtype=d, name='Branch_1_3x3')(b1, train)
    b2 = ConvBNReLU(c2a, dtype=d, name='Branch_2_1x1')(x, train)
    b2 = SepConv3D(c2b, dtype=d, name='Branch_2_3x3')(b2, train)
    b3 = nn.max_pool(x, (3, 3, 3), strides=(1, 1, 1), padding='SAME')
    b3 = ConvBNReLU(c3, dtype=d, name='Branch_3_1x1')(b3, train)
    branches = [b0, b1, b2, b3]
    if self.gating:
      branches = [SelfGating(d, name=f'Branch_{i}_gate')(b)
                  for i, b in enumerate(branches)]
    return jnp.concatenate(branches, axis=-1)


class S3D(nn.Module):
  """S3D / S3D-G classifier for pixels or embedded neural codes.

  Shared by the S3D and collaborative-memory projects; each builds it from
  its own config (where every field's default is written), so no field has
  a default here.

  Attributes:
    num_classes: number of output logits.
    width_multiplier: scales every channel count (`int(c * m)`).
    min_channels: lower bound for scaled channel counts.
    gating: self-gating after Conv3d_2c and on every mixed-block branch
      (S3D-G).
    stem: strides / channels that adapt the stem to the input grid; see
      `stem_for_input`.
    head: 'video' -> logits `[B, classes]` from a T,H,W average;
      'frame' -> logits `[B, T, classes]` per time step, nearest-upsampled
      from the network's T' back to the input T;
      'none' -> no head: the last conv feature map `[B, T', H', W', C']`
      (Mixed_5c), for models that add their own (collaborative memory).
    dropout_rate: dropout before the classifier.
    input_projection: if > 0, a learned 1x1x1 projection of the input to this
      many channels before the stem. Not in the paper: for wide code
      embeddings at 1/4 of the pixel grid (e.g. 256-d at CR ~30) the 7x7
      first conv otherwise costs ~20x RGB's (docs/benchmarks.md).
    input_correlation: if > 0, the cosine similarity of each input cell with
      its neighbours up to this many cells away one step later
      (`code_embedding.temporal_correlation`) joins the input channels. Not
      in the paper: on codes it shows where a cell's content went.
    input_correlation_only: the network reads the correlations alone, not
      the input itself (needs `input_correlation`). On codes this leaves the
      cells' content out and keeps only where it moved.
    dtype: computation dtype (parameters stay float32; logits are float32).
  """
  num_classes: int
  width_multiplier: float
  min_channels: int
  gating: bool
  stem: StemConfig
  head: str
  dropout_rate: float
  input_projection: int
  input_correlation: int
  input_correlation_only: bool
  dtype: Any = jnp.float32

  def _ch(self, c: int) -> int:
    return max(self.min_channels, int(c * self.width_multiplier))

  @nn.compact
  def __call__(self, x: Array, train: bool, return_features: bool = False):
    """Runs the network.

    Args:
      x: `[B, T, H, W, C]` float input (pixels or embedded codes).
      train: BatchNorm uses batch statistics (mutable 'batch_stats') and
        dropout is on (needs a 'dropout' rng).
      return_features: also return the intermediate tensors.

    Returns:
      `logits` (`[B, classes]` or `[B, T, classes]`), or with
      `return_features` a pair `(logits, endpoints)` where
      `endpoints['features']` is the last conv feature map `[B, T', H', W', C']`
      (Mixed_5c, before pooling), the input for memory models, and the other
      keys are every named layer's output (e.g. 'Mixed_3b').
    """
    if self.head not in ('video', 'frame', 'none'):
      raise ValueError(
          f"head must be 'video', 'frame' or 'none', got {self.head!r}.")
    if x.ndim != 5:
      raise ValueError(f'Expected [B, T, H, W, C], got shape {x.shape}.')
    num_frames = x.shape[1]
    s, d, ch = self.stem, self.dtype, self._ch
    ends = {}
    x = x.astype(d)
    if self.input_correlation_only and not self.input_correlation:
      raise ValueError('input_correlation_only needs input_correlation >= 1 '
                       '(the neighbourhood radius), got 0.')
    if self.input_correlation:
      correlation = code_embedding.temporal_correlation(
          x, self.input_correlation).astype(x.dtype)
      x = (correlation if self.input_correlation_only
           else jnp.concatenate([x, correlation], axis=-1))
    if self.input_projection:
      x = nn.Dense(self.input_projection, dtype=d,
                   name='Input_projection_1x1x1')(x)
      ends['Input_projection_1x1x1'] = x

    if s.conv1_separable:
      x = SepConv3D(ch(s.conv1_channels), 7, s.conv1_stride, d,
                    name='Conv3d_1a_7x7')(x, train)
    else:
      x = ConvBNReLU(ch(s.conv1_channels), s.conv1_kernel, s.conv1_stride,
                     d, name='Conv3d_1a_7x7')(x, train)
    ends['Conv3d_1a_7x7'] = x
    x = nn.max_pool(x, (1, 3, 3), strides=s.pool1_stride, padding='SAME')
    ends['MaxPool_2a_3x3'] = x
    x = ConvBNReLU(ch(s.conv2_channels), dtype=d, name='Conv3d_2b_1x1')(
        x, train)
    ends['Conv3d_2b_1x1'] = x
    x = SepConv3D(ch(192), 3, dtype=d, name='Conv3d_2c_3x3')(x, train)
    if self.gating:
      x = SelfGating(d, name='Conv3d_2c_gate')(x)
    ends['Conv3d_2c_3x3'] = x
    x = nn.max_pool(x, (1, 3, 3), strides=s.pool2_stride, padding='SAME')
    ends['MaxPool_3a_3x3'] = x

    def mixed(x, name):
      c0, (c1a, c1b), (c2a, c2b), c3 = MIXED_CHANNELS[name]
      chans = (ch(c0), (ch(c1a), ch(c1b)), (ch(c2a), ch(c2b)), ch(c3))
      x = MixedBlock(chans, self.gating, d, name=name)(x, train)
      ends[name] = x
      return x

    x = mixed(x, 'Mixed_3b')
    x = mixed(x, 'Mixed_3c')
    x = nn.max_pool(x, (3, 3, 3), strides=s.pool3_stride, padding='SAME')
    ends['MaxPool_4a_3x3'] = x
    for name in ('Mixed_4b', 'Mixed_4c', 'Mixed_4d', 'Mixed_4e', 'Mixed_4f'):
      x = mixed(x, name)
    x = nn.max_pool(x, (2, 2, 2), strides=(2, 2, 2), padding='SAME')
    ends['MaxPool_5a_2x2'] = x
    x = mixed(x, 'Mixed_5b')
    x = mixed(x, 'Mixed_5c')
    ends['features'] = x
    if self.head == 'none':
      return (x, ends) if return_features else x

    if self.head == 'video':
      x = jnp.mean(x, axis=(1, 2, 3))  # [B, C]
    else:
      x = jnp.mean(x, axis=(2, 3))  # [B, T', C]
    ends['pre_logits'] = x
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = nn.Dense(
        self.num_classes, dtype=d, param_dtype=jnp.float32,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.lecun_normal(), CLASSIFIER_AXES),
        bias_init=nn.with_logical_partitioning(
            nn.initializers.zeros, ('classes',)),
        name='logits')(x)
    logits = logits.astype(jnp.float32)
    if self.head == 'frame':
      logits = upsample_time(logits, num_frames)
    return (logits, ends) if return_features else logits


def upsample_time(x: Array, num_frames: int) -> Array:
  """Nearest-neighbour resampling along axis 1: `[B, T', ...] -> [B, T, ...]`.

  Output step t reads input step floor(t * T' / T), i.e. a plain repeat by
  T / T' when it divides.
  """
  t_in = x.shape[1]
  idx = (jnp.arange(num_frames) * t_in) // num_frames
  return jnp.take(x, idx, axis=1)


def output_thw(input_thw: Sequence[int],
               stem: StemConfig = StemConfig()) -> Triple:
  """(T', H', W') of the final feature map, without building the network."""
  dims = list(_triple(input_thw, 'input_thw'))
  # Every stride, in order; SAME padding makes each one a ceil division.
  for stride in (*stem.strides, (2, 2, 2)):
    dims = [math.ceil(dim / st) for dim, st in zip(dims, stride)]
  return tuple(dims)
