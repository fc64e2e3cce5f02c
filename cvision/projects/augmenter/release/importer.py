r"""A release augmentation pickle -> an ordinary cvision augmenter workdir.

  # First the codec of the same file (docs/release_codecs.md):
  python -m cvision.projects.codec.release.importer \
      --pickle=35225852_7_augm=flip.pkl --workdir=/tmp/release_flip_codec
  # Then its augmentation network, through that codec:
  python -m cvision.projects.augmenter.release.importer \
      --pickle=35225852_7_augm=flip.pkl --workdir=/tmp/release_flip \
      --config=experiments/configs/augmenter.py:flip \
      --config.codec.workdir=/tmp/release_flip_codec

The release (google-deepmind/compressed_vision) stores the augmentation
network as a Haiku tree `augm_params` `{module path: {name: array}}` (and an
empty `augm_state`: the network has no state), its options in
`augm_config.experiment_kwargs.config.augmentation`. Each array is mapped to
its `ReleaseAugmentationNetwork` variable (`release/network.py`), every one
is accounted for (an array left over or a variable missing is an error
naming it), and every shape is checked against `jax.eval_shape` of the Flax
init. The workdir then holds what an augmenter training run leaves:
`config.json` (task 'augmenter', `model.architecture = 'release'`, the codec
it reads, `release_import`) and an orbax checkpoint at step 0, so
`frozen.load_frozen_augmenter(workdir)`, S3D's `code_augment` and the
augmenter's modes read it as any other augmenter run.

The codec must be the one imported from the same file (its
`release_import.sha256`): the network transforms that codec's latents only.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

from cvision.core import checkpointing
from cvision.core import metric_logging
from cvision.core import optimizer as optimizer_lib
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.core.train_state import TrainState
from cvision.projects.augmenter import pixel_transforms as pt
from cvision.projects.augmenter import task as augmenter_task
from cvision.projects.augmenter.release import config as release_config
from cvision.projects.augmenter.release import network
from cvision.projects.codec import frozen as frozen_codec
# The release file format is the codec's reader: one allow-list for both.
from cvision.projects.codec.release import release_file
from cvision.projects.codec.release import safe_pickle


class ReleaseAugmenterImportError(ValueError):
  """A release file's augmentation network does not fit the release's code."""


def _tree(tree: Any, what: str) -> release_file.HaikuTree:
  return release_file.HaikuTree(tree, what, error=ReleaseAugmenterImportError,
                                network='the release augmentation network')




def position_shape(augm_params: Mapping[str, Any], prefix: str,
                   path: str) -> tuple[int, int, int]:
  """`(frames, cells, 2C)` of the position table, the training code grid."""
  table = _tree(augm_params, f'The augm_params of {path}').take(
      f'{prefix}/transformer_xl', 'position_embedding')
  if table.ndim != 3 or table.shape[-1] % 2:
    raise ReleaseAugmenterImportError(
        f'The position table of {path} has shape {table.shape}, not the '
        "release's [T, H*W, 2C].")
  return tuple(int(s) for s in table.shape)


def convert_variables(augm_params: Mapping[str, Any],
                      augm_state: Mapping[str, Any] | None,
                      model: network.ReleaseAugmentationNetwork, prefix: str,
                      path: str = 'the file') -> dict[str, Any]:
  """Haiku `augm_params` -> `ReleaseAugmentationNetwork` variables (numpy).

  Args:
    augm_params: the release's `augm_params`.
    augm_state: the release's `augm_state` (must hold no array).
    model: the network they belong to (its layer counts decide the names).
    prefix: the network's Haiku module name (first part of every path).
    path: the file, for messages.

  Raises:
    ReleaseAugmenterImportError: naming an array missing or left over.
  """
  hk_params = _tree(augm_params, f'The augm_params of {path}')
  hk_state = _tree(augm_state, f'The augm_state of {path}')
  out: dict[str, Any] = {}

  def linear(module, with_bias=True):  # Haiku's `w` is Flax's [in, out].
    leaf = {'kernel': hk_params.take(module, 'w')}
    if with_bias:
      leaf['bias'] = hk_params.take(module, 'b')
    return leaf

  def layer_norm(module):
    return {'scale': hk_params.take(module, 'scale'),
            'bias': hk_params.take(module, 'offset')}

  # hk.nets.MLP makes its layers in __init__: `mlp/~/linear_<i>`.
  names = [f'mlp_{i}' for i in range(len(model.mlp_features))] + ['mlp_out']
  for i, name in enumerate(names):
    out[name] = linear(f'{prefix}/mlp/~/linear_{i}')
  xl = f'{prefix}/transformer_xl'
  transformer = {'position_embedding': hk_params.take(xl,
                                                      'position_embedding')}
  for i in range(model.num_layers):
    block = {}
    for axis in ('time', 'space'):
      attention = f'{xl}/h{i}_{axis}_attn'
      block[f'ln_{axis}'] = layer_norm(f'{xl}/h{i}_ln_{axis}')
      block[f'{axis}_attention'] = {
          'query': linear(f'{attention}/query', with_bias=False),
          'key': linear(f'{attention}/key', with_bias=False),
          'value': linear(f'{attention}/value', with_bias=False),
          'out': linear(f'{attention}/linear'),
      }
    block['ln_ffw'] = layer_norm(f'{xl}/h{i}_ln_2')
    block['ffw_in'] = linear(f'{xl}/h{i}_mlp/linear')
    block['ffw_out'] = linear(f'{xl}/h{i}_mlp/linear_1')
    transformer[f'block_{i}'] = block
  transformer['ln_out'] = layer_norm(f'{xl}/ln_f')
  out['transformer'] = transformer

  left = hk_params.left_over() + hk_state.left_over()
  if left:
    raise ReleaseAugmenterImportError(
        f'{path} holds augmentation arrays the release network of its own '
        f'augm_config does not use: {release_file.listed(left)}.')
  return {'params': out}


def latent_grid(cells: int) -> tuple[int, int]:
  """`(H, W)` with H * W = cells, as square as it goes (H <= W).

  The position table records only H * W; the released network was trained
  on square frames, whose grid this gives back.
  """
  h = max(d for d in range(1, math.isqrt(cells) + 1) if cells % d == 0)
  return h, cells // h


def check_variables(model: network.ReleaseAugmentationNetwork,
                    variables: Mapping[str, Any], param_dim: int,
                    latent_channels: int, path: str) -> None:
  """Every array's shape and dtype against `jax.eval_shape` of the init."""
  h, w = latent_grid(model.position_cells)
  latents = jax.ShapeDtypeStruct(
      (1, model.position_frames, h, w, latent_channels), jnp.float32)
  p = jax.ShapeDtypeStruct((1, param_dim), jnp.float32)
  expected = jax.eval_shape(
      lambda z, q: model.init(jax.random.key(0), z, q), latents, p)
  problems = checkpointing.describe_differences(
      checkpointing.describe_state(augmenter_task.NAME, variables),
      checkpointing.describe_state(augmenter_task.NAME, expected))
  if problems:
    raise ReleaseAugmenterImportError(
        f'The augmentation arrays of {path} do not fit the release network '
        'of its augm_config:\n  - ' + '\n  - '.join(problems))




def _has_run(workdir: str) -> bool:
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  return os.path.exists(os.path.join(workdir, 'config.json')) or (
      os.path.isdir(ckpt_dir) and any(d.isdigit()
                                      for d in os.listdir(ckpt_dir)))


def _check_codec(codec_workdir: str, sha256: str, latent_channels: int,
                 path: str) -> frozen_codec.FrozenCodec:
  """The codec imported from the same file, whose latents the network reads."""
  if not codec_workdir:
    raise ValueError(
        'The release augmentation network transforms the latents of the '
        'codec in the same file: import that codec first '
        '(cvision.projects.codec.release.importer) and pass '
        '--config.codec.workdir=<its workdir>.')
  codec = frozen_codec.load_frozen_codec(codec_workdir)
  with open(os.path.join(codec.workdir, 'config.json')) as f:
    record = json.load(f).get('release_import') or {}
  if record.get('sha256') != sha256:
    source = record.get('pickle') or 'no release file (a cvision-trained run)'
    raise ReleaseAugmenterImportError(
        f'The codec in {codec.workdir} was imported from {source}, not from '
        f'{path}: the augmentation network only knows the latents of the '
        'codec in its own file. Import that codec and pass its workdir.')
  n, _, d = codec.codebook.shape
  if n * d != latent_channels:
    raise ReleaseAugmenterImportError(
        f'The augmentation network of {path} transforms {latent_channels}-'
        f'channel latents; the codec in {codec.workdir} has {n}x{d}.')
  return codec


def import_release_augmenter(pickle_path: str, workdir: str,
                             base_config: ml_collections.ConfigDict
                             ) -> ml_collections.ConfigDict:
  """Imports the augmentation network of a release pickle into a new workdir.

  Args:
    pickle_path: the release `.pkl`, one with `augm_*` (the paper's flip).
    workdir: the new run directory; must hold no checkpoint or config.json.
    base_config: an augmenter config (`experiments/configs/augmenter.py`,
      e.g. `:flip`): its `augment.family` is the network's family, its
      `codec.workdir` the codec imported from the same file, its other
      non-model fields those of the new run; its `model` is replaced.

  Returns:
    The config written to `workdir/config.json`.

  Raises:
    FileExistsError: `workdir` already holds a run.
    ReleaseFileError, ReleaseAugmenterImportError, ValueError: naming what
      does not fit, before anything is written.
  """
  workdir = os.path.abspath(workdir)
  if _has_run(workdir):
    raise FileExistsError(f'{workdir} already holds a run; import into a new '
                          '--workdir.')
  release = safe_pickle.load_release_file(pickle_path)
  if release['augm_params'] is None or release['augm_config'] is None:
    raise ReleaseAugmenterImportError(
        f'{pickle_path} holds no augmentation network (its augm_params / '
        'augm_config are None): it is a codec-only release file.')
  try:
    network_name, kwargs = release_config.augmentation_section(
        release['augm_config'], pickle_path)
    prefix = release_config.module_name(network_name, kwargs)
    frames, cells, d_model = position_shape(release['augm_params'], prefix,
                                            pickle_path)
    model_config = release_config.model_config(network_name, kwargs,
                                               (frames, cells))
  except ReleaseAugmenterImportError:
    raise
  except ValueError as e:
    raise ReleaseAugmenterImportError(f'{pickle_path}: {e}') from e
  model = network.build_release_augmenter(model_config, jnp.float32)
  variables = convert_variables(release['augm_params'], release['augm_state'],
                                model, prefix, pickle_path)
  latent_channels = d_model // 2
  family = base_config.augment.family
  param_dim = int(variables['params']['mlp_0' if model.mlp_features
                                      else 'mlp_out']['kernel'].shape[0])
  if param_dim != pt.param_dim(family):
    raise ReleaseAugmenterImportError(
        f'The augmentation network of {pickle_path} takes {param_dim} '
        f'parameter(s) per clip; augment.family={family!r} has '
        f'{pt.param_dim(family)} ({pt.PARAM_NAMES[family]}). The release '
        "network is a flip: use the augmenter config's 'flip' preset.")
  check_variables(model, variables, param_dim, latent_channels, pickle_path)
  sha256 = release_file.file_sha256(pickle_path)
  codec = _check_codec(base_config.codec.workdir, sha256, latent_channels,
                       pickle_path)

  config = ml_collections.ConfigDict(base_config.to_dict())
  config.task = augmenter_task.NAME
  config.model = model_config
  config.codec.workdir = codec.workdir
  config.release_import = {
      'pickle': os.path.abspath(pickle_path),
      'sha256': sha256,
      'module_name': prefix,
      'network': network_name,
      'inert_options': {
          k: release_config.full_kwargs(network_name, kwargs)[k]
          for k in release_config.INERT_OPTIONS},
  }
  _write_checkpoint(config, codec, variables, workdir)
  # Last, once the checkpoint is in place: config.json marks a finished run.
  metric_logging.write_json(os.path.join(workdir, 'config.json'),
                            config.to_dict())
  logging.info('Imported the %s augmentation network of %s into %s (code '
               'grids of %d frames x %d cells).', family, pickle_path,
               workdir, frames, cells)
  return config


def probe_video_shape(codec: frozen_codec.FrozenCodec,
                      model: network.ReleaseAugmentationNetwork
                      ) -> tuple[int, int, int, int, int]:
  """A `[1, T, H, W, 3]` clip whose codes have the network's grid."""
  h, w = latent_grid(model.position_cells)
  factor = codec.spatial_factor
  shape = (model.position_frames * int(codec.model_config.temporal_stride),
           h * factor, w * factor, 3)
  grid = codec.code_shape(shape)[:3]
  if tuple(grid) != (model.position_frames, h, w):
    raise ReleaseAugmenterImportError(
        f'No clip of the codec in {codec.workdir} has the augmentation '
        f'network\'s code grid ({model.position_frames}, {h}, {w}); '
        f'{shape} gives {grid}.')
  return (1, *shape)


def _write_checkpoint(config: ml_collections.ConfigDict,
                      codec: frozen_codec.FrozenCodec,
                      variables: Mapping[str, Any], workdir: str) -> None:
  """A step-0 `TrainState` holding `variables`, as a training run saves it."""
  task = augmenter_task.build_task(config)
  tx = optimizer_lib.freeze(
      optimizer_lib.make_optimizer(config.optimizer, config.train.steps),
      task.frozen)
  mesh = sharding.make_mesh(config.mesh)
  model = augmenter_task.build_model(config.model)
  spec = {augmenter_task.VIDEO_KEY: jax.ShapeDtypeStruct(
      probe_video_shape(codec, model), jnp.uint8)}
  # The state's structure and shardings as a training run builds them, from
  # shapes only (its random init would be thrown away).
  boxed = train_step_lib.abstract_train_state(task, tx, spec, config.seed)
  shardings = sharding.state_shardings(
      boxed, mesh, list(config.sharding.logical_axis_rules))
  params = jax.tree.map(jnp.asarray, variables['params'])
  state = TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      opt_state=tx.init(params), collections={},
      # The rng a training run of this seed starts from.
      rng=jax.random.split(jax.random.PRNGKey(config.seed))[1])
  expected = sharding.unbox(boxed)
  if jax.tree.structure(state) != jax.tree.structure(expected):
    raise ReleaseAugmenterImportError(
        "The imported variables do not form the augmenter task's train "
        'state.')
  state = jax.device_put(state, shardings)
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      state)
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, 'checkpoints'), keep=1, task_name=task.name,
      abstract_state=abstract)
  checkpointer.save(state, force=True)
  checkpointer.close()


def main(argv):
  del argv
  import_release_augmenter(FLAGS.pickle, FLAGS.workdir, FLAGS.config)


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  FLAGS = flags.FLAGS
  flags.DEFINE_string('pickle', None, 'The release checkpoint (.pkl).')
  flags.DEFINE_string('workdir', None, 'The new augmenter run directory.')
  config_flags.DEFINE_config_file(
      'config', 'experiments/configs/augmenter.py:flip',
      'An augmenter config: its augment.family, codec.workdir and non-model '
      'fields.')
  flags.mark_flags_as_required(['pickle', 'workdir'])
  app.run(main)
