"""The neural-codec task: a VQ-VAE trained to reconstruct video (paper 3.2).

Loss: l1(reconstruction, video) + commitment loss; the codebook learns by EMA
in the mutable 'vq_ema' collection (see `cvision.projects.codec.vqvae.quantizer`).

Config: `config.model` holds the model fields of `default_model_config()`;
fields left out take their default, unknown fields raise a ValueError.
"""
from __future__ import annotations

from typing import Any, Mapping

import dm_pix as pix
import jax
import jax.numpy as jnp
import ml_collections

from cvision.projects.codec import compression_rate as cr_lib
from cvision.core import precision
from cvision.core import config_utils
from cvision.core import task as task_lib
from cvision.metrics import video_quality
from cvision.projects.codec import vqvae
from cvision.projects.codec.release import config as release_config
from cvision.projects.codec.release import network as release_network

NAME = 'codec'
VIDEO_KEY = 'video'


def build_model(model_config: ml_collections.ConfigDict) -> vqvae.VQVAE:
  """The VQ-VAE of a codec config's `model` fields (every field, no other).

  An imported release codec (`model.architecture == 'release'`) builds the
  release's network instead (`codec/release/network.py`), same interface.
  """
  if release_config.is_release(model_config):
    return release_network.build_release_codec(model_config)
  return config_utils.build_module(vqvae.VQVAE, model_config, 'codec model')


def model_compression_rate(model_config: Any,
                           input_shape: tuple[int, int, int]) -> float:
  """Paper CR of the model on `(T, H, W)` clips."""
  grid = cr_lib.code_grid_shape(input_shape, model_config)
  return cr_lib.compression_rate(input_shape, grid,
                                 model_config.num_codebooks,
                                 model_config.codebook_size)


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
  """The codec task for `config.model` (`experiments/configs/codec.py`).

  Metrics of `loss`: loss, l1, commitment, psnr, perplexity_<i>, usage_<i>.
  Metrics of `evaluate`, per video: psnr, ssim, mae (dm-pix, frames folded
  into the batch) and `code_counts` `[N, K]`, how often each codebook entry
  was used (summed over a split, the codebook usage of `--mode=eval`).
  The codec's encode and decode on their own: `frozen.load_frozen_codec`.
  """
  model = build_model(config.model)

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
    # Per video `[B]`, as the core's evaluation averages them exactly.
    metrics = video_quality.all_metrics(recon, video)
    metrics['code_counts'] = code_counts(aux['codes'],
                                         model.codebook_size)
    return metrics

  return task_lib.Task(
      name=NAME,
      init=init,
      loss=loss,
      evaluate=evaluate,
      input_keys=(VIDEO_KEY,),
      time_keys=(VIDEO_KEY,))


def code_counts(codes: jax.Array, codebook_size: int) -> jax.Array:
  """`[B, ..., N]` codes -> `[B, N, K]` float32 counts of each entry."""
  flat = codes.reshape(codes.shape[0], -1, codes.shape[-1])
  one_hot = jax.nn.one_hot(flat, codebook_size, dtype=jnp.float32)
  return jnp.sum(one_hot, axis=1)
