"""The release's `model_kwargs` -> a cvision codec `config.model`: one place.

A release pickle's `config.experiment_kwargs.config.model_kwargs` holds the
keyword arguments of its `CompressionConvEncoderDecoder`; those it leaves out
take the release's constructor defaults, written here (`RELEASE_DEFAULTS`)
and nowhere else. `model_config` turns them into the `model` section of an
imported codec's `config.json`:

  architecture   'release' (`codec/task.py` builds `ReleaseCodec` for it)
  release        the `ReleaseCodec` fields (`release/network.py`)
  num_codebooks, codebook_size, num_strided_blocks, space_to_depth,
  temporal_stride, window_frames
                 the interface fields every codec consumer reads (code grid,
                 compression rate), derived from `release`.
"""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections

ARCHITECTURE = 'release'
# The release's own module name, the first part of its Haiku paths.
DEFAULT_MODULE_NAME = 'CompressionConvEncoderDecoder'

# The release's constructor defaults (its `encoder_decoder_unet.py`).
RELEASE_DEFAULTS: dict[str, Any] = {
    'num_channels': 3,
    'bot_channels': 128,
    'bot_channels_code_index': 32,
    'stride': (1, 2, 2),
    'kernel_shape': (1, 4, 4),
    'num_conv_layers': 1,
    'res_bot_mult': 4.0,
    'extra_encode_conv_layers': 2,
    'extra_encode_conv_kernel': (1, 3, 3),
    'extra_encode_conv_use_bn': False,
    'extra_decode_conv_layers': 2,
    'extra_decode_conv_use_bn': False,
    'extra_decode_conv_kernel': (1, 3, 3),
    'use_multicodebook': True,
    'use_ratio_for_codebooks': False,
    'use_attention': False,
    'use_skips': False,
    'skips_one_embedding': False,
    'attention_resolutions': (),
    'last_linearity': '',
    'vq_embedding_dims': 16,
    'vq_num_embeddings': 256,
    'vq_commitment_cost': 0.9,
    'vq_decay': 0.5,
    'padding': 'VALID',
    'use_normalized_embeddings': False,
    'use_tanh': False,
    'use_time_compression_2x': False,
    'name': DEFAULT_MODULE_NAME,
}

# Options the release accepts but that change nothing it computes: its
# per-layer codebooks (`vqvae_<layer>_<i>`, sized by use_ratio_for_codebooks)
# are built but never called, bot_channels_code_index and
# attention_resolutions are stored only, and its decoder reads the
# encoder's batch-norm flag, never extra_decode_conv_use_bn.
INERT_OPTIONS = ('bot_channels_code_index', 'use_ratio_for_codebooks',
                 'attention_resolutions', 'extra_decode_conv_use_bn')
# Options the release itself refuses unless False (it asserts so).
MUST_BE_FALSE = ('use_attention', 'use_skips', 'skips_one_embedding',
                 'use_normalized_embeddings')
# Supported by the release, not (yet) here: batch norm in the residual
# blocks would need its statistics as a further collection.
UNSUPPORTED_IF_TRUE = ('extra_encode_conv_use_bn',)
_TUPLES = ('stride', 'kernel_shape', 'extra_encode_conv_kernel',
           'extra_decode_conv_kernel')


def full_kwargs(model_kwargs: Mapping[str, Any]) -> dict[str, Any]:
  """The release kwargs with its defaults filled in; unknown names refused."""
  kwargs = dict(model_kwargs)
  unknown = sorted(set(kwargs) - set(RELEASE_DEFAULTS))
  if unknown:
    raise ValueError(f'Unknown release model_kwargs {unknown}: not options '
                     'of the release\'s CompressionConvEncoderDecoder '
                     f'(its options: {sorted(RELEASE_DEFAULTS)}).')
  for key in MUST_BE_FALSE:
    if kwargs.get(key):
      raise ValueError(f'model_kwargs.{key}={kwargs[key]!r}: the release '
                       'itself only runs with it False.')
  for key in UNSUPPORTED_IF_TRUE:
    if kwargs.get(key):
      raise ValueError(f'model_kwargs.{key}={kwargs[key]!r} (batch norm in '
                       'the residual blocks) is not supported by the cvision '
                       'import.')
  return {**RELEASE_DEFAULTS, **kwargs}


def network_fields(model_kwargs: Mapping[str, Any]) -> dict[str, Any]:
  """The `ReleaseCodec` fields of release kwargs (defaults filled in)."""
  kwargs = full_kwargs(model_kwargs)
  fields = {k: v for k, v in kwargs.items()
            if k not in INERT_OPTIONS + MUST_BE_FALSE + UNSUPPORTED_IF_TRUE
            and k != 'name'}
  for key in _TUPLES:
    fields[key] = tuple(int(v) for v in fields[key])
    if len(fields[key]) != 3:
      raise ValueError(f'model_kwargs.{key} must have 3 entries (T, H, W), '
                       f'got {fields[key]}.')
  fields['last_linearity'] = fields['last_linearity'] or ''
  return fields


def interface_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
  """The fields codec consumers read, derived from `ReleaseCodec` fields."""
  stride = tuple(fields['stride'])
  if stride[0] != 1 or stride[1] != stride[2] or stride[1] != 2:
    # cvision's code grid (`compression_rate.code_grid_shape`) counts
    # halvings of H and W; the released codecs all use (1, 2, 2).
    raise ValueError(f'model_kwargs.stride={stride} is not supported: the '
                     'cvision import handles (1, 2, 2).')
  if fields['use_multicodebook']:
    num_codebooks = fields['bot_channels'] // fields['vq_embedding_dims']
  else:
    num_codebooks = 1
  return {
      'num_codebooks': int(num_codebooks),
      'codebook_size': int(fields['vq_num_embeddings']),
      'num_strided_blocks': int(fields['num_conv_layers']),
      'space_to_depth': 1,
      'temporal_stride': 2 if fields['use_time_compression_2x'] else 1,
      # Whole clips, as the release encodes them.
      'window_frames': 0,
  }


def model_config(model_kwargs: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """The imported codec's `config.model` for release `model_kwargs`."""
  fields = network_fields(model_kwargs)
  return ml_collections.ConfigDict({
      'architecture': ARCHITECTURE,
      'release': fields,
      **interface_fields(fields),
  })


def is_release(model_config_: Any) -> bool:
  """Whether a codec `config.model` is the release's architecture."""
  return model_config_.get('architecture') == ARCHITECTURE


def check_interface(model_config_: Any) -> None:
  """Raises if the interface fields were edited away from `release`."""
  expected = interface_fields(dict(model_config_.release))
  differing = sorted(k for k, v in expected.items()
                     if model_config_.get(k) != v)
  if differing:
    raise ValueError(
        f'The release codec\'s model fields {differing} do not follow from '
        f'its `release` fields (expected {expected}); they are derived at '
        'import and must not be edited.')
