"""Task: reconstruct video clips with a small autoencoder (l1 loss)."""
from __future__ import annotations

import dm_pix as pix
import jax
import jax.numpy as jnp
import ml_collections

from cvision.core.precision import to_unit_float
from cvision.core.task import Task
from cvision.projects.autoencoder.network import VideoAutoencoder


def build_task(config: ml_collections.ConfigDict) -> Task:
  model = VideoAutoencoder(channels=tuple(config.model.channels))

  def init(rng, batch):
    return model.init(rng, batch['video'].astype(jnp.float32) / 255.0)

  def reconstruct(params, batch):
    video = to_unit_float(batch['video'], params)
    return video, model.apply({'params': params}, video)

  def loss(params, collections, batch, rng):
    del rng
    video, recon = reconstruct(params, batch)
    l1 = jnp.mean(jnp.abs(recon.astype(jnp.float32) - video))
    return l1, ({'l1': l1}, collections)

  def evaluate(params, collections, batch):
    del collections
    video, recon = reconstruct(params, batch)
    video, recon = video.astype(jnp.float32), recon.astype(jnp.float32)
    frames = lambda x: x.reshape((-1,) + x.shape[2:])
    psnr = pix.psnr(frames(video), frames(recon)).reshape(video.shape[:2])
    mae = jnp.mean(jnp.abs(video - recon), axis=(1, 2, 3, 4))
    return {'psnr': jnp.mean(psnr, axis=1), 'mae': mae}

  return Task(name='autoencoder', init=init, loss=loss, evaluate=evaluate,
              input_keys=('video',), time_keys=('video',))
