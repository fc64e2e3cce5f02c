"""A trained codec, read-only: the codec project's public loading API.

Everything that uses a trained codec loads it here: the codec's own modes
(encode a dataset, decode codes, evaluate), S3D (which embeds codes in its
codebook), the augmentation network (which trains through its decoder), the
long-video models (which read its codes). None of them trains the codec: its
variables are read once from the codec run's checkpoint (orbax partial
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
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cvision.core import checkpointing
from cvision.core import sharding
from cvision.projects.codec import compression_rate as cr_lib
from cvision.projects.codec import task as codec_task
from cvision.projects.codec import vqvae
from cvision.projects.codec.vqvae import quantizer as quantizer_lib


@dataclasses.dataclass(frozen=True)
class FrozenCodec:
  """A trained codec's variables, on the host, never trained here.

  Attributes:
    workdir: the codec run directory.
    step: the checkpoint step the variables come from.
    model_config: the codec's model fields (`experiments/configs/codec.py`).
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

  # -- Jittable, inside other models' steps. ---------------------------------

  def encode(self, video: jax.Array) -> jax.Array:
    """`[B, T, H, W, 3]` in [0, 1] (or uint8) -> `[B, T_c, H_c, W_c, N]` int32.

    Jittable.
    """
    self._require_params()
    return self._apply(video, method='encode')

  def codes_to_latents(self, codes: jax.Array) -> jax.Array:
    """`[..., N]` int codes -> `[..., N*D]` float32 quantised latents."""
    return self._apply(codes.astype(jnp.int32),
                       method='codes_to_latents')

  def snap_to_codebook(self, latents: jax.Array) -> jax.Array:
    """`[..., N*D]` latents -> each codebook's nearest entries, `[..., N*D]`.

    What the quantiser does to encoder outputs, for latents made elsewhere
    (an augmentation network's): afterwards they are codes' embeddings.
    """
    return quantizer_lib.snap_to_codebook(latents, self.codebook)

  def decode_latents(self, latents: jax.Array) -> jax.Array:
    """`[B, T_c, H_c, W_c, N*D]` latents -> `[B, T, H, W, 3]` f32, unclipped.

    Jittable and differentiable in `latents` (models trained through the
    frozen decoder, like the augmentation network, need that).
    """
    self._require_params()
    return self._apply(latents, method='decode_latents')

  def decode(self, codes: jax.Array) -> jax.Array:
    """`[B, T_c, H_c, W_c, N]` ints -> `[B, T, H, W, 3]` float32 in [0, 1].

    Jittable. Rounded to the 256 levels of the uint8 video `decode_videos`
    would store, so a classifier sees what a decoded dataset would hold.
    """
    self._require_params()
    video = self._apply(codes.astype(jnp.int32), method='decode')
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

  # -- Numpy in, numpy out, over this host's devices. ------------------------

  def encode_videos(self, video: np.ndarray) -> np.ndarray:
    """`[B, T, H, W, 3] uint8` -> `[B, T_c, H_c, W_c, N]` int32 codes."""
    return self._on_local_devices('encode', np.asarray(video))

  def decode_to_videos(self, codes: np.ndarray) -> np.ndarray:
    """`[B, T_c, H_c, W_c, N]` codes -> `[B, T, H, W, 3] uint8`."""
    return self._on_local_devices('decode', np.asarray(codes))

  def _on_local_devices(self, which: str, x: np.ndarray) -> np.ndarray:
    # Encoding is embarrassingly parallel: each host works alone on its local
    # devices (no cross-host collectives), the batch padded to a multiple of
    # them and sharded over them; the padding is dropped.
    fn, batch_sharding, variables = self._local_programs[which]
    n = len(x)
    padded = -n % batch_sharding.mesh.devices.size
    if padded:
      x = np.concatenate([x, np.repeat(x[-1:], padded, axis=0)])
    out = fn(variables, jax.device_put(x, batch_sharding))
    return np.asarray(jax.device_get(out))[:n]

  @functools.cached_property
  def _local_programs(self):
    self._require_params()
    mesh = Mesh(np.asarray(jax.local_devices()), ('data',))
    # The variables are an argument here, not a constant baked into the
    # program: a paper-size codec's 30M weights would otherwise be copied
    # into every compiled encode and decode.
    variables = jax.device_put(dict(self.variables),
                               NamedSharding(mesh, P()))
    model = codec_task.build_model(self.model_config)

    def encode(variables, video):
      return model.apply(variables, video, method='encode')

    def decode(variables, codes):
      video = model.apply(variables, codes.astype(jnp.int32),
                          method='decode')
      return jnp.round(jnp.clip(video, 0, 1) * 255).astype(jnp.uint8)

    batch = NamedSharding(mesh, P('data'))
    return {'encode': (jax.jit(encode), batch, variables),
            'decode': (jax.jit(decode), batch, variables)}

  # -- What a code dataset records. -----------------------------------------

  def code_shape(self, video_shape) -> tuple[int, int, int, int]:
    """`(T_c, H_c, W_c, N)` for a `(T, H, W, 3)` clip."""
    grid = cr_lib.code_grid_shape(tuple(video_shape[:3]), self.model_config)
    return (*grid, self.model_config.num_codebooks)

  def compression_rate(self, video_shape) -> float:
    """The paper's CR (log2 K bits per index) on `(T, H, W, ...)` clips."""
    return codec_task.model_compression_rate(self.model_config,
                                             tuple(video_shape[:3]))

  def metadata(self, video_shape) -> dict[str, Any]:
    """What a code dataset stores about the codec that wrote it."""
    m = self.model_config
    return {
        'codec_workdir': self.workdir,
        'codec_checkpoint_step': self.step,
        'codec_model': m.to_dict(),
        'input_shape': list(video_shape),
        'code_grid_shape': list(self.code_shape(video_shape)[:3]),
        'num_codebooks': m.num_codebooks,
        'codebook_size': m.codebook_size,
        'compression_rate': self.compression_rate(video_shape),
    }


def _as_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(json.dumps(config.to_dict()))


def saved_model_config(workdir: str) -> ml_collections.ConfigDict:
  """The model fields a codec run was trained with (`<workdir>/config.json`).

  Runs from before `window_frames` existed window by their training clip
  length, as the presets now do (`vqvae.VQVAE`, window_frames).
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'{path} not found: {workdir!r} is not a cvision codec run (every '
        'run writes its config.json when training starts).')
  with open(path) as f:
    saved_config = json.load(f)
  if saved_config.get('task') not in (None, codec_task.NAME):
    raise checkpointing.CheckpointMismatchError(
        f'{workdir} holds a {saved_config.get("task")!r} run, not a codec.')
  saved_model = dict(saved_config.get('model', {}))
  if 'window_frames' not in saved_model:
    saved_model['window_frames'] = _training_clip_frames(saved_config)
  return ml_collections.ConfigDict(saved_model)


def _training_clip_frames(saved_config: dict[str, Any]) -> int:
  """The clip length a codec run trained on, if a valid window, else 0."""
  frames = int(saved_config.get('data', {}).get('train_clip_frames', 0) or 0)
  stride = int(saved_config.get('model', {}).get('temporal_stride', 1))
  return frames if frames > 0 and frames % stride == 0 else 0


def _check_variables(model_config, variables, ckpt_dir: str) -> None:
  """Raises naming the leaves where the checkpoint and the model differ."""
  model = codec_task.build_model(model_config)
  cells = 8 * int(model_config.space_to_depth
                  * 2**model_config.num_strided_blocks)
  frames = 2 * int(model_config.temporal_stride)
  expected = jax.eval_shape(
      lambda: model.init({'params': jax.random.key(0),
                          'vq': jax.random.key(1)},
                         jnp.zeros((1, frames, cells, cells, 3)),
                         train=False))
  expected = {k: sharding.unbox(expected[k]) for k in variables}
  problems = checkpointing.describe_differences(
      checkpointing.describe_state('codec', variables),
      checkpointing.describe_state('codec', expected))
  if problems:
    raise checkpointing.CheckpointMismatchError(
        f'The codec checkpoint in {ckpt_dir} does not fit its model '
        'config:\n  - ' + '\n  - '.join(problems))


def load_frozen_codec(workdir: str, *, step: int | None = None,
                      with_params: bool = False,
                      model_config: ml_collections.ConfigDict | None = None
                      ) -> FrozenCodec:
  """Reads a codec run's checkpoint read-only.

  Only what is needed leaves the disk (orbax partial restore, to numpy): the
  'vq_ema' collection, plus the parameters when `with_params`. Nothing is
  initialised or compiled and the codec's training data need not exist.

  Args:
    workdir: the codec run directory (its `--workdir`).
    step: the checkpoint to read; None or 0 = the latest.
    with_params: also load the parameters, for `encode` and `decode`.
    model_config: the model fields the caller expects (the config of a codec
      mode); must equal the run's own. None: the run's own.

  Returns:
    The `FrozenCodec`.

  Raises:
    FileNotFoundError: no such run, checkpoint or config.
    ValueError: the checkpoint is not a codec's, or does not fit its config.
  """
  workdir = os.path.abspath(workdir)
  saved = saved_model_config(workdir)
  if model_config is not None and _as_json(model_config) != _as_json(saved):
    differing = sorted(k for k in set(saved) | set(model_config)
                       if saved.get(k) != model_config.get(k))
    raise checkpointing.CheckpointMismatchError(
        f'The codec run in {workdir} was trained with other model fields: '
        f'{differing} differ from this config. Use the config that trained '
        'it (its config.json) or another --workdir.')

  def select(tree):
    # The codebook lives in the codec's collections; the encoder and decoder
    # in its params, read only when asked for.
    wanted = {'collections': {vqvae.COLLECTION:
                              tree['collections'][vqvae.COLLECTION]}}
    if with_params:
      wanted['params'] = tree['params']
    return wanted

  restored = checkpointing.read_saved_variables(
      workdir, step=step, select=select, expect_task=codec_task.NAME,
      missing_step_hint=(
          'Codes must be embedded with the codebook that wrote them: '
          're-encode the dataset with a kept checkpoint, or set '
          '--config.codec.step.'))
  variables = {vqvae.COLLECTION:
               restored.variables['collections'][vqvae.COLLECTION]}
  if with_params:
    variables['params'] = restored.variables['params']
  _check_variables(saved, variables, restored.directory)
  codec = FrozenCodec(workdir, restored.step, saved, variables)
  logging.info('Frozen codec from %s step %d: codebook %s, %d pixels per '
               'code.', restored.directory, restored.step,
               codec.codebook.shape, codec.spatial_factor)
  return codec


def code_dataset_metadata(dataset_dir: str) -> dict[str, Any]:
  """The metadata `--mode=encode` stored with a code dataset ({} if none)."""
  path = os.path.join(dataset_dir, 'metadata.json')
  if not dataset_dir or not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)


def codec_for_code_dataset(codec_config: ml_collections.ConfigDict,
                           dataset_dir: str, *, what: str,
                           with_params: bool = False) -> FrozenCodec:
  """The codec that wrote `dataset_dir`, for a model that reads its codes.

  `codec_config` is a downstream config's `codec` (`workdir`, `step`): an
  empty workdir takes the one the dataset's metadata names, step 0 the step
  that wrote the codes (a codebook trained on after encoding has moved). The
  codebook shape is checked against the dataset's.

  Args:
    codec_config: `config.codec` of the reading model.
    dataset_dir: the code dataset (`config.data.dataset_dir`).
    what: the reading model, for messages.
    with_params: also load the encoder and decoder.
  """
  metadata = code_dataset_metadata(dataset_dir)
  workdir = codec_config.workdir or metadata.get('codec_workdir', '')
  if not workdir:
    raise ValueError(
        f'{what} needs the codec that wrote the codes: pass '
        '--config.codec.workdir=<the codec run\'s --workdir>.')
  step = codec_config.step or metadata.get('codec_checkpoint_step')
  codec = load_frozen_codec(workdir, step=step, with_params=with_params)
  stored = (metadata.get('num_codebooks'), metadata.get('codebook_size'))
  if metadata and stored != codec.codebook.shape[:2]:
    raise ValueError(
        f'{dataset_dir} holds codes of (N, K) = {stored}, the codec in '
        f'{workdir} has {codec.codebook.shape[:2]}.')
  written_by = metadata.get('codec_workdir')
  if written_by and os.path.abspath(written_by) != codec.workdir:
    logging.warning('%s was written by the codec in %s; using the one in %s.',
                    dataset_dir, written_by, codec.workdir)
  return codec
