"""The VQ-VAE neural codec: encoder, vector quantiser and decoder."""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from cvision.projects.codec.vqvae import decoder as decoder_lib
from cvision.projects.codec.vqvae import encoder as encoder_lib
from cvision.projects.codec.vqvae import quantizer as quantizer_lib


class VQVAE(nn.Module):
  """Video VQ-VAE of paper Sec. 3.2 / Table 10.

  Videos are `[B, T, H, W, 3]` float in [0, 1]; codes are
  `[B, T_c, H_c, W_c, N]` int32 in [0, K) with T_c = T / temporal_stride and
  H_c = H / (space_to_depth * 2**num_strided_blocks).

  Use `model.apply(variables, video, method=VQVAE.encode)` and
  `method=VQVAE.decode` for the codec on its own.

  With `window_frames` set, clips longer than that go through the encoder
  and the decoder in consecutive windows of that many frames (the last one
  shorter if T is not a multiple): a convolutional codec trained on short
  clips has only seen frames near the clip's temporal zero padding, and on
  longer clips its interior frames come out worse (`codec.py:cpu30`, trained
  on 4-frame clips: SSIM 0.86 on whole 16-frame videos, 0.91 in 4-frame
  windows). The codec then reads any length as it was trained.

  Every field comes from the codec config (`experiments/configs/codec.py`,
  `config.model`), where its default is written.

  Attributes:
    num_strided_blocks: E_s, spatial /2 blocks of the encoder (>= 1).
    num_encoder_res_blocks: E_c.
    num_decoder_res_blocks: D_c.
    num_upsampling_blocks: D_s, spatial x2 blocks of the decoder (= E_s).
    embedding_dim: V_e, latent channels, divisible by num_codebooks.
    num_codebooks: N.
    codebook_size: K.
    space_to_depth: pixel patch folded into channels (1 = off).
    temporal_stride: temporal downsampling factor (1 = off).
    commitment_cost: beta of the commitment loss.
    ema_decay: decay of the codebook EMA.
    dead_code_threshold: EMA usage below which an entry is restarted.
    window_frames: frames per encoding window (0 = whole clips); a multiple
      of `temporal_stride`, normally the training clip length.
  """
  num_strided_blocks: int
  num_encoder_res_blocks: int
  num_decoder_res_blocks: int
  num_upsampling_blocks: int
  embedding_dim: int
  num_codebooks: int
  codebook_size: int
  space_to_depth: int
  temporal_stride: int
  commitment_cost: float
  ema_decay: float
  dead_code_threshold: float
  window_frames: int

  def setup(self):
    if self.num_strided_blocks < 1:
      raise ValueError(
          f'num_strided_blocks must be >= 1, got {self.num_strided_blocks}.')
    if self.num_upsampling_blocks != self.num_strided_blocks:
      raise ValueError(
          f'num_upsampling_blocks={self.num_upsampling_blocks} must equal '
          f'num_strided_blocks={self.num_strided_blocks} to restore the input '
          'size.')
    for name in ('space_to_depth', 'temporal_stride', 'num_codebooks',
                 'codebook_size', 'embedding_dim'):
      if getattr(self, name) < 1:
        raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}.')
    if self.window_frames < 0 or self.window_frames % self.temporal_stride:
      raise ValueError(
          f'window_frames={self.window_frames} must be 0 (whole clips) or a '
          f'positive multiple of temporal_stride={self.temporal_stride}.')
    self.encoder = encoder_lib.Encoder(
        num_strided_blocks=self.num_strided_blocks,
        num_res_blocks=self.num_encoder_res_blocks,
        embedding_dim=self.embedding_dim,
        space_to_depth=self.space_to_depth,
        temporal_stride=self.temporal_stride)
    self.quantizer = quantizer_lib.VectorQuantizer(
        num_codebooks=self.num_codebooks,
        codebook_size=self.codebook_size,
        embedding_dim=self.embedding_dim,
        commitment_cost=self.commitment_cost,
        ema_decay=self.ema_decay,
        dead_code_threshold=self.dead_code_threshold)
    self.decoder = decoder_lib.Decoder(
        num_res_blocks=self.num_decoder_res_blocks,
        num_upsampling_blocks=self.num_upsampling_blocks,
        embedding_dim=self.embedding_dim,
        space_to_depth=self.space_to_depth,
        temporal_stride=self.temporal_stride)

  def encode(self, video: jax.Array) -> jax.Array:
    """Video -> codes.

    Args:
      video: `[B, T, H, W, 3]` float in [0, 1] (or uint8).

    Returns:
      `[B, T_c, H_c, W_c, N]` int32 codes in [0, K).
    """
    latents = _in_windows(self.encoder, video, self.window_frames)
    return self.quantizer(latents, train=False)[1]

  def codes_to_latents(self, codes: jax.Array) -> jax.Array:
    """`[..., N]` int codes -> `[..., V_e]` float32 quantised latents."""
    return self.quantizer.lookup(codes)

  def decode_latents(self, latents: jax.Array) -> jax.Array:
    """`[B, T_c, H_c, W_c, V_e]` latents -> `[B, T, H, W, 3]` f32 in [0, 1]."""
    return _in_windows(self.decoder, latents,
                       self.window_frames // self.temporal_stride)

  def decode(self, codes: jax.Array) -> jax.Array:
    """`[B, T_c, H_c, W_c, N]` int codes -> `[B, T, H, W, 3]` f32 in [0, 1]."""
    return self.decode_latents(self.quantizer.lookup(codes))

  def __call__(self, video: jax.Array,
               train: bool = False) -> tuple[jax.Array, dict[str, Any]]:
    """Encodes, quantises and decodes.

    Args:
      video: `[B, T, H, W, 3]` float in [0, 1] (or uint8).
      train: update the codebook EMA (needs `rngs={'vq': key}` and
        `mutable=['vq_ema']`).

    Returns:
      reconstruction: `[B, T, H, W, 3]` float32 in [0, 1].
      aux: the quantiser's 'commitment_loss', 'perplexity' `[N]`, 'usage'
        `[N]`, and 'codes' `[B, T_c, H_c, W_c, N]` int32.
    """
    latents = _in_windows(self.encoder, video, self.window_frames)
    quantized, codes, aux = self.quantizer(latents, train=train)
    return self.decode_latents(quantized), dict(aux, codes=codes)


def _in_windows(fn: Callable[[jax.Array], jax.Array], x: jax.Array,
                frames: int) -> jax.Array:
  """`fn` over consecutive time windows of `frames` of `[B, T, ...]` `x`.

  Full windows go through `fn` as one batch of B * (T // frames) clips; a
  shorter last window, if any, on its own; outputs join along time.
  """
  batch, length = x.shape[:2]
  if frames <= 0 or length <= frames:
    return fn(x)
  full = length // frames * frames
  windows = x[:, :full].reshape((batch * (full // frames), frames)
                                + x.shape[2:])
  out = fn(windows)
  out = out.reshape((batch, -1) + out.shape[2:])
  if full < length:
    out = jnp.concatenate([out, fn(x[:, full:])], axis=1)
  return out
