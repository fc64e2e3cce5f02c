"""The augmenter task through the shared core, on the tiny codec."""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvision import projects
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.core.train_state import TrainState
from cvision.models import code_embedding
from cvision.projects.augmenter import task as augmenter_task
from data_pipelines import sources
from experiments.configs import augmenter as augmenter_configs


def _config(presets, codec_workdir, data_dir):
  config = augmenter_configs.get_config(presets)
  config.codec.workdir = codec_workdir
  config.data.data_dir = data_dir
  return config


def _batch(config, n=4):
  source = sources.load_source(config.data, 'train')
  return {'video': np.stack([source[i]['video'][:4] for i in range(n)])}


def _paths(tree):
  return {jax.tree_util.keystr(p) for p, _ in
          jax.tree_util.tree_leaves_with_path(tree)}


@pytest.fixture(scope='module')
def crop_task(tiny_codec_run, data_dir):
  config = _config('tiny,crop', tiny_codec_run, data_dir)
  # The paper's pixel loss alone: a few Adam steps on one batch lower it
  # (test_gradients_reach_only_the_augmenter), where the first steps on the
  # L1 code term overshoot; that term has its own test below.
  config.loss.code_target_weight = 0.0
  augmenter = augmenter_task.build(config)
  batch = _batch(config)
  variables = jax.jit(augmenter.task.init)(jax.random.PRNGKey(0), batch)
  return augmenter, batch, variables


def test_gradients_reach_only_the_augmenter(crop_task):
  augmenter, batch, variables = crop_task
  task = augmenter.task
  params = sharding.unbox(variables['params'])
  assert set(variables) == {'params'}  # No codec collection in the state.
  assert set(params) == {'mlp_0', 'mlp_1', 'mlp_out', 'transformer'}
  codec_before = jax.tree.map(np.copy, dict(augmenter.codec.variables))

  tx = optax.adam(3e-3)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                     opt_state=tx.init(params), collections={},
                     rng=jax.random.PRNGKey(1))
  step = jax.jit(functools.partial(train_step_lib.train_step, task=task,
                                   tx=tx, grad_accum_steps=1,
                                   dtype=jnp.float32))
  losses, changed = [], []
  for _ in range(4):
    new_state, metrics = step(state, batch)
    losses.append(float(metrics['loss']))
    changed.append({path for path, moved in _paths_where(jax.tree.map(
        lambda a, b: bool(jnp.any(a != b)), state.params, new_state.params))
                    if moved})
    state = new_state
  # At initialisation a(z, p) = z: only the zero-initialised output layer
  # has a gradient (Adam moves nothing else); from the second step on,
  # every augmenter parameter moves.
  assert changed[0] == {"['transformer']['out']['bias']",
                        "['transformer']['out']['kernel']"}
  assert changed[1] == _paths(params)
  assert np.isfinite(losses).all() and losses[-1] < losses[0]
  # The codec is a constant: its variables are untouched.
  jax.tree.map(np.testing.assert_array_equal, codec_before,
               dict(augmenter.codec.variables))


def _paths_where(tree):
  return [(jax.tree_util.keystr(p), v) for p, v in
          jax.tree_util.tree_leaves_with_path(tree)]


def test_evaluate_is_per_example_and_independent_of_the_batch(crop_task):
  augmenter, batch, variables = crop_task
  task = augmenter.task
  params = sharding.unbox(variables['params'])
  evaluate = jax.jit(task.evaluate)
  metrics = jax.device_get(evaluate(params, {}, batch))
  expected = {f'{m}{s}' for m in ('ssim', 'psnr', 'l1')
              for s in ('', '_plain', '_decode_then_augment', '_code_space')}
  assert set(metrics) == expected | {'still_motion', 'target_motion',
                                     'code_l1', 'code_l1_plain',
                                     'code_l1_code_space', 'motion_input_l1',
                                     'motion_input_l1_plain',
                                     'motion_input_l1_code_space'}
  assert all(v.shape == (4,) for v in metrics.values())
  # An untrained network is the identity: learned = plain reconstruction
  # (up to the 256-level rounding of the plain decode) ...
  np.testing.assert_allclose(metrics['ssim'], metrics['ssim_plain'],
                             atol=0.02)
  # ... its latents are the plain ones, as far from the target's codes;
  np.testing.assert_allclose(metrics['code_l1'], metrics['code_l1_plain'],
                             rtol=1e-5)
  assert np.all(metrics['code_l1'] > 0)
  np.testing.assert_allclose(metrics['motion_input_l1'],
                             metrics['motion_input_l1_plain'], rtol=1e-5)
  # ... and a still clip's codes decode to a still clip: it invents no
  # motion, while the moving clips' targets move.
  np.testing.assert_allclose(metrics['still_motion'], 0.0, atol=1e-6)
  assert np.all(metrics['target_motion'] > 1e-3)
  # Each clip's parameters come from its own pixels, not its batch slot.
  reordered = jax.device_get(
      evaluate(params, {}, {'video': batch['video'][::-1]}))
  np.testing.assert_allclose(reordered['ssim'], metrics['ssim'][::-1],
                             rtol=1e-5)


def test_motion_input_l1_compares_directions_not_magnitudes():
  rng = np.random.default_rng(0)
  latents = jnp.asarray(rng.normal(size=(2, 3, 4, 4, 5)), jnp.float32)
  # Rescaled latents keep every cosine similarity: the motion input is the
  # same, though the latents are not.
  np.testing.assert_allclose(
      augmenter_task._motion_input_l1(3.0 * latents, latents), 0.0,
      atol=1e-6)
  assert np.all(augmenter_task._latent_l1(3.0 * latents, latents) > 1)
  # Every other frame negated turns each similarity s (frame t against
  # t + 1) into -s: the L1 is the mean of 2|s|.
  alternating = latents * jnp.asarray([1.0, -1.0, 1.0])[None, :, None, None,
                                                        None]
  corr = code_embedding.temporal_correlation(latents, 1)
  np.testing.assert_allclose(
      augmenter_task._motion_input_l1(alternating, latents),
      2 * np.mean(np.abs(corr), axis=(1, 2, 3, 4)), rtol=1e-5)


def test_code_target_weight_adds_the_distance_to_the_targets_codes(
    tiny_codec_run, data_dir):
  config = _config('tiny,crop', tiny_codec_run, data_dir)
  batch = _batch(config)
  rng = jax.random.PRNGKey(3)
  results = {}
  for weight in (0.0, 0.5):
    config.loss.code_target_weight = weight
    task = projects.build_task(config)
    variables = jax.jit(task.init)(jax.random.PRNGKey(0), batch)
    params = sharding.unbox(variables['params'])
    loss, (metrics, _) = jax.jit(task.loss)(params, {}, batch, rng)
    results[weight] = float(loss), jax.device_get(metrics)
  plain_loss, plain_metrics = results[0.0]
  loss, metrics = results[0.5]
  assert set(plain_metrics) == {'l1'} and set(metrics) == {'l1', 'code_l1'}
  assert metrics['code_l1'] > 0
  np.testing.assert_allclose(plain_loss, plain_metrics['l1'], rtol=1e-6)
  np.testing.assert_allclose(loss, metrics['l1'] + 0.5 * metrics['code_l1'],
                             rtol=1e-5)
  config.loss.code_target_weight = -1.0
  with pytest.raises(ValueError, match='code_target_weight=-1.0'):
    projects.build_task(config)


def test_frame_change_is_the_mean_step_between_frames():
  video = np.zeros((2, 3, 2, 2, 3), np.float32)
  video[0, 1:] = 0.5  # Frames 0, 0.5, 0.5: steps 0.5 and 0.
  video[1] = np.arange(3)[:, None, None, None] * 0.1  # Steps of 0.1.
  np.testing.assert_allclose(
      augmenter_task.frame_change(jnp.asarray(video)), [0.25, 0.1],
      rtol=1e-6)
  assert float(augmenter_task.frame_change(jnp.ones((1, 1, 2, 2, 3)))[0]) == 0


def test_missing_codec_is_named(data_dir):
  config = _config('tiny,crop', '', data_dir)
  with pytest.raises(ValueError, match='--config.codec.workdir'):
    projects.build_task(config)
  config = _config('tiny', '', data_dir)
  config.augment.family = 'zoom'
  with pytest.raises(ValueError, match="family 'zoom'"):
    projects.build_task(config)


def test_binary_trains_and_writes_the_quality_report(tiny_augmenter_run,
                                                     tiny_codec_run,
                                                     data_dir):
  workdir = tiny_augmenter_run  # Trained by the binary (conftest).
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '2'))
  config = _config('tiny,crop', tiny_codec_run, data_dir)
  projects.modes(config)['eval'](config, workdir)
  with open(os.path.join(workdir, 'eval', 'augmenter_test.json')) as f:
    result = json.load(f)
  (row,) = result['rows']
  assert row['family'] == 'crop' and row['num_videos'] == 4
  for key in ('ssim', 'ssim_plain', 'ssim_decode_then_augment',
              'ssim_code_space'):
    assert -1 <= row[key] <= 1
  assert row['still_motion'] >= 0 and row['target_motion'] > 0
  with open(os.path.join(workdir, 'eval', 'augmenter_test.md')) as f:
    text = f.read()
  assert '| crop |' in text and 'still-clip motion' in text
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grid = Image.open(os.path.join(workdir, 'eval', 'crop_grid.png'))
  # 2 videos x 5 rows (original, A(X;p), learned, plain, NN crop) of 32 px.
  assert grid.size[1] == 2 * 5 * 34 + 2 - 2


def test_rotation_targets_follow_the_configured_fill(tiny_codec_run,
                                                     data_dir):
  # The loss's and the report's target A(X; p) both come from
  # `augment.rotation_fill`: black corners only when asked for.
  video = jnp.full((1, 4, 32, 32, 3), 0.7, jnp.float32)
  angle = jnp.full((1, 1), np.pi / 4, jnp.float32)
  corners = {}
  for fill in ('reflect', 'black'):
    config = _config('tiny,rotation', tiny_codec_run, data_dir)
    config.augment.rotation_fill = fill
    augmenter = augmenter_task.build(config)
    variables = augmenter.task.init(jax.random.PRNGKey(0), {'video': video})
    out = augmenter.compare(sharding.unbox(variables['params']), video,
                            angle, 'rotation')
    corners[fill] = np.asarray(out['target'])[0, :, 0, 0]
  np.testing.assert_allclose(corners['reflect'], 0.7, atol=1e-5)
  np.testing.assert_allclose(corners['black'], 0.0, atol=1e-6)
