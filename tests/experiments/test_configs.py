"""Each field and its default is written once: in experiments/configs/.

The modules have no defaults (a missing field is an error, not a silent
second default), and every config field a task maps onto a module is one
the module takes. Every preset of every config resolves.
"""
import dataclasses
import importlib
import re

import pytest

from cvision.core import config_utils
from cvision.models import s3d
from cvision.projects.augmenter import network as augmenter_network
from cvision.projects.codec import vqvae
from cvision.projects.collab_memory import task as cm_task
from cvision.projects.mpeg_stm import task as mpeg_task
from cvision.projects.mpeg_stm.stm import model as stm_model
from cvision.projects.past_future import network as past_future_model
from cvision.projects.s3d import task as s3d_task

CONFIGS = ('augmenter', 'autoencoder', 'codec', 'collab_memory', 'mpeg_stm',
           'past_future', 's3d')
# Fields a module may default: the compute dtype (set from
# train.compute_dtype by the task) and a numerical guard.
MAY_DEFAULT = {'dtype', 'epsilon'}


def _config_module(name):
  return importlib.import_module(f'experiments.configs.{name}')


def _get_config(name, preset):
  """The config of `preset`, with the presets it needs if it names them."""
  try:
    return _config_module(name).get_config(preset)
  except ValueError as e:  # e.g. "The 'motion' preset reads codes: use ..."
    needed = re.search(r"use '([\w,]+)'", str(e))
    if not needed:
      raise
    return _config_module(name).get_config(needed.group(1))


def _presets():
  for name in CONFIGS:
    for preset in _config_module(name).PRESETS:
      yield name, preset


@pytest.mark.parametrize('name,preset', list(_presets()))
def test_every_preset_resolves(name, preset):
  config = _get_config(name, preset)
  assert config.task


@pytest.mark.parametrize('module', [
    vqvae.VQVAE, vqvae.VectorQuantizer, s3d.S3D,
    augmenter_network.AugmentationNetwork, past_future_model.PastFutureModel,
    stm_model.CompressedVideoSTM])
def test_modules_write_no_defaults(module):
  defaulted = {f.name for f in dataclasses.fields(module)
               if f.name not in ('parent', 'name')
               and (f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING)}
  assert defaulted <= MAY_DEFAULT, (module.__name__, defaulted - MAY_DEFAULT)


def _model_fields(name, preset=''):
  return set(_get_config(name, preset).model)


@pytest.mark.parametrize('name,module,not_module', [
    ('codec', vqvae.VQVAE, set()),
    ('augmenter', augmenter_network.AugmentationNetwork, set()),
    ('past_future', past_future_model.PastFutureModel, set()),
    ('mpeg_stm', stm_model.CompressedVideoSTM,
     set(mpeg_task._NOT_MODULE_FIELDS)),  # pylint: disable=protected-access
])
def test_config_model_fields_are_the_module_fields(name, module, not_module):
  for preset in [''] + list(_config_module(name).PRESETS):
    fields = _model_fields(name, preset) - not_module
    assert fields == config_utils.module_fields(module) - MAY_DEFAULT, (
        name, preset)


def test_s3d_config_fields_are_the_ones_the_task_reads():
  for preset in [''] + list(_config_module('s3d').PRESETS):
    assert _model_fields('s3d', preset) == s3d_task.MODEL_FIELDS, preset


def test_cm_backbone_fields_are_s3d_fields():
  # The CM config's model is the backbone's: a subset of what S3D reads.
  assert _model_fields('collab_memory') <= s3d_task.MODEL_FIELDS
  backbone = cm_task.build_backbone(_config_module('collab_memory')
                                    .get_config('tiny'))
  assert backbone.head == 'none'


def test_s3d_defaults_agree_with_the_paper_preset():
  # The issue that motivated this file: dropout and width were written
  # three times with three values. Now there is one value, the config's.
  config = _config_module('s3d').get_config()
  model = s3d_task.build_model(config)
  assert model.dropout_rate == config.model.dropout_rate
  assert model.width_multiplier == config.model.width_multiplier
