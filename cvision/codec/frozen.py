"""A trained codec, read-only: what every model downstream of the codes uses.

S3D embeds codes in its codebook, the augmentation network trains through its
decoder, the long-video models read its codes. None of them trains the codec:
its variables are read once from the codec run's checkpoint (orbax partial
restore, to numpy) and closed over as constants, so they are neither
parameters nor part of a train state, and no gradient reaches them.
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
import numpy as np

from cvision.core import checkpointing
from cvision.models import vqvae
from cvision.tasks import codec as codec_task


@dataclasses.dataclass(frozen=True)
class FrozenCodec:
  """A trained codec's variables, on the host, never trained here.

  Attributes:
    workdir: the codec run directory.
    step: the checkpoint step the variables come from.
    model_config: the codec's model fields (`cvision.tasks.codec`).
    variables: numpy arrays, `{'vq_ema': ...}` plus `'params'` when loaded
      `with_params` (needed by `encode` and `decode*`).
  """
  workdir: str
  step: int
  model_config: ml_collections.ConfigDict
  variables: Mapping[str, Any]

  @property
  def codebook(self) -> np.ndarray:
    """`[N, K, D]` float32."""
    return self.variables[vqvae.COLLECTION]['quantizer']['codebook']

  @property
  def spatial_factor(self) -> int:
    """Pixels per code location along H and W."""
    m = self.model_config
    return int(m.space_to_depth * 2**m.num_strided_blocks)

  def _require_params(self) -> None:
    if 'params' not in self.variables:
      raise ValueError(f'The codec from {self.workdir} was loaded without its '
                       'encoder and decoder: load_frozen_codec(..., '
                       'with_params=True).')

  def encode(self, video: jax.Array) -> jax.Array:
    """`[B, T, H, W, 3]` in [0, 1] (or uint8) -> `[B, T_c, H_c, W_c, N]` int32.

    Jittable.
    """
    self._require_params()
    return self._apply(video, method=vqvae.VQVAE.encode)

  def codes_to_latents(self, codes: jax.Array) -> jax.Array:
    """`[..., N]` int codes -> `[..., N*D]` float32 quantised latents."""
    return self._apply(codes.astype(jnp.int32),
                       method=vqvae.VQVAE.codes_to_latents)

  def decode_latents(self, latents: jax.Array) -> jax.Array:
    """`[B, T_c, H_c, W_c, N*D]` latents -> `[B, T, H, W, 3]` f32, unclipped.

    Jittable and differentiable in `latents` (models trained through the
    frozen decoder, like the augmentation network, need that).
    """
    self._require_params()
    return self._apply(latents, method=vqvae.VQVAE.decode_latents)

  def decode(self, codes: jax.Array) -> jax.Array:
    """`[B, T_c, H_c, W_c, N]` ints -> `[B, T, H, W, 3]` float32 in [0, 1].

    Jittable. Rounded to the 256 levels of the uint8 video `Codec.decode`
    would store, so the classifier sees what a decoded dataset would hold.
    """
    self._require_params()
    video = self._apply(codes.astype(jnp.int32), method=vqvae.VQVAE.decode)
    return jnp.round(jnp.clip(video, 0.0, 1.0) * 255.0) / 255.0

  def _apply(self, *args, **kwargs) -> jax.Array:
    model, variables = self._model
    return model.apply(variables, *args, **kwargs)

  @functools.cached_property
  def _model(self) -> tuple[vqvae.VQVAE, dict[str, Any]]:
    # Copied to the device once; under jit they are closed-over constants,
    # not inputs that a gradient could reach. The first use may happen inside
    # a trace (`jax.jit(codec.encode)`): evaluate eagerly even then, or the
    # cache would keep that trace's tracers.
    with jax.ensure_compile_time_eval():
      variables = jax.tree.map(jnp.asarray, dict(self.variables))
    return codec_task.build_model(self.model_config), variables


def codec_model_config(workdir: str,
                       preset: str = '') -> ml_collections.ConfigDict:
  """The codec's model fields: from `<workdir>/config.json`, or a preset.

  The JSON is what the codec was trained with (flag overrides included), so
  it wins; a `preset` given as well must agree with it.
  """
  path = os.path.join(workdir, 'config.json')
  saved = None
  if os.path.isfile(path):
    with open(path) as f:
      saved_config = json.load(f)
    saved_model = dict(saved_config.get('model', {}))
    if 'window_frames' not in saved_model:
      # Runs from before the field: window by the training clip length, as
      # the presets now do (`vqvae.VQVAE`, window_frames).
      saved_model['window_frames'] = _training_clip_frames(saved_config)
    saved = codec_task.resolve_model_config(
        ml_collections.ConfigDict(saved_model))
  if not preset:
    if saved is None:
      raise FileNotFoundError(
          f'{path} not found: pass the codec\'s preset with '
          '--config.codec.preset=NAME (experiments/configs/codec.py).')
    return saved
  from experiments.configs import codec as codec_configs  # pylint: disable=g-import-not-at-top
  chosen = codec_task.resolve_model_config(
      codec_configs.get_config(preset).model)
  as_json = lambda c: json.loads(json.dumps(c.to_dict()))
  if saved is not None and as_json(saved) != as_json(chosen):
    differing = sorted(k for k in chosen if saved[k] != chosen[k])
    raise ValueError(
        f'--config.codec.preset={preset!r} differs from the codec run in '
        f'{workdir} on {differing}; drop the preset to use {path}.')
  return chosen


def _training_clip_frames(saved_config: dict[str, Any]) -> int:
  """The clip length a codec run trained on, if a valid window, else 0."""
  frames = int(saved_config.get('data', {}).get('train_clip_frames', 0) or 0)
  stride = int(saved_config.get('model', {}).get('temporal_stride', 1))
  return frames if frames > 0 and frames % stride == 0 else 0


def load_frozen_codec(workdir: str, *, preset: str = '',
                      step: int | None = None,
                      with_params: bool = False) -> FrozenCodec:
  """Reads a codec run's checkpoint read-only.

  Only what is needed leaves the disk (orbax partial restore, to numpy): the
  'vq_ema' collection, plus the parameters when `with_params`. Unlike
  `cvision.codec.modes.Codec`, nothing is initialised or compiled and the
  codec's training data need not exist.

  Args:
    workdir: the codec run directory (its `--workdir`).
    preset: the codec's config preset; '' reads `<workdir>/config.json`.
    step: the checkpoint to read; None = the latest.
    with_params: also load the parameters, for `encode` and `decode`.

  Returns:
    The `FrozenCodec`.

  Raises:
    FileNotFoundError: no such run, checkpoint or config.
    ValueError: the checkpoint is not a codec's, or does not fit its config.
  """
  workdir = os.path.abspath(workdir)
  model_config = codec_model_config(workdir, preset)
  def select(tree):
    # The codebook lives in the codec's collections; the encoder and decoder
    # in its params, read only when asked for.
    wanted = {'collections': {vqvae.COLLECTION:
                              tree['collections'][vqvae.COLLECTION]}}
    if with_params:
      wanted['params'] = tree['params']
    return wanted

  saved = checkpointing.read_saved_variables(
      workdir, step=step, select=select, expect_task='codec',
      missing_step_hint=(
          'Codes must be embedded with the codebook that wrote them: '
          're-encode the dataset with a kept checkpoint, or set '
          '--config.codec.step.'))
  ckpt_dir, step = saved.directory, saved.step
  variables = {vqvae.COLLECTION:
               saved.variables['collections'][vqvae.COLLECTION]}
  if with_params:
    variables['params'] = saved.variables['params']
  codec = FrozenCodec(workdir, step, model_config, variables)
  n, k = model_config.num_codebooks, model_config.codebook_size
  d = model_config.embedding_dim // n
  if codec.codebook.shape != (n, k, d):
    raise ValueError(f'The codebook in {ckpt_dir} is {codec.codebook.shape}, '
                     f'the codec config says {(n, k, d)}.')
  logging.info('Frozen codec from %s step %d: codebook %s, %d pixels per '
               'code.', ckpt_dir, step, codec.codebook.shape,
               codec.spatial_factor)
  return codec


def code_dataset_metadata(dataset_dir: str) -> dict[str, Any]:
  """The metadata `--mode=encode` stored with a code dataset ({} if none)."""
  path = os.path.join(dataset_dir, 'metadata.json')
  if not dataset_dir or not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)
