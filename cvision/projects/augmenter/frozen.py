"""A trained augmentation network, read-only: for models trained on codes.

A downstream task (S3D on codes) augments its inputs with the network of an
augmenter run, never training it: its parameters are read once from the run's
checkpoint (orbax partial restore, to numpy) and closed over as constants,
like the codec of `cvision.projects.codec.frozen`.

  augmenter = load_frozen_augmenter('runs/augmenter_crop')
  augmenter.check_codec(codec)                      # the same latent space
  latents = embed_codes(codebook, codes)            # [B, T, H, W, N*D]
  p = augmenter.sample_params(rng, batch_size)      # train time, [B, P]
  p = np.tile(linspace_boxes(4, 0.875)[i], (B, 1))  # test-time crop i
  x = apply_learned_augmentation(augmenter, latents, p)  # S3D's input
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Mapping

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

from cvision.projects.augmenter import params as params_lib
from cvision.projects.augmenter import pixel_transforms as pt
from cvision.projects.augmenter import task as augmenter_task
from cvision.core import checkpointing
from cvision.models import code_embedding

TASK_NAME = augmenter_task.NAME


@dataclasses.dataclass(frozen=True)
class FrozenAugmenter:
  """A trained `a(z, p)`, on the host, never trained here.

  Attributes:
    workdir: the augmenter run directory.
    step: the checkpoint step the parameters come from.
    family: the augmentation family it was trained on ('all': every one).
    model_config: its network fields (`config.model` of its run).
    augment_config: the parameter ranges it was trained on.
    codec_workdir: the codec it was trained through (its latents are the
      only ones it knows).
    params: numpy arrays, the network's parameters.
  """
  workdir: str
  step: int
  family: str
  model_config: ml_collections.ConfigDict
  augment_config: ml_collections.ConfigDict
  codec_workdir: str
  params: Mapping[str, Any]

  @property
  def latent_channels(self) -> int:
    """C of the latents `[B, T, H, W, C]` it transforms."""
    return int(self.params['mlp_out']['kernel'].shape[-1])

  @property
  def param_dim(self) -> int:
    """P of its parameter rows `[B, P]`."""
    return pt.param_dim(self.family)

  def sample_params(self, rng: jax.Array, batch: int) -> jax.Array:
    """Random `[batch, P]` parameters from the ranges it was trained on."""
    return params_lib.sample_params(rng, self.family, batch,
                                    self.augment_config)

  def apply(self, latents: jax.Array, params: jax.Array,
            family: str | None = None) -> jax.Array:
    """`[B, T, H, W, C]` latents, `[B, P]` parameters -> latents. Jittable.

    Args:
      latents: the codes' embeddings (`code_embedding.embed_codes`).
      params: rows of `family`'s parameters.
      family: the family of `params`; None = the network's own. A network
        trained on 'all' takes any single family's parameters.
    """
    family = family or self.family
    if family != self.family:
      if self.family != 'all':
        raise ValueError(f'The augmenter in {self.workdir} does '
                         f'{self.family!r}, not {family!r}.')
      params = params_lib.embed_in_all(family, params)
    params = jnp.asarray(params, jnp.float32)
    if params.ndim != 2 or params.shape[1] != self.param_dim:
      raise ValueError(f'{self.family} parameters must be [B, '
                       f'{self.param_dim}] ({pt.PARAM_NAMES[self.family]}), '
                       f'got {params.shape}.')
    if latents.shape[-1] != self.latent_channels:
      raise ValueError(f'latents have {latents.shape[-1]} channels; the '
                       f'augmenter in {self.workdir} was trained on '
                       f'{self.latent_channels} (codec {self.codec_workdir}).')
    model, variables = self._model
    return model.apply(variables, latents, params).astype(latents.dtype)

  def check_codebook_shape(self, codebook_shape,
                           owner: str = 'The code embedding') -> None:
    """Raises unless `[N, K, D]` codebooks give this augmenter's latents."""
    n, _, d = codebook_shape
    if n * d != self.latent_channels:
      raise ValueError(f'{owner} has {n}x{d} = {n * d}-channel latents; the '
                       f'augmenter in {self.workdir} transforms '
                       f'{self.latent_channels} (trained through '
                       f'{self.codec_workdir}).')

  def check_codec(self, codec) -> None:
    """Raises if `codec` (a `FrozenCodec`) has other latents; warns if it is
    not the codec the augmenter was trained through."""
    self.check_codebook_shape(codec.codebook.shape,
                              f'The codec in {codec.workdir}')
    if os.path.abspath(codec.workdir) != os.path.abspath(self.codec_workdir):
      logging.warning('The augmenter in %s was trained through the codec in '
                      '%s, not %s: its latents may mean something else.',
                      self.workdir, self.codec_workdir, codec.workdir)

  @functools.cached_property
  def _model(self):
    return (augmenter_task.build_model(self.model_config),
            {'params': jax.tree.map(jnp.asarray, dict(self.params))})


def apply_learned_augmentation(augmenter: FrozenAugmenter, codes_or_latents,
                               params, *, codebook=None,
                               family: str | None = None) -> jax.Array:
  """Augments codes in code space: the input of a model trained on codes.

  Args:
    augmenter: the trained network (`load_frozen_augmenter`).
    codes_or_latents: `[B, T, H, W, N]` integer codes (then `codebook` is
      needed) or `[B, T, H, W, N*D]` float latents.
    params: `[B, P]` augmentation parameters of `family`.
    codebook: `[N, K, D]`, the codec's codebooks, for integer codes.
    family: the family of `params` (None: the network's own).

  Returns:
    `[B, T, H, W, N*D]` float latents: the augmented clip's embeddings, what
    `code_embedding.embed_codes` gives for codes (not re-quantised).
  """
  x = jnp.asarray(codes_or_latents)
  if jnp.issubdtype(x.dtype, jnp.integer):
    if codebook is None:
      raise ValueError('Integer codes need the codec\'s codebook: pass '
                       'codebook=[N, K, D].')
    x = code_embedding.embed_codes(codebook, x)
  return augmenter.apply(x, params, family)


def load_frozen_augmenter(workdir: str, *,
                          step: int | None = None) -> FrozenAugmenter:
  """Reads an augmenter run's parameters read-only.

  Args:
    workdir: the augmenter run directory (its `--workdir`): its config.json
      and checkpoints are read, never written.
    step: the checkpoint to read; None = the latest.

  Raises:
    FileNotFoundError: no such run, config or checkpoint.
    ValueError: the checkpoint is not an augmenter's.
  """
  workdir = os.path.abspath(workdir)
  config_path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f'{config_path} not found: the augmenter workdir '
                            'must be the --workdir of a trained augmenter run.')
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  if config.get('task') != TASK_NAME:
    raise ValueError(f'{workdir} is a {config.get("task")!r} run, not an '
                     'augmenter.')
  model_config = config.model
  augmenter_task.build_model(model_config)  # Checks its fields.
  augment_config = params_lib.check_config(config.augment)
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise FileNotFoundError(f'No checkpoints in {workdir}: train the '
                            'augmenter first (--mode=train).')
  saved = checkpointing.read_saved_variables(
      workdir, step=step, select=lambda tree: {'params': tree['params']},
      expect_task=TASK_NAME)
  ckpt_dir, step = saved.directory, saved.step
  codec_workdir = config.get('codec', {}).get('workdir', '')
  augmenter = FrozenAugmenter(
      workdir=workdir, step=step, family=augment_config.family,
      model_config=model_config, augment_config=augment_config,
      codec_workdir=os.path.abspath(codec_workdir) if codec_workdir else '',
      params=saved.variables['params'])
  # Device copies made now, not under a caller's trace (see
  # cvision.projects.augmenter.task.load_codec).
  _ = augmenter._model  # pylint: disable=protected-access
  logging.info('Frozen augmenter (%s) from %s step %d, latents of %d '
               'channels.', augmenter.family, ckpt_dir, step,
               augmenter.latent_channels)
  return augmenter
