"""The release's `augm_config` -> a cvision augmenter `config.model`: one place.

A release pickle's `augm_config.experiment_kwargs.config.augmentation` names
its augmentation network (`network`, 'transformer' being the only one its
`get_equivariant_network` knows) and that network's keyword arguments
(`kwargs`, of its `NeuralTransformation`). Those it leaves out take the
release's constructor defaults, written here (`RELEASE_DEFAULTS`) and
nowhere else. `model_config` turns them into the `model` section of an
imported augmenter's `config.json`:

  architecture   'release' (`augmenter/task.py` builds
                 `ReleaseAugmentationNetwork` for it)
  release        the `ReleaseAugmentationNetwork` fields
                 (`augmenter/release/network.py`), renamed from the kwargs
                 (`RENAMED`) plus the position table's shape, which the
                 release takes from the training clip's code grid and only
                 the checkpoint records.
"""
from __future__ import annotations

import copy
import json
import os
from typing import Any, Mapping

import ml_collections

ARCHITECTURE = 'release'
# The one name the release's `get_equivariant_network` accepts.
NETWORK = 'transformer'
# Haiku's name for a `NeuralTransformation` built without `name`.
DEFAULT_MODULE_NAME = 'neural_transformation'

# The release's `NeuralTransformation` defaults (its equivariant_networks.py).
RELEASE_DEFAULTS: dict[str, Any] = {
    'channels': (64, 64, 64),
    'hidden_size': 128,
    'num_hidden_layers': 2,
    'num_heads': 4,
    'num_attention_heads': 1,
    'key_size': 128,
    'value_size': 128,
    'intermediate_size': 128,
    'lambda_v': 0.0001,
    'output_video_shape': None,
    'name': None,
}
# Release kwarg -> `ReleaseAugmentationNetwork` field.
RENAMED = {
    'channels': 'mlp_features',
    'num_hidden_layers': 'num_layers',
    # `num_heads` of NeuralTransformation is stored and never read; the
    # transformer's heads are `num_attention_heads`.
    'num_attention_heads': 'num_heads',
    'key_size': 'key_size',
    'value_size': 'value_size',
    'intermediate_size': 'ffw_size',
}
# Accepted by the release, changing nothing it computes: its transformer's
# width is 2 x the latent channels (`d_model`), not hidden_size.
INERT_OPTIONS = ('hidden_size', 'num_heads', 'lambda_v')


def augmentation_section(augm_config: Any, path: str) -> tuple[str, dict]:
  """`(network, kwargs)` of `augm_config.experiment_kwargs.config.augmentation`.

  Raises:
    ValueError: the section or its `network` is missing, naming `path`.
  """
  node = augm_config
  for key in ('experiment_kwargs', 'config', 'augmentation'):
    try:
      node = node[key]
    except (KeyError, TypeError, AttributeError):
      raise ValueError(
          f'The augm_config in {path} has no '
          f'experiment_kwargs.config.augmentation (missing {key!r}).'
      ) from None
  try:
    network = node['network']
  except (KeyError, TypeError, AttributeError):
    raise ValueError(f'The augm_config in {path} names no augmentation '
                     'network (augmentation.network).') from None
  try:
    kwargs = node['kwargs']
  except (KeyError, TypeError, AttributeError):
    kwargs = {}
  if hasattr(kwargs, 'to_dict'):
    kwargs = kwargs.to_dict()
  return str(network), dict(kwargs or {})


def full_kwargs(network: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
  """The release kwargs with its defaults filled in; unknown names refused."""
  if network != NETWORK:
    raise ValueError(f'augmentation.network={network!r}: the release knows '
                     f'only {NETWORK!r} (its NeuralTransformation).')
  unknown = sorted(set(kwargs) - set(RELEASE_DEFAULTS))
  if unknown:
    raise ValueError(f'Unknown augmentation kwargs {unknown}: not options of '
                     "the release's NeuralTransformation (its options: "
                     f'{sorted(RELEASE_DEFAULTS)}).')
  if kwargs.get('output_video_shape') is not None:
    # The release resizes its output latents to this shape; cvision's
    # consumers (the frozen decoder, S3D) need latents of the input's shape.
    raise ValueError(
        'augmentation.kwargs.output_video_shape='
        f'{kwargs["output_video_shape"]!r} is not supported by the cvision '
        'import: it resizes the latents away from the codec\'s code grid.')
  return {**RELEASE_DEFAULTS, **kwargs}


def module_name(network: str, kwargs: Mapping[str, Any]) -> str:
  """The first part of every Haiku path of the network's parameters."""
  return full_kwargs(network, kwargs)['name'] or DEFAULT_MODULE_NAME


def network_fields(network: str, kwargs: Mapping[str, Any],
                   position_shape: tuple[int, int]) -> dict[str, Any]:
  """The `ReleaseAugmentationNetwork` fields (dtype aside).

  Args:
    network: `augmentation.network`.
    kwargs: `augmentation.kwargs`.
    position_shape: `(frames, cells)` of the position table, the code grid
      (T, H * W) the release network was trained on.
  """
  full = full_kwargs(network, kwargs)
  fields = {field: full[kwarg] for kwarg, field in RENAMED.items()}
  fields['mlp_features'] = tuple(int(c) for c in fields['mlp_features'])
  for name in ('num_layers', 'num_heads', 'key_size', 'value_size',
               'ffw_size'):
    fields[name] = int(fields[name])
  fields['position_frames'], fields['position_cells'] = (
      int(position_shape[0]), int(position_shape[1]))
  return fields


def model_config(network: str, kwargs: Mapping[str, Any],
                 position_shape: tuple[int, int]
                 ) -> ml_collections.ConfigDict:
  """The imported augmenter's `config.model`."""
  return ml_collections.ConfigDict({
      'architecture': ARCHITECTURE,
      'release': network_fields(network, kwargs, position_shape),
  })


def is_release(model_config_: Any) -> bool:
  """Whether an augmenter `config.model` is the release's architecture."""
  return model_config_.get('architecture') == ARCHITECTURE


def run_config(config: ml_collections.ConfigDict,
               workdir: str) -> ml_collections.ConfigDict:
  """`config` with the model of the run in `workdir` where it must be so.

  An imported release augmenter has the release's architecture, which no
  preset describes: its saved model fields are the model (as the codec's
  modes do for an imported codec). Any other run keeps `config.model`,
  which the checkpoint is checked against when it is restored.
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    return config
  with open(path) as f:
    saved = ml_collections.ConfigDict(json.load(f).get('model', {}))
  if not is_release(saved):
    return config
  config = copy.deepcopy(config)
  with config.unlocked():
    config.model = saved
  return config
