"""Collaborative memory over a code backbone (issue 40).

The tiny codec run of the session (`tiny_codec_run`: 8x32x32 -> 8x8x8 codes,
N=2, K=32) provides the frozen codebook; a code dataset of the `tiny` videos
is written once with the codec's `--mode=encode` path.
"""
import functools
import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvision import projects
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.core.train_state import TrainState
from cvision.projects.codec import modes as codec_modes
from cvision.projects.collab_memory import modes as cm_modes
from cvision.projects.collab_memory import task as cm_task
from experiments.configs import codec as codec_configs
from experiments.configs import collab_memory as cm_configs

O0 = {'xla_backend_optimization_level': 0}


@pytest.fixture(scope='module')
def tiny_codes(tiny_codec_run, data_dir, tmp_path_factory):
  """The `tiny` videos (64/16/16) as codes of the tiny codec."""
  config = codec_configs.get_config('tiny')
  config.data.data_dir = data_dir
  config.encode.output_dir = str(tmp_path_factory.mktemp('cm_codes'))
  return codec_modes.encode(config, tiny_codec_run)['output_dir']


def _config(presets, codec_workdir, dataset_dir, data_dir=''):
  config = cm_configs.get_config(presets)
  config.codec.workdir = codec_workdir
  config.data.dataset_dir = dataset_dir
  config.data.data_dir = data_dir
  return config


def _abstract(model, batch):
  variables = sharding.unbox(jax.eval_shape(model.task.init,
                                            jax.random.key(0), batch))
  params = variables.pop('params')
  return params, variables


def _codes_batch(batch_size=4, steps=8):
  rng = np.random.default_rng(0)
  return {'codes': jnp.asarray(rng.integers(0, 32, (batch_size, steps, 8, 8,
                                                    2)), jnp.uint8),
          'label': jnp.arange(batch_size, dtype=jnp.int32) % 8}


def test_codes_presets_build_the_s3d_codes_backbone(tiny_codec_run,
                                                     tmp_path):
  model = cm_task.build(_config('tiny,codes,cm', tiny_codec_run,
                                str(tmp_path)))
  assert model.task.input_keys == ('codes', 'label')
  assert model.task.time_keys == ('codes',)
  assert model.clip_length == 4  # Temporal stride 1: frames = code steps.
  backbone = cm_task.build_backbone(
      _config('tiny,codes', tiny_codec_run, str(tmp_path)),
      model.codec.spatial_factor)
  # Codes at 1/4 of the pixels: conv1 and pool1 lose their spatial strides,
  # and the first conv is s3d.py:codes's full 3x3x3.
  assert backbone.stem.strides == ((2, 1, 1), (1, 1, 1), (1, 2, 2),
                                   (2, 2, 2))
  assert not backbone.stem.conv1_separable
  assert backbone.stem.conv1_kernel == (3, 3, 3)
  assert backbone.input_correlation == 0 and backbone.head == 'none'
  motion = cm_task.build_backbone(
      _config('tiny,codes,motion', tiny_codec_run, str(tmp_path)), 4)
  assert motion.input_correlation == 1 and motion.input_correlation_only
  # RGB keeps S3D's own stem whatever the code fields say.
  rgb = cm_task.build_backbone(cm_configs.get_config('tiny'))
  assert rgb.stem == cm_task.s3d.StemConfig()


def test_codes_are_embedded_in_the_checkpoint_codebook(tiny_codec_run,
                                                       tmp_path):
  model = cm_task.build(_config('tiny,codes', tiny_codec_run, str(tmp_path)))
  codebook = model.codec.codebook
  codes = _codes_batch()['codes']
  x = np.asarray(model.network_input({}, codes))
  assert x.shape == (4, 8, 8, 8, 2 * 4)
  np.testing.assert_array_equal(x[..., :4], codebook[0][codes[..., 0]])
  np.testing.assert_array_equal(x[..., 4:], codebook[1][codes[..., 1]])


def test_video_scores_and_eval_shapes_on_codes(tiny_codec_run, tmp_path):
  # The motion input: its correlations are computed inside the backbone.
  model = cm_task.build(_config('tiny,codes,motion,cm', tiny_codec_run,
                                str(tmp_path)))
  batch = _codes_batch(batch_size=3)
  params, collections = _abstract(model, batch)
  scores = jax.eval_shape(model.video_scores, params, collections,
                          batch['codes'])
  assert scores.shape == (3, 8)
  per_video = jax.eval_shape(model.task.evaluate, params, collections, batch)
  assert {k: v.shape for k, v in per_video.items()} == {'top1': (3,),
                                                        'nll': (3,)}
  loss, (metrics, _) = jax.eval_shape(model.task.loss, params, collections,
                                      batch, jax.random.key(1))
  assert loss.shape == () and set(metrics) == {'loss', 'top1'}


def test_wrong_inputs_name_themselves(tiny_codec_run, tmp_path):
  config = _config('tiny', tiny_codec_run, str(tmp_path))
  config.input = 'reconstructions'
  with pytest.raises(ValueError, match=r"config.input='reconstructions': "
                     r"expected one of \('rgb', 'codes'\)"):
    projects.build_task(config)
  with pytest.raises(ValueError, match=r'--config\.data\.dataset_dir'):
    projects.build_task(_config('tiny,codes', tiny_codec_run, ''))
  with pytest.raises(ValueError, match=r'--config\.codec\.workdir'):
    projects.build_task(_config('tiny,codes', '', str(tmp_path)))
  with pytest.raises(ValueError, match="use 'codes,motion'"):
    cm_configs.get_config('tiny,motion')
  config = _config('tiny,codes', tiny_codec_run, str(tmp_path))
  config.model.code_corelation_radius = 1  # A typo is named.
  with pytest.raises(ValueError, match='code_corelation_radius'):
    projects.build_task(config)


def test_clip_frames_are_video_frames_cut_in_code_steps():
  assert cm_task.clip_length(8, None) == 8
  codec = types.SimpleNamespace(
      model_config=types.SimpleNamespace(temporal_stride=4), workdir='c')
  assert cm_task.clip_length(8, codec) == 2
  with pytest.raises(ValueError, match=r'clip_frames=6 frames is not a whole '
                     r'number of code steps .*temporal stride 4'):
    cm_task.clip_length(6, codec)


@pytest.mark.slow  # ~2.5 min of S3D compile on a loaded 2-core CPU.
def test_training_on_codes_lowers_the_loss_and_leaves_the_codebook(
    tiny_codec_run, tmp_path):
  model = cm_task.build(_config('tiny,codes,cm', tiny_codec_run,
                                str(tmp_path)))
  task = model.task
  codebook = model.codec.codebook.copy()
  batch = _codes_batch()
  tx = optax.adam(3e-3)
  init = jax.jit(lambda rng: sharding.unbox(task.init(rng, batch)),
                 compiler_options=O0)
  variables = dict(init(jax.random.key(0)))
  params = variables.pop('params')
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                     opt_state=tx.init(params), collections=variables,
                     rng=jax.random.key(1))
  step = jax.jit(functools.partial(
      train_step_lib.train_step, task=task, tx=tx, grad_accum_steps=1,
      dtype=jnp.float32), compiler_options=O0)
  losses = []
  for _ in range(10):
    state, metrics = step(state, batch)
    losses.append(float(metrics['loss']))
  assert np.isfinite(losses).all()
  # Random clip starts and batch norm over 4 videos make steps noisy:
  # compare the last few with the first.
  assert np.mean(losses[-3:]) < losses[0] - 0.3, losses
  paths = {jax.tree_util.keystr(p)
           for p, _ in jax.tree_util.tree_leaves_with_path(state)}
  assert not any('codebook' in p or 'vq_ema' in p for p in paths)
  np.testing.assert_array_equal(model.codec.codebook, codebook)


@pytest.mark.slow  # Two S3D compiles (train, eval) on a 2-core CPU.
def test_trains_and_evaluates_end_to_end_on_codes(tiny_codec_run, tiny_codes,
                                                  data_dir, tmp_path):
  workdir = str(tmp_path / 'cm_codes')
  config = _config('tiny,codes,cm', tiny_codec_run, tiny_codes, data_dir)
  projects.train(config, workdir)
  result = cm_modes.evaluate_with_flops(config, workdir)
  assert result['input'] == 'codes' and result['step'] == 2
  assert result['eval_clips'] == 2 and 0 <= result['top1'] <= 1
  assert np.isfinite(result['nll']) and result['gflops'] > 0
  with open(os.path.join(workdir, 'eval', 'collab_memory_test.json')) as f:
    assert json.load(f)['input'] == 'codes'
  with open(os.path.join(workdir, 'eval', 'collab_memory_test.md')) as f:
    assert '| cm_codes | codes | 2 | associative |' in f.read()
