"""The S3D classification task on pixels, codes and decoded codes.

A real (2-step) tiny codec run provides the frozen codebook and decoder, so
the checkpoint loader is the one users get. Training steps are compiled at
XLA optimisation level 0, which halves the CPU compile time of S3D's graph.
"""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from cvision import projects
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.core.train_state import TrainState
from cvision.projects.s3d import task as s3d_task
from data_pipelines import sources
from experiments.configs import s3d as s3d_configs
from tests.conftest import main_args, run_main

O0 = {'xla_backend_optimization_level': 0}


@pytest.fixture(scope='module')
def codec_run(tiny_codec_run):
  return tiny_codec_run


def _config(presets, codec_workdir='', **model):
  config = s3d_configs.get_config(presets)
  config.codec.workdir = codec_workdir
  if codec_workdir:
    # No code dataset is read here: batches are built by hand.
    config.data.dataset_dir = os.path.join(codec_workdir, 'no_codes_here')
  config.model.update(model)
  return config


def _checkpoint_codebook(workdir):
  """The codebook read independently of the task's loader."""
  path = os.path.join(workdir, 'checkpoints', '1', 'state')
  checkpointer = ocp.StandardCheckpointer()
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
      checkpointer.metadata(path).item_metadata.tree)
  state = checkpointer.restore(path, target)
  return np.asarray(state['collections']['vq_ema']['quantizer']['codebook'])


def _train(task, batch, steps=12, lr=3e-3):
  """Adam steps through the core's train step on one fixed batch."""
  tx = optax.adam(lr)
  init = jax.jit(lambda rng: sharding.unbox(task.init(rng, batch)),
                 compiler_options=O0)
  variables = dict(init(jax.random.PRNGKey(0)))
  params = variables.pop('params')
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                     opt_state=tx.init(params), collections=variables,
                     rng=jax.random.PRNGKey(1))
  step = jax.jit(functools.partial(
      train_step_lib.train_step, task=task, tx=tx, grad_accum_steps=1,
      dtype=jnp.float32), compiler_options=O0)
  losses = []
  for _ in range(steps):
    state, metrics = step(state, batch)
    losses.append(float(metrics['loss']))
  return state, metrics, losses


def _paths(tree):
  return {jax.tree_util.keystr(p) for p, _ in
          jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.parametrize('preset', ['codes', 'reconstructions'])
def test_codec_inputs_need_the_codes_and_their_codec(preset, tmp_path):
  with pytest.raises(ValueError, match=r'--config\.data\.dataset_dir'):
    projects.build_task(_config(f'tiny,{preset}'))
  # A dataset whose metadata does not name its codec needs it passed.
  config = _config(f'tiny,{preset}')
  config.data.dataset_dir = str(tmp_path)
  with pytest.raises(ValueError, match=r'--config\.codec\.workdir'):
    projects.build_task(config)


def test_config_presets_and_input_keys():
  config = s3d_configs.get_config('tiny,codes')
  assert (config.task, config.input) == ('s3d_classification', 'codes')
  assert config.codec.workdir == '' and config.data.batch_size == 4
  with pytest.raises(ValueError, match='Unknown preset'):
    s3d_configs.get_config('tiny,cods')
  assert projects.build_task(_config('tiny')).input_keys == ('video', 'label')
  frame = projects.build_task(_config('tiny', head='frame'))
  assert frame.input_keys == ('video', 'frame_labels')
  with pytest.raises(ValueError, match='widht'):
    projects.build_task(_config('tiny', widht=1))
  assert 'eval' in projects.modes(config)


def test_codes_embed_as_rows_of_the_checkpoint_codebook(codec_run):
  classifier = s3d_task.build(_config('tiny,codes', codec_run))
  assert classifier.task.input_keys == ('codes', 'label')
  codebook = classifier.codec.codebook
  np.testing.assert_array_equal(codebook, _checkpoint_codebook(codec_run))
  n, k, d = codebook.shape
  assert (n, k, d) == (2, 32, 4)
  codes = np.random.default_rng(0).integers(0, k, (2, 3, 4, 4, n), np.uint8)
  x = np.asarray(classifier.network_input({}, jnp.asarray(codes)))
  assert x.shape == (2, 3, 4, 4, n * d)
  for i in range(n):
    np.testing.assert_array_equal(x[..., i * d:(i + 1) * d],
                                  codebook[i][codes[..., i]])
  # The codec downsamples by 4: the stem drops conv1's and pool1's strides.
  stem = classifier.model.stem
  assert stem.strides == ((2, 1, 1), (1, 1, 1), (1, 2, 2), (2, 2, 2))


def test_stem_conv1_separable_reaches_both_stems(codec_run):
  """config.model.stem_conv1_separable=False: a full first conv, same strides."""
  codes = s3d_task.build(_config('tiny,codes', codec_run)).model
  assert not codes.stem.conv1_separable  # The codes preset's default.
  assert codes.stem.conv1_kernel == (3, 3, 3)
  rgb = s3d_task.build(_config('tiny')).model
  assert rgb.stem.conv1_separable  # S3D's own stem.
  for presets, codec in (('tiny', ''), ('tiny,codes', codec_run)):
    separable = s3d_task.build(_config(
        presets, codec, stem_conv1_separable=True)).model
    full = s3d_task.build(_config(
        presets, codec, stem_conv1_separable=False,
        stem_conv1_kernel=(3, 3, 3))).model
    assert separable.stem.conv1_separable and not full.stem.conv1_separable
    assert full.stem.conv1_kernel == (3, 3, 3)
    assert full.stem.strides == separable.stem.strides


def test_code_correlation_reaches_the_codes_model_only(codec_run):
  codes = s3d_task.build(_config('tiny,codes', codec_run)).model
  assert codes.input_correlation == 0  # Off unless asked for.
  codes = s3d_task.build(_config('tiny,codes', codec_run,
                                 code_correlation_radius=1))
  assert codes.model.input_correlation == 1
  rgb = s3d_task.build(_config('tiny', code_correlation_radius=1))
  assert rgb.model.input_correlation == 0
  only = s3d_task.build(_config('tiny,codes,motion', codec_run))
  assert only.model.input_correlation_only
  assert only.model.input_correlation == 1
  with pytest.raises(ValueError, match="use 'codes,motion'"):
    s3d_configs.get_config('tiny,motion')
  with pytest.raises(ValueError, match='code_correlation_radius >= 1'):
    projects.build_task(_config('tiny,codes', codec_run,
                             code_correlation_only=True))


def test_codes_are_read_with_the_codec_checkpoint_that_wrote_them(
    codec_run, tmp_path):
  config = _config('tiny,codes', codec_run)
  config.data.dataset_dir = str(tmp_path)
  metadata = {'codec_workdir': codec_run, 'codec_checkpoint_step': 1,
              'num_codebooks': 2, 'codebook_size': 32}
  with open(tmp_path / 'metadata.json', 'w') as f:
    json.dump(metadata, f)
  assert s3d_task.build(config).codec.step == 1
  with open(tmp_path / 'metadata.json', 'w') as f:
    json.dump(dict(metadata, codec_checkpoint_step=7), f)
  with pytest.raises(FileNotFoundError, match='step 7 is not in'):
    projects.build_task(config)
  with open(tmp_path / 'metadata.json', 'w') as f:
    json.dump(dict(metadata, codebook_size=64), f)
  with pytest.raises(ValueError, match=r'\(N, K\) = \(2, 64\)'):
    projects.build_task(config)


def test_training_on_codes_lowers_the_loss_and_leaves_the_codebook(codec_run):
  classifier = s3d_task.build(_config('tiny,codes', codec_run))
  task = classifier.task
  codebook = classifier.codec.codebook.copy()
  rng = np.random.default_rng(0)
  batch = {'codes': jnp.asarray(rng.integers(0, 32, (4, 8, 8, 8, 2)),
                                jnp.uint8),
           'label': jnp.asarray([0, 1, 2, 3], jnp.int32)}
  state, metrics, losses = _train(task, batch)
  assert np.isfinite(losses).all()
  # BatchNorm over 4 examples at 1x1x1 makes single steps noisy: compare
  # the last few with the first.
  assert np.mean(losses[-3:]) < losses[0] - 0.3, losses
  assert set(metrics) >= {'loss', 'top1', 'top5', 'grad_norm'}
  # Frozen: not a parameter, not in the state, not changed by training.
  shapes = {tuple(x.shape) for x in jax.tree.leaves(state)}
  assert codebook.shape not in shapes
  assert not any('codebook' in p or 'vq_ema' in p for p in _paths(state))
  assert set(state.collections) == {'batch_stats'}
  np.testing.assert_array_equal(classifier.codec.codebook, codebook)


def test_training_on_rgb_lowers_the_loss(data_dir):
  config = _config('tiny')
  config.data.data_dir = data_dir
  source = sources.load_source(config.data, 'train')
  examples = [source[i] for i in range(4)]
  batch = {k: jnp.asarray(np.stack([e[k] for e in examples]))
           for k in ('video', 'label')}
  assert batch['video'].dtype == jnp.uint8
  _, _, losses = _train(projects.build_task(config), batch)
  assert np.isfinite(losses).all()
  assert np.mean(losses[-3:]) < losses[0] - 0.3, losses


def test_reconstructions_are_decoded_frames(codec_run):
  classifier = s3d_task.build(_config('tiny,reconstructions', codec_run))
  assert classifier.task.input_keys == ('codes', 'label')
  assert classifier.model.stem == s3d_task.s3d.StemConfig()
  codes = jnp.asarray(np.random.default_rng(0).integers(0, 32, (1, 8, 8, 8,
                                                                2)), jnp.uint8)
  video = np.asarray(classifier.network_input({}, codes))
  assert video.shape == (1, 8, 32, 32, 3)
  assert 0 <= video.min() and video.max() <= 1
  # The levels of a decoded uint8 video.
  np.testing.assert_allclose(video * 255, np.round(video * 255), atol=1e-4)


def test_confusion_one_hots_sum_to_true_against_top1():
  labels = np.array([0, 1, 1, 2])
  logits = np.array([[5., 0, 0], [0, 0, 9], [0, 1, 0], [1, 0, 3]])
  one_hot = np.asarray(s3d_task.confusion_one_hot(logits, labels))
  assert one_hot.shape == (4, 3, 3)
  np.testing.assert_array_equal(one_hot.sum(0),
                                [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


def test_frame_head_logits_and_metrics_are_per_frame():
  task = projects.build_task(_config('tiny', head='frame', num_classes=5))
  batch = {'video': jnp.zeros((2, 6, 32, 32, 3), jnp.uint8),
           'frame_labels': jnp.zeros((2, 6), jnp.int32)}
  variables = jax.eval_shape(task.init, jax.random.PRNGKey(0), batch)
  variables = sharding.unbox(variables)
  params = variables.pop('params')
  logits = jax.eval_shape(task.predict, params, variables, batch)
  assert logits.shape == (2, 6, 5)  # One row per input frame.
  per_example = jax.eval_shape(task.evaluate, params, variables, batch)
  assert {k: v.shape for k, v in per_example.items()} == {
      'loss': (2,), 'frame_accuracy': (2,), 'frame_top5': (2,)}

  labels = jnp.asarray([[0, 1, 2, 3], [4, 4, 4, 4]])
  hits = jax.nn.one_hot(jnp.asarray([[0, 1, 0, 0], [4, 4, 4, 0]]), 5)
  metrics = s3d_task.per_example_metrics(10 * hits, labels)
  np.testing.assert_allclose(metrics['frame_accuracy'], [0.5, 0.75])
  # Logits at half the frame rate are repeated onto the frames.
  coarse = s3d_task.per_example_metrics(10 * hits[:, ::2], labels)
  np.testing.assert_allclose(coarse['frame_accuracy'], [0.25, 1.0])
  # Masked frames (NaN logits from multi-clip gaps) are left out.
  gappy = (10 * hits).at[:, 2:].set(jnp.nan)
  masked = s3d_task.per_example_metrics(
      gappy, labels, ~jnp.isnan(gappy[..., 0]))
  np.testing.assert_allclose(masked['frame_accuracy'], [1.0, 1.0])
  assert np.isfinite(masked['loss']).all()


@pytest.mark.slow
def test_binary_trains_on_codes_and_evaluates_clips(tmp_path, data_dir):
  """Codec train + encode, then S3D on the codes: train and --mode=eval."""
  codec = str(tmp_path / 'codec')
  run_main(main_args('experiments/configs/codec.py:tiny', codec, data_dir,
                     '--config.train.steps=1'))
  run_main(main_args('experiments/configs/codec.py:tiny', codec, data_dir,
                     '--mode=encode'))
  workdir = str(tmp_path / 's3d')
  args = main_args('experiments/configs/s3d.py:tiny,codes', workdir, data_dir,
                   f'--config.codec.workdir={codec}',
                   '--config.data.dataset_dir='
                   f'{codec}/codes/moving_digits_tiny')
  run_main(args)
  run_main(args + ['--mode=eval'])
  with open(os.path.join(workdir, 'eval', 's3d_test.json')) as f:
    result = json.load(f)
  assert [r['num_clips'] for r in result['rows']] == [1, 2]
  assert result['clip_frames'] == 4 and result['num_videos'] == 4
  assert all(0 <= r['top1'] <= r['top5'] <= 1 for r in result['rows'])
  for row in result['rows']:  # Its diagonal is top-1.
    confusion = np.asarray(row['confusion'])
    assert confusion.shape == (8, 8) and confusion.sum() == 4
    assert np.trace(confusion) / 4 == pytest.approx(row['top1'])
  with open(os.path.join(workdir, 'eval', 's3d_test.md')) as f:
    assert "| translate_right |" in f.read()  # Rows named by the dataset.
  assert "translate_right" in result["table"]  # The JSON has it too.
