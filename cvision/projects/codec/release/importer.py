r"""A release codec pickle -> an ordinary cvision codec workdir.

  python -m cvision.projects.codec.release.importer \
      --pickle=41861759_1_cr=192.pkl --workdir=/tmp/release_cr192 \
      [--config=experiments/configs/codec.py:cpu]

The release (google-deepmind/compressed_vision) stores Haiku trees
`{module path: {name: array}}`: the encoder and decoder in `params`, the VQ
codebooks and their EMA statistics in `state`. Each array is mapped to its
`ReleaseCodec` variable (`release/network.py`), every one is accounted for
(an array left over or a variable missing is an error naming it), and every
shape is checked against `jax.eval_shape` of the Flax init. The workdir then
holds what a codec training run leaves: `config.json` (task 'codec',
`model.architecture = 'release'`, and a `release_import` record of the file)
and an orbax checkpoint at step 0, so `frozen.load_frozen_codec(workdir)`,
the codec's modes and warm starts read it as any other codec run.

The augmentation network a release file may hold (`augm_*`) is imported
separately, into an augmenter workdir that reads this codec
(`cvision.projects.augmenter.release.importer`); the import says so.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cvision.core import checkpointing
from cvision.core import metric_logging
from cvision.core import optimizer as optimizer_lib
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.core.train_state import TrainState
from cvision.projects.codec import compression_rate as cr_lib
from cvision.projects.codec import task as codec_task
from cvision.projects.codec.release import config as release_config
from cvision.projects.codec.release import network
from cvision.projects.codec.release import release_file
from cvision.projects.codec.release import safe_pickle

class ReleaseImportError(ValueError):
  """A release file's contents do not fit the release's network."""


def _tree(tree: Any, what: str) -> release_file.HaikuTree:
  return release_file.HaikuTree(tree, what, error=ReleaseImportError)


def _get(tree: Any, path: str, what: str) -> Any:
  node = tree
  for key in path.split('.'):
    try:
      node = node[key]
    except (KeyError, TypeError, AttributeError):
      raise ReleaseImportError(f'{what} has no {path!r} (missing {key!r}).')
  return node


def release_model_kwargs(release: Mapping[str, Any], path: str) -> dict:
  """`config.experiment_kwargs.config.model_kwargs` of a loaded file."""
  kwargs = _get(release['config'], 'experiment_kwargs.config.model_kwargs',
                f'The config in {path}')
  if hasattr(kwargs, 'to_dict'):
    kwargs = kwargs.to_dict()
  return dict(kwargs)





def convert_variables(params: Mapping[str, Any], state: Mapping[str, Any],
                      model: network.ReleaseCodec, prefix: str,
                      path: str = 'the file') -> dict[str, Any]:
  """Haiku `params`/`state` -> `ReleaseCodec` variables (numpy).

  Args:
    params: the release's `params`.
    state: the release's `state`.
    model: the network they belong to (its layer counts decide the names).
    prefix: the release module's name (first part of every Haiku path).
    path: the file, for messages.

  Raises:
    ReleaseImportError: naming an array that is missing or left over.
  """
  hk_params = _tree(params, f'The params of {path}')
  hk_state = _tree(state, f'The state of {path}')
  out: dict[str, Any] = {}

  # Haiku names a module made inside a method other than __call__
  # `<parent>/~<method>/<name>`: the release builds its encoder layers in
  # `encode_embedding`, its decoder layers in `decode_embedding`, and its
  # codebooks in `__init__` (`<parent>/~/vqvae_<i>`).
  encoder, decoder = f'{prefix}/~encode_embedding', f'{prefix}/~decode_embedding'

  def conv(name, scope):  # Haiku Conv3D `w` is already Flax's DHWIO kernel.
    out[name] = {'conv': {'kernel': hk_params.take(
        f'{scope}/{name}/conv3_d', 'w')}}

  def conv_transpose(name, flax_path):
    # Haiku's transposed kernel is [..., out, in]; Flax's [..., in, out].
    module = f'{decoder}/{name}'
    leaf = {'kernel': np.swapaxes(hk_params.take(module, 'w'), -1, -2),
            'bias': hk_params.take(module, 'b')}
    node = out
    for key in flax_path[:-1]:
      node = node.setdefault(key, {})
    node[flax_path[-1]] = leaf

  for i in range(model.num_conv_layers):
    conv(f'conv_{i}', encoder)
  if model.use_time_compression_2x:
    conv('conv_temporal', encoder)
  for i in range(model.extra_encode_conv_layers):
    conv(f'encoder_res_0_{i}', encoder)
    conv(f'encoder_res_1_{i}', encoder)
  for i in range(model.extra_decode_conv_layers):
    conv(f'decoder_res_0_{i}', decoder)
    conv(f'decoder_res_1_{i}', decoder)
  if model.use_time_compression_2x:
    conv_transpose('decoder_temporal', ['decoder_temporal'])
  for i in range(model.num_conv_layers):
    out.setdefault(f'decoder_{i}', {})
    conv_transpose(f'decoder_{i}', [f'decoder_{i}', 'conv'])

  quantizer = _convert_codebooks(hk_state, model, prefix, path)
  left = hk_params.left_over() + hk_state.left_over()
  if left:
    raise ReleaseImportError(
        f'{path} holds arrays the release network of its own config does not '
        f'use: {release_file.listed(left)}.')
  return {'params': out, network.COLLECTION: {'quantizer': quantizer}}


def _convert_codebooks(hk_state: release_file.HaikuTree,
                       model: network.ReleaseCodec,
                       prefix: str, path: str) -> dict[str, np.ndarray]:
  """The N `VectorQuantizerEMA` states -> stacked `ReleaseQuantizer` ones."""
  n, k = model.num_codebooks, model.codebook_size
  d = model.bot_channels // n
  stacks: dict[str, list[np.ndarray]] = {}
  missing_ema = []
  for i in range(n):
    vq = f'{prefix}/~/vqvae_{i}'
    # Haiku keeps [D, K]; the Flax codebook is [N, K, D].
    stacks.setdefault('codebook', []).append(
        hk_state.take(vq, 'embeddings').T)
    for ema, flax_name, shape in (('ema_cluster_size', 'cluster_size', (k,)),
                                  ('ema_dw', 'dw', (k, d))):
      module = f'{vq}/~/{ema}'
      if not hk_state.has(module):
        # A state saved before any training step has no EMA yet; Haiku
        # would create it as zeros at the first one, as we do.
        missing_ema.append(module)
        values = {'counter': np.zeros((), np.int32),
                  'hidden': np.zeros(shape, np.float32),
                  'average': np.zeros(shape, np.float32)}
      else:
        values = {name: hk_state.take(module, name)
                  for name in ('counter', 'hidden', 'average')}
        for name in ('hidden', 'average'):
          if values[name].ndim == 2:
            values[name] = values[name].T
      for name, value in values.items():
        stacks.setdefault(f'{flax_name}_{name}', []).append(value)
  if missing_ema:
    logging.warning('%s has no EMA statistics for %s: zeros, as Haiku starts '
                    'them.', path, release_file.listed(missing_ema))
  stacked = {name: np.stack(values) for name, values in stacks.items()}
  for name in ('cluster_size_counter', 'dw_counter'):
    stacked[name] = stacked[name].astype(np.int32)
  return stacked


def probe_shape(model_config: Any) -> tuple[int, int, int, int, int]:
  """A small `[1, T, H, W, C]` clip every layer of the network accepts."""
  cells = 8 * 2**int(model_config.num_strided_blocks)
  return (1, 2 * int(model_config.temporal_stride), cells, cells,
          int(model_config.release.num_channels))


def check_variables(model: network.ReleaseCodec, model_config: Any,
                    variables: Mapping[str, Any], path: str) -> None:
  """Every array's shape and dtype against `jax.eval_shape` of the init.

  Also that the code grid is the one cvision's compression rate counts.
  """
  video = jax.ShapeDtypeStruct(probe_shape(model_config), jnp.float32)
  expected = jax.eval_shape(
      lambda v: model.init({'params': jax.random.key(0)}, v, train=False),
      video)
  problems = checkpointing.describe_differences(
      checkpointing.describe_state('codec', variables),
      checkpointing.describe_state('codec', expected))
  if problems:
    raise ReleaseImportError(
        f'The arrays of {path} do not fit the release network of its config:'
        '\n  - ' + '\n  - '.join(problems))
  codes = jax.eval_shape(
      lambda v, x: model.apply(v, x, method='encode'), expected, video)
  grid = cr_lib.code_grid_shape(video.shape[1:4], model_config)
  if tuple(codes.shape[1:]) != (*grid, model_config.num_codebooks):
    raise ReleaseImportError(
        f'The release network of {path} writes codes of shape '
        f'{codes.shape[1:]} for clips {video.shape[1:4]}, not the '
        f'{(*grid, model_config.num_codebooks)} cvision\'s code grid '
        'counts: this configuration is not supported.')




def _has_checkpoint(workdir: str) -> bool:
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  return os.path.isdir(ckpt_dir) and any(
      d.isdigit() for d in os.listdir(ckpt_dir))


def import_release(pickle_path: str, workdir: str,
                   base_config: ml_collections.ConfigDict
                   ) -> ml_collections.ConfigDict:
  """Imports a release codec pickle into a new codec workdir.

  Args:
    pickle_path: the release `.pkl`.
    workdir: the new run directory; must hold no checkpoint or config.json.
    base_config: a codec config (`experiments/configs/codec.py`) giving the
      non-model fields (optimizer, data, ...) of the new run; its `model`
      is replaced by the release's.

  Returns:
    The config written to `workdir/config.json`.

  Raises:
    FileExistsError: `workdir` already holds a run.
    ReleaseFileError, ReleaseImportError, ValueError: naming what does not
      fit, before anything is written.
  """
  workdir = os.path.abspath(workdir)
  if _has_checkpoint(workdir) or os.path.exists(
      os.path.join(workdir, 'config.json')):
    raise FileExistsError(f'{workdir} already holds a run; import into a new '
                          '--workdir.')
  release = safe_pickle.load_release_file(pickle_path)
  kwargs = release_model_kwargs(release, pickle_path)
  try:
    model_config = release_config.model_config(kwargs)
  except ValueError as e:
    raise ReleaseImportError(f'{pickle_path}: {e}') from e
  prefix = release_config.full_kwargs(kwargs)['name']
  model = network.build_release_codec(model_config)
  variables = convert_variables(release['params'], release['state'], model,
                                prefix, pickle_path)
  check_variables(model, model_config, variables, pickle_path)
  if release['augm_params'] is not None:
    logging.warning('%s also holds an augmentation network; only the codec '
                    'is imported here. Import the network through this codec '
                    'with the augmenter\'s --mode=import '
                    '(cvision.projects.augmenter.release.importer).',
                    pickle_path)

  config = ml_collections.ConfigDict(base_config.to_dict())
  config.task = codec_task.NAME
  config.model = model_config
  config.release_import = {
      'pickle': os.path.abspath(pickle_path),
      'sha256': release_file.file_sha256(pickle_path),
      'module_name': prefix,
      'inert_options': {k: release_config.full_kwargs(kwargs)[k]
                        for k in release_config.INERT_OPTIONS},
      'augmentation_imported': False,
  }
  _write_checkpoint(config, variables, workdir)
  # Last, once the checkpoint is in place: config.json marks a finished run.
  metric_logging.write_json(os.path.join(workdir, 'config.json'),
                            config.to_dict())
  logging.info('Imported %s into %s.', pickle_path, workdir)
  return config


def _write_checkpoint(config: ml_collections.ConfigDict,
                      variables: Mapping[str, Any], workdir: str) -> None:
  """A step-0 `TrainState` holding `variables`, as a training run saves it."""
  task = codec_task.build_task(config)
  tx = optimizer_lib.freeze(
      optimizer_lib.make_optimizer(config.optimizer, config.train.steps),
      task.frozen)
  mesh = sharding.make_mesh(config.mesh)
  spec = {codec_task.VIDEO_KEY: jax.ShapeDtypeStruct(
      probe_shape(config.model), jnp.uint8)}
  # The state's structure and shardings as a training run builds them, from
  # shapes only: its random init would be thrown away (and compiling it is
  # most of an import's time).
  boxed = train_step_lib.abstract_train_state(task, tx, spec, config.seed)
  shardings = sharding.state_shardings(
      boxed, mesh, list(config.sharding.logical_axis_rules))
  params = jax.tree.map(jnp.asarray, variables['params'])
  collections = {network.COLLECTION: jax.tree.map(
      jnp.asarray, variables[network.COLLECTION])}
  state = TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      opt_state=tx.init(params), collections=collections,
      # The rng a training run of this seed starts from.
      rng=jax.random.split(jax.random.PRNGKey(config.seed))[1])
  if (jax.tree.structure(state)
      != jax.tree.structure(sharding.unbox(boxed))):
    raise ReleaseImportError('The imported variables do not form the codec '
                             "task's train state.")
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
  import_release(FLAGS.pickle, FLAGS.workdir, FLAGS.config)


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  FLAGS = flags.FLAGS
  flags.DEFINE_string('pickle', None, 'The release checkpoint (.pkl).')
  flags.DEFINE_string('workdir', None, 'The new codec run directory.')
  config_flags.DEFINE_config_file(
      'config', 'experiments/configs/codec.py:cpu',
      'A codec config for the non-model fields of the new run.')
  flags.mark_flags_as_required(['pickle', 'workdir'])
  app.run(main)
