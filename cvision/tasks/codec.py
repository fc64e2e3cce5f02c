"""The neural-codec task: a VQ-VAE trained to reconstruct video (paper 3.2).

Loss: l1(reconstruction, video) + commitment loss; the codebook learns by EMA
in the mutable 'vq_ema' collection (see `cvision.models.vqvae.quantizer`).

Config: `config.model` holds the model fields of `default_model_config()`;
fields left out take their default, unknown fields raise a ValueError.
"""
from __future__ import annotations

from typing import Any, Mapping

import dm_pix as pix
import jax
import jax.numpy as jnp
import ml_collections

from cvision.codec import compression_rate as cr_lib
from cvision.core import precision
from cvision.core import config_utils
from cvision.core import task as task_lib
from cvision.metrics import video_quality
from cvision.models import vqvae

NAME = 'codec'
VIDEO_KEY = 'video'


def default_model_config() -> ml_collections.ConfigDict:
  """Default VQ-VAE hyper-parameters (names follow the paper's Table 10).

  The defaults are a small model: on 64x64x16 clips they give an 8x8 grid,
  N=2, K=256, CR = 96 (`compression_rate`); the paper's 256x256 presets are
  in `experiments/configs/codec.py`.
  """
  return ml_collections.ConfigDict({
      'num_strided_blocks': 3,  # E_s: spatial /2 per block.
      'num_encoder_res_blocks': 2,  # E_c.
      'num_decoder_res_blocks': 2,  # D_c (paper: more decoder blocks help).
      'num_upsampling_blocks': 3,  # D_s, must equal E_s.
      'embedding_dim': 64,  # V_e, split over the codebooks.
      'num_codebooks': 2,  # N.
      'codebook_size': 256,  # K.
      'space_to_depth': 1,  # Pixel patch folded into channels; 1 = off.
      'temporal_stride': 1,  # Temporal downsampling; 1 = off.
      'commitment_cost': 0.25,  # beta.
      'ema_decay': 0.99,
      'dead_code_threshold': 1.0,  # EMA assignments per step.
      # Encode and decode longer clips in windows of this many frames, the
      # training clip length (0 = whole clips; `vqvae.VQVAE`).
      'window_frames': 0,
  })


def resolve_model_config(model_config: Any) -> ml_collections.ConfigDict:
  """Defaults overridden by `model_config`; unknown fields raise ValueError."""
  return config_utils.with_defaults(default_model_config(), model_config,
                                    'codec model')


def build_model(model_config: Any) -> vqvae.VQVAE:
  """The VQ-VAE for a (possibly partial) model config."""
  return vqvae.VQVAE(**resolve_model_config(model_config).to_dict())


def model_compression_rate(model_config: Any,
                           input_shape: tuple[int, int, int]) -> float:
  """Paper CR of the model on `(T, H, W)` clips."""
  config = resolve_model_config(model_config)
  grid = cr_lib.code_grid_shape(input_shape, config)
  return cr_lib.compression_rate(input_shape, grid, config.num_codebooks,
                                 config.codebook_size)


def get_codebook(variables: Mapping[str, Any]) -> jax.Array:
  """The `[N, K, D]` float32 codebook of a codec's variables dict.

  Codes index it as `vqvae.codes_to_latents(codebook, codes)`; codebook n
  fills latent channels [n*D, (n+1)*D).
  """
  return variables[vqvae.COLLECTION]['quantizer']['codebook']


def _video(batch: Mapping[str, jax.Array]) -> jax.Array:
  """`batch['video']` `[B, T, H, W, 3]` uint8 -> float32 in [0, 1]."""
  video = jnp.asarray(batch[VIDEO_KEY])
  if video.dtype == jnp.uint8:
    return video.astype(jnp.float32) / 255.0
  return video.astype(jnp.float32)


def _frames(video: jax.Array) -> jax.Array:
  """`[B, T, H, W, C]` -> `[B*T, H, W, C]` for dm-pix."""
  return video.reshape((-1,) + video.shape[-3:])


def _codebook_metrics(aux: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  metrics = {}
  for i in range(aux['perplexity'].shape[0]):
    metrics[f'perplexity_{i}'] = aux['perplexity'][i]
    metrics[f'usage_{i}'] = aux['usage'][i]
  return metrics


def build_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  """The codec task for `config.model` (see `default_model_config`).

  Metrics of `loss`: loss, l1, commitment, psnr, perplexity_<i>, usage_<i>.
  Metrics of `evaluate`: psnr, ssim, mae (dm-pix, frames folded into the
  batch), perplexity_<i>, usage_<i>.
  Extras: 'encode(variables, video) -> codes', 'decode(variables, codes) ->
  video', 'reconstruct(variables, video) -> video' (jittable; videos uint8 or
  float in [0, 1], outputs float32 in [0, 1]), 'codebook(variables) ->
  [N, K, D]', 'compression_rate((T, H, W)) -> float' and 'model() -> VQVAE'.
  """
  model_config = resolve_model_config(config.get('model', None))
  model = build_model(model_config)

  def init(rng: jax.Array, batch: Mapping[str, jax.Array]) -> Any:
    params_rng, vq_rng = jax.random.split(rng)
    return model.init({'params': params_rng, 'vq': vq_rng}, _video(batch),
                      train=False)

  def loss(params, collections, batch, rng):
    video = _video(batch)
    variables = {'params': params, **collections}
    # The input in the compute dtype of the (possibly bf16-cast) parameters;
    # the loss and metrics stay in float32.
    (recon, aux), new_collections = model.apply(
        variables, video.astype(precision.floating_dtype(params)), train=True,
        rngs={'vq': rng}, mutable=list(collections.keys()))
    l1 = jnp.mean(jnp.abs(recon - video))
    total = l1 + aux['commitment_loss']
    recon = jax.lax.stop_gradient(recon)
    metrics = {
        'loss': total,
        'l1': l1,
        'commitment': aux['commitment_loss'],
        'psnr': jnp.mean(pix.psnr(_frames(recon), _frames(video))),
        **_codebook_metrics(aux),
    }
    # Same structure as `collections` (plain dict), as the core expects.
    new_collections = {k: new_collections[k] for k in collections}
    return total, (metrics, new_collections)

  def evaluate(params, collections, batch):
    video = _video(batch)
    recon, aux = model.apply(
        {'params': params, **collections},
        video.astype(precision.floating_dtype(params)), train=False)
    del aux  # Codebook usage over a split: `--mode=eval` (codec.modes).
    # Per video `[B]`, as the core's evaluation averages them exactly.
    return video_quality.all_metrics(recon, video)

  def encode(variables, video):
    return model.apply(variables, video, method=vqvae.VQVAE.encode)

  def decode(variables, codes):
    return model.apply(variables, codes, method=vqvae.VQVAE.decode)

  def reconstruct(variables, video):
    return model.apply(variables, video, train=False)[0]

  def rate(input_shape):
    return model_compression_rate(model_config, input_shape)

  return task_lib.Task(
      name=NAME,
      init=init,
      loss=loss,
      evaluate=evaluate,
      input_keys=(VIDEO_KEY,),
      extras={
          'encode': encode,
          'decode': decode,
          'reconstruct': reconstruct,
          'compression_rate': rate,
          'codebook': get_codebook,
          'model': lambda: model,
      })


def _modes():
  from cvision.codec import modes  # pylint: disable=g-import-not-at-top
  return {'eval': modes.evaluate, 'encode': modes.encode,
          'decode': modes.decode, 'probe': modes.probe_codes}


# `--mode`s beyond train (see `cvision.tasks.modes`).
MODES = _modes()
