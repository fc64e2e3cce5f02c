"""The VQ-VAE neural codec: encoder, vector quantiser and decoder."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from cvision.models.vqvae import decoder as decoder_lib
from cvision.models.vqvae import encoder as encoder_lib
from cvision.models.vqvae import quantizer as quantizer_lib


class VQVAE(nn.Module):
  """Video VQ-VAE of paper Sec. 3.2 / Table 10.

  Videos are `[B, T, H, W, 3]` float in [0, 1]; codes are
  `[B, T_c, H_c, W_c, N]` int32 in [0, K) with T_c = T / temporal_stride and
  H_c = H / (space_to_depth * 2**num_strided_blocks).

  Use `model.apply(variables, video, method=VQVAE.encode)` and
  `method=VQVAE.decode` for the codec on its own.

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
  """
  num_strided_blocks: int = 3
  num_encoder_res_blocks: int = 2
  num_decoder_res_blocks: int = 2
  num_upsampling_blocks: int = 3
  embedding_dim: int = 64
  num_codebooks: int = 2
  codebook_size: int = 256
  space_to_depth: int = 1
  temporal_stride: int = 1
  commitment_cost: float = 0.25
  ema_decay: float = 0.99
  dead_code_threshold: float = 1.0

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
    _, codes, _ = self.quantizer(self.encoder(video), train=False)
    return codes

  def codes_to_latents(self, codes: jax.Array) -> jax.Array:
    """`[..., N]` int codes -> `[..., V_e]` float32 quantised latents."""
    return self.quantizer.lookup(codes)

  def decode_latents(self, latents: jax.Array) -> jax.Array:
    """`[B, T_c, H_c, W_c, V_e]` latents -> `[B, T, H, W, 3]` f32 in [0, 1]."""
    return self.decoder(latents)

  def decode(self, codes: jax.Array) -> jax.Array:
    """`[B, T_c, H_c, W_c, N]` int codes -> `[B, T, H, W, 3]` f32 in [0, 1]."""
    return self.decoder(self.quantizer.lookup(codes))

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
    quantized, codes, aux = self.quantizer(self.encoder(video), train=train)
    aux = dict(aux, codes=codes)
    return self.decoder(quantized), aux
