"""The released codec's network ("Compressed Vision", official Haiku release).

A second codec architecture beside cvision's own VQ-VAE (`codec/vqvae`): the
convolutional encoder / multi-codebook EMA quantiser / transposed-convolution
decoder of google-deepmind/compressed_vision (`CompressionConvEncoderDecoder`),
written in Flax so that the release's weights, imported with
`release/importer.py`, compute what they computed there. Its interface is
`vqvae.VQVAE`'s (`encode`, `codes_to_latents`, `decode_latents`, `decode`,
`__call__(video, train)`), so every consumer of a codec accepts it.

The details that decide output identity, as the release's code behaves:
  * `padding='VALID'` in the release means reflect-pad each spatial/time axis
    by (k - 1) // 2 on both sides, then a VALID convolution; 'SAME' is XLA's
    SAME (for an even kernel the extra pixel goes after).
  * Encoder convolutions have no bias; transposed convolutions do.
  * Codebook n quantises the encoder channels n, n + N, n + 2N, ... (a
    `[..., D, N]` reshape), but the quantised latents are laid out in
    contiguous blocks: codebook n fills channels [n*D, (n+1)*D). The decoder
    reads that contiguous layout, as `codes_to_latents` produces it.
  * The spatial transposed convolutions produce exactly stride x input size
    (Haiku's `output_shape`); the temporal one uses XLA's SAME transposed
    padding, so with a kernel of 1 frame the odd output frames are bias only.
  * Nearest codebook entry: squared distance |x|^2 - 2 x.e + |e|^2, first
    index on ties (the release's argmax of the negated distance).
  * Training updates the codebook as Haiku's `VectorQuantizerEMA` does:
    zero-debiased EMAs of the assignment counts and sums (with their step
    counters), Laplace smoothing epsilon 1e-5, codebook = sums / counts.

Every field comes from the release's `model_kwargs` through
`release/config.py`, the one place their defaults live.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cvision.projects.codec.vqvae import quantizer as quantizer_lib

COLLECTION = quantizer_lib.COLLECTION
# Haiku's VectorQuantizerEMA default, which the release does not override.
EMA_EPSILON = 1e-5


def reflect_padding(kernel_size: Sequence[int]) -> list[tuple[int, int]]:
  """The release's 'VALID' pre-padding: (k - 1) // 2 on both sides."""
  return [((k - 1) // 2, (k - 1) // 2) for k in kernel_size]


def transposed_padding_for_size(input_size: int, output_size: int,
                                kernel: int, stride: int) -> tuple[int, int]:
  """`lax.conv_transpose` padding that gives `output_size` ('SAME' rule).

  A transposed convolution is a convolution of the input dilated by
  `stride` ((i - 1) * s + 1 samples); 'SAME' with a requested output size
  crops `max(0, (i - 1) * s + k - o)` from the full output, the smaller half
  before. Written from that definition, as Haiku's `output_shape` behaves.
  """
  if (output_size + stride - 1) // stride != input_size:
    raise ValueError(f'A transposed convolution of stride {stride} cannot '
                     f'turn {input_size} samples into {output_size}.')
  cropped = max(0, (input_size - 1) * stride + kernel - output_size)
  before = kernel - 1 - cropped // 2
  after = output_size + kernel - 1 - ((input_size - 1) * stride + 1) - before
  return before, after


class ReleaseConv(nn.Module):
  """The release's encoder convolution: optional reflect pad, conv, no bias.

  Attributes:
    features: output channels.
    kernel_size: `(kt, kh, kw)`.
    strides: `(st, sh, sw)`.
    padding: 'VALID' (reflect-padded, see the module doc) or 'SAME'.
    relu: apply a ReLU after the convolution.
  """
  features: int
  kernel_size: tuple[int, int, int]
  strides: tuple[int, int, int]
  padding: str
  relu: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.padding == 'VALID':
      x = jnp.pad(x, [(0, 0), *reflect_padding(self.kernel_size), (0, 0)],
                  mode='reflect')
    x = nn.Conv(self.features, tuple(self.kernel_size),
                strides=tuple(self.strides), padding=self.padding,
                use_bias=False, name='conv')(x)
    return nn.relu(x) if self.relu else x


class UpsamplingConvTranspose(nn.Module):
  """A transposed convolution to exactly `strides` x the input size.

  Attributes:
    features: output channels.
    kernel_size: `(kt, kh, kw)`.
    strides: `(st, sh, sw)`.
  """
  features: int
  kernel_size: tuple[int, int, int]
  strides: tuple[int, int, int]

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    padding = [transposed_padding_for_size(size, s * size, k, s)
               for size, k, s in zip(x.shape[1:4], self.kernel_size,
                                     self.strides)]
    return nn.ConvTranspose(self.features, tuple(self.kernel_size),
                            strides=tuple(self.strides), padding=padding,
                            name='conv')(x)


class ReleaseQuantizer(nn.Module):
  """N EMA codebooks of K entries, Haiku's `VectorQuantizerEMA` N times.

  Variables (collection 'vq_ema', as `vqvae.VectorQuantizer` names its
  codebook, so frozen-codec readers find it): 'codebook' `[N, K, D]`, and
  Haiku's EMA statistics, per codebook: 'cluster_size_{hidden,average}'
  `[N, K]`, 'dw_{hidden,average}' `[N, K, D]` (Haiku stores dw as `[D, K]`),
  'cluster_size_counter' and 'dw_counter' `[N]` int32.

  Attributes:
    num_codebooks: N.
    codebook_size: K.
    embedding_dim: D, channels per codebook.
    commitment_cost: beta.
    decay: EMA decay.
  """
  num_codebooks: int
  codebook_size: int
  embedding_dim: int
  commitment_cost: float
  decay: float

  def setup(self):
    n, k, d = self.num_codebooks, self.codebook_size, self.embedding_dim

    def uniform_codebook():
      # Haiku's VarianceScaling(uniform) on its [D, K] layout: fan-in D.
      limit = np.sqrt(3.0 / d)
      return jax.random.uniform(self.make_rng('params'), (n, k, d),
                                jnp.float32, -limit, limit)

    def zeros(*shape, dtype=jnp.float32):
      return lambda: jnp.zeros(shape, dtype)

    self.codebook = self.variable(COLLECTION, 'codebook', uniform_codebook)
    self.cluster_size_counter = self.variable(
        COLLECTION, 'cluster_size_counter', zeros(n, dtype=jnp.int32))
    self.cluster_size_hidden = self.variable(COLLECTION, 'cluster_size_hidden',
                                             zeros(n, k))
    self.cluster_size_average = self.variable(
        COLLECTION, 'cluster_size_average', zeros(n, k))
    self.dw_counter = self.variable(COLLECTION, 'dw_counter',
                                    zeros(n, dtype=jnp.int32))
    self.dw_hidden = self.variable(COLLECTION, 'dw_hidden', zeros(n, k, d))
    self.dw_average = self.variable(COLLECTION, 'dw_average', zeros(n, k, d))

  def lookup(self, codes: jax.Array) -> jax.Array:
    """`[..., N]` codes -> `[..., N*D]` latents, codebook n in block n."""
    return quantizer_lib.codes_to_latents(self.codebook.value, codes)

  def __call__(self, x: jax.Array, train: bool):
    """Encoder output `[..., N*D]` -> quantized `[..., N*D]`, codes, aux.

    Codebook n reads the interleaved channels x[..., n::N]; the quantized
    output is in contiguous blocks (see the module doc).
    """
    n, k, d = self.num_codebooks, self.codebook_size, self.embedding_dim
    if x.shape[-1] != n * d:
      raise ValueError(f'The release codec\'s latents have {x.shape[-1]} '
                       f'channels, its {n} codebooks of {d} need {n * d}.')
    lead = x.shape[:-1]
    x = x.astype(jnp.float32)
    # [M, D, N] -> [M, N, D]: codebook n takes channels n, n + N, ...
    flat = jnp.swapaxes(x.reshape((-1, d, n)), 1, 2)
    codebook = self.codebook.value
    dots = jnp.einsum('mnd,nkd->mnk', flat, codebook,
                      precision=jax.lax.Precision.HIGHEST)
    distances = (jnp.sum(flat**2, -1, keepdims=True) - 2 * dots
                 + jnp.sum(codebook**2, -1)[None])
    codes = jnp.argmin(distances, axis=-1).astype(jnp.int32)  # [M, N]
    quantized = codebook[jnp.arange(n), codes]  # [M, N, D]
    one_hot = jax.nn.one_hot(codes, k, dtype=jnp.float32)  # [M, N, K]
    if train and not self.is_initializing():
      self._ema_update(flat, one_hot)
    commitment = self.commitment_cost * jnp.mean(
        (jax.lax.stop_gradient(quantized) - flat)**2)
    quantized = flat + jax.lax.stop_gradient(quantized - flat)
    probs = jnp.mean(one_hot, axis=0)  # [N, K]
    aux = {
        'commitment_loss': commitment,
        'perplexity': jnp.exp(-jnp.sum(probs * jnp.log(probs + 1e-10), -1)),
        'usage': jnp.mean((probs > 0).astype(jnp.float32), axis=-1),
    }
    return (quantized.reshape(lead + (n * d,)), codes.reshape(lead + (n,)),
            aux)

  def _ema_update(self, flat: jax.Array, one_hot: jax.Array) -> None:
    flat = jax.lax.stop_gradient(flat)
    counts = jnp.sum(one_hot, axis=0)  # [N, K]
    sums = jnp.einsum('mnk,mnd->nkd', one_hot, flat,
                      precision=jax.lax.Precision.HIGHEST)
    cluster_size = self._ema(self.cluster_size_counter,
                             self.cluster_size_hidden,
                             self.cluster_size_average, counts)
    dw = self._ema(self.dw_counter, self.dw_hidden, self.dw_average, sums)
    total = jnp.sum(cluster_size, axis=-1, keepdims=True)
    smoothed = ((cluster_size + EMA_EPSILON)
                / (total + self.codebook_size * EMA_EPSILON) * total)
    self.codebook.value = dw / smoothed[..., None]

  def _ema(self, counter, hidden, average, value):
    """Haiku's zero-debiased `ExponentialMovingAverage` step."""
    decay = jnp.float32(self.decay)
    counter.value = counter.value + 1
    hidden.value = hidden.value * decay + value * (1 - decay)
    steps = counter.value.reshape((-1,) + (1,) * (value.ndim - 1))
    average.value = hidden.value / (1 - jnp.power(decay, steps))
    return average.value


class ReleaseCodec(nn.Module):
  """The release's `CompressionConvEncoderDecoder`, inference and training.

  Videos are `[B, T, H, W, C]` float in [0, 1] (uint8 accepted); codes
  `[B, T_c, H_c, W_c, N]` int32. Field names are the release's keyword
  arguments (see `release/config.py`, where each is documented and where
  the options with no effect on the computation are checked and dropped).

  Attributes:
    num_channels: C, video channels.
    bot_channels: channels of the bottleneck (= N * D).
    kernel_shape: kernel of the strided (and temporal) layers.
    stride: stride of each strided encoder layer.
    num_conv_layers: strided encoder layers (and decoder upsamplings).
    res_bot_mult: hidden width of the residual blocks, times bot_channels.
    extra_encode_conv_layers: residual blocks after the strided layers.
    extra_encode_conv_kernel: their first convolution's kernel.
    extra_decode_conv_layers: residual blocks before the upsampling.
    extra_decode_conv_kernel: their first convolution's kernel.
    use_multicodebook: N = bot_channels / vq_embedding_dims, else N = 1.
    last_linearity: a `jax.nn` function applied to the output, '' = none.
    vq_embedding_dims: D (with use_multicodebook).
    vq_num_embeddings: K.
    vq_commitment_cost: beta.
    vq_decay: codebook EMA decay.
    padding: 'VALID' (reflect-padded) or 'SAME', of the encoder and the
      residual convolutions.
    use_tanh: tanh on the encoder output.
    use_time_compression_2x: halve time after the strided layers.
  """
  num_channels: int
  bot_channels: int
  kernel_shape: tuple[int, int, int]
  stride: tuple[int, int, int]
  num_conv_layers: int
  res_bot_mult: float
  extra_encode_conv_layers: int
  extra_encode_conv_kernel: tuple[int, int, int]
  extra_decode_conv_layers: int
  extra_decode_conv_kernel: tuple[int, int, int]
  use_multicodebook: bool
  last_linearity: str
  vq_embedding_dims: int
  vq_num_embeddings: int
  vq_commitment_cost: float
  vq_decay: float
  padding: str
  use_tanh: bool
  use_time_compression_2x: bool

  @property
  def num_codebooks(self) -> int:
    if not self.use_multicodebook:
      return 1
    return self.bot_channels // self.vq_embedding_dims

  @property
  def codebook_size(self) -> int:
    return self.vq_num_embeddings

  @property
  def layer_channels(self) -> list[int]:
    """Output channels of the strided encoder layers, widest last."""
    return [self.bot_channels // 2**(self.num_conv_layers - i - 1)
            for i in range(self.num_conv_layers)]

  def setup(self):
    if self.padding not in ('VALID', 'SAME'):
      raise ValueError(f"padding must be 'VALID' or 'SAME', got "
                       f'{self.padding!r}.')
    if self.num_conv_layers < 1:
      raise ValueError('num_conv_layers must be >= 1, got '
                       f'{self.num_conv_layers}.')
    if self.use_multicodebook and self.bot_channels % self.vq_embedding_dims:
      raise ValueError(f'bot_channels={self.bot_channels} is not a multiple '
                       f'of vq_embedding_dims={self.vq_embedding_dims}.')
    if self.last_linearity and not callable(
        getattr(jax.nn, self.last_linearity, None)):
      raise ValueError(f'last_linearity={self.last_linearity!r} is not a '
                       'jax.nn function.')
    hidden = int(self.bot_channels * self.res_bot_mult)
    kernel, stride = tuple(self.kernel_shape), tuple(self.stride)
    channels = self.layer_channels
    # Names are the release's module names, so the importer's mapping is
    # one Haiku path -> one Flax path.
    self.encoder_convs = [
        ReleaseConv(c, kernel, stride, self.padding,
                    relu=i < self.num_conv_layers - 1, name=f'conv_{i}')
        for i, c in enumerate(channels)]
    if self.use_time_compression_2x:
      self.conv_temporal = ReleaseConv(channels[-1], kernel, (2, 1, 1),
                                       self.padding, relu=False,
                                       name='conv_temporal')
    self.encoder_res = [
        (ReleaseConv(hidden, tuple(self.extra_encode_conv_kernel), (1, 1, 1),
                     self.padding, relu=True, name=f'encoder_res_0_{i}'),
         ReleaseConv(self.bot_channels, (1, 1, 1), (1, 1, 1), self.padding,
                     relu=False, name=f'encoder_res_1_{i}'))
        for i in range(self.extra_encode_conv_layers)]
    self.decoder_res = [
        (ReleaseConv(hidden, tuple(self.extra_decode_conv_kernel), (1, 1, 1),
                     self.padding, relu=True, name=f'decoder_res_0_{i}'),
         ReleaseConv(self.bot_channels, (1, 1, 1), (1, 1, 1), self.padding,
                     relu=False, name=f'decoder_res_1_{i}'))
        for i in range(self.extra_decode_conv_layers)]
    if self.use_time_compression_2x:
      self.decoder_temporal = nn.ConvTranspose(
          channels[-1], kernel, strides=(2, 1, 1), padding='SAME',
          name='decoder_temporal')
    # Upsampling back through the encoder's widths, to the video channels.
    self.decoder_upsampling = [
        UpsamplingConvTranspose(c, kernel, stride, name=f'decoder_{i}')
        for i, c in enumerate(reversed([self.num_channels] + channels[:-1]))]
    self.quantizer = ReleaseQuantizer(
        num_codebooks=self.num_codebooks,
        codebook_size=self.vq_num_embeddings,
        embedding_dim=self.bot_channels // self.num_codebooks,
        commitment_cost=self.vq_commitment_cost, decay=self.vq_decay)

  def encode_embedding(self, video: jax.Array) -> jax.Array:
    """`[B, T, H, W, C]` -> encoder output `[B, T_c, H_c, W_c, N*D]`."""
    if video.ndim != 5 or video.shape[-1] != self.num_channels:
      raise ValueError(f'The release codec takes [B, T, H, W, '
                       f'{self.num_channels}] videos, got {video.shape}.')
    if video.dtype == jnp.uint8:
      video = video.astype(jnp.float32) / 255.0
    x = video
    for conv in self.encoder_convs:
      x = conv(x)
    if self.use_time_compression_2x:
      x = self.conv_temporal(x)
    for expand, project in self.encoder_res:
      x = x + project(expand(nn.relu(x)))
    return jnp.tanh(x) if self.use_tanh else x

  def decode_latents(self, latents: jax.Array) -> jax.Array:
    """`[B, T_c, H_c, W_c, N*D]` contiguous latents -> `[B, T, H, W, C]`.

    Unclipped, as the release returns it.
    """
    x = latents
    for expand, project in self.decoder_res:
      x = x + project(expand(nn.relu(x)))
    if self.use_time_compression_2x:
      x = self.decoder_temporal(x)
    last = len(self.decoder_upsampling) - 1
    for i, upsample in enumerate(self.decoder_upsampling):
      x = upsample(x)
      if i < last:
        x = nn.relu(x)
    if self.last_linearity:
      x = getattr(jax.nn, self.last_linearity)(x)
    return x

  def encode(self, video: jax.Array) -> jax.Array:
    """Video -> `[B, T_c, H_c, W_c, N]` int32 codes."""
    return self.quantizer(self.encode_embedding(video), train=False)[1]

  def codes_to_latents(self, codes: jax.Array) -> jax.Array:
    """`[..., N]` int codes -> `[..., N*D]` float32 latents."""
    return self.quantizer.lookup(codes)

  def decode(self, codes: jax.Array) -> jax.Array:
    """`[B, T_c, H_c, W_c, N]` codes -> `[B, T, H, W, C]` float32."""
    return self.decode_latents(self.quantizer.lookup(codes))

  def __call__(self, video: jax.Array,
               train: bool = False) -> tuple[jax.Array, dict[str, Any]]:
    """Encodes, quantises and decodes, as `vqvae.VQVAE.__call__`.

    `train` updates the codebook EMA (`mutable=['vq_ema']`).
    Returns `(reconstruction, aux)`; aux as `vqvae.VQVAE`'s, with 'codes'.
    """
    quantized, codes, aux = self.quantizer(self.encode_embedding(video),
                                           train=train)
    return self.decode_latents(quantized), dict(aux, codes=codes)


def build_release_codec(model_config: Any) -> ReleaseCodec:
  """The `ReleaseCodec` of an imported codec's `config.model`.

  `model_config.release` holds every `ReleaseCodec` field and no other
  (`release/config.py` writes it); the interface fields beside it must be
  the ones it implies.
  """
  # Imported here: config_utils is core, and this keeps the network file
  # importable on its own for tests that only need the layers.
  from cvision.core import config_utils
  from cvision.projects.codec.release import config as release_config
  release_config.check_interface(model_config)
  fields = dict(model_config.release)
  for key in ('stride', 'kernel_shape', 'extra_encode_conv_kernel',
              'extra_decode_conv_kernel'):
    fields[key] = tuple(fields[key])
  return config_utils.build_module(ReleaseCodec, fields,
                                   'release codec model')
