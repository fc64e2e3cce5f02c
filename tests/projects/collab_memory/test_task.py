"""The video-level task: clip sampling, Eq. 1, and the two memory strategies."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvision.projects.collab_memory import task as task_lib
from data_pipelines.builders import moving_digits
from experiments.configs import collab_memory as configs
from tests.conftest import main_args, run_main

O0 = {'xla_backend_optimization_level': 0}


def test_one_start_per_segment():
  for seed in range(20):
    starts = np.asarray(task_lib.segment_clip_starts(
        jax.random.key(seed), num_frames=32, num_clips=4, clip_frames=8))
    # Starts 0..24 cut in 4 segments of 25/4 frames.
    edges = np.linspace(0, 25, 5)
    assert np.all(starts >= np.floor(edges[:-1]))
    assert np.all(starts < np.ceil(edges[1:]))
    assert starts.max() <= 24
  with pytest.raises(ValueError, match='shorter than the clips'):
    task_lib.segment_clip_starts(jax.random.key(0), 4, 2, 8)


def test_clips_inside_their_segments():
  seen = set()
  for seed in range(50):
    starts = np.asarray(task_lib.segment_clip_starts(
        jax.random.key(seed), num_frames=40, num_clips=4, clip_frames=8,
        sampling='segments'))
    # Segments [0, 10), [10, 20), [20, 30), [30, 40): starts 0-2, 10-12, ...
    np.testing.assert_array_less(np.array([-1, 9, 19, 29]), starts)
    np.testing.assert_array_less(starts, np.array([3, 13, 23, 33]))
    seen.update(int(s) - 10 * k for k, s in enumerate(starts))
  assert seen == {0, 1, 2}  # Every allowed offset comes up.
  # Segments exactly one clip long: the clips are the segments.
  np.testing.assert_array_equal(task_lib.segment_clip_starts(
      jax.random.key(0), 32, 4, 8, 'segments'), [0, 8, 16, 24])
  with pytest.raises(ValueError, match='segments of 7 frames, shorter than '
                     'the clips of 8'):
    task_lib.segment_clip_starts(jax.random.key(0), 28, 4, 8, 'segments')
  with pytest.raises(ValueError, match="clip sampling 'middle'"):
    task_lib.segment_clip_starts(jax.random.key(0), 32, 4, 8, 'middle')
  cm = configs.get_config('tiny,cm').cm
  cm.clip_sampling = 'middle'
  with pytest.raises(ValueError, match='config.cm.clip_sampling'):
    task_lib.check_cm_config(cm)


@pytest.mark.parametrize(
    'variant', ['odd_one_out', 'odd_translation', 'count_rotations'])
def test_dataset_presets_match_the_dataset_classes(variant):
  config = configs.get_config(f'finetune,cm,{variant}')
  builder_configs = {c.name: c
                     for c in moving_digits.MovingDigits.BUILDER_CONFIGS}
  generator = builder_configs[config.data.builder_kwargs.config].generator
  assert config.data.builder_kwargs.config == variant
  assert config.model.num_classes == len(generator.label_names)
  assert config.train.steps == 600
  want = 'segments' if variant == 'count_rotations' else 'starts'
  assert config.cm.clip_sampling == want


def test_gather_clips():
  videos = jnp.arange(2 * 10).reshape(2, 10)
  clips = task_lib.gather_clips(videos, jnp.array([0, 6]), 3)
  np.testing.assert_array_equal(clips[1, 1], [16, 17, 18])
  assert clips.shape == (2, 2, 3)


def test_video_level_loss_by_hand():
  logits = jnp.array([[[2.0, 0.0]], [[0.0, 0.0]]])  # N=2, B=1, K=2.
  labels = jnp.array([0])
  loss, video = task_lib.video_level_loss(logits, labels, 0.5)
  ce = lambda z: -jax.nn.log_softmax(z)[0]
  want = 0.5 * (ce(logits[0, 0]) + ce(logits[1, 0])) / 2 + ce(
      jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  np.testing.assert_allclose(video, [[1.0, 0.0]])


def _task(strategy, **cm):
  config = configs.get_config('tiny')
  config.cm.strategy = strategy
  for k, v in cm.items():
    config.cm[k] = v
  return task_lib.build_task(config)


@pytest.mark.slow  # float64 at -O0: ~2 min on 2 cores.
def test_batch_reduction_and_multi_iteration_agree():
  # In float64: in float32 the two differ by float reassociation (vmapped
  # against scanned convolutions), which batch norm over a few videos of
  # noise amplifies to 5% of the gradient on an AVX-512 CPU (under 1% on
  # earlier CI machines); in float64 they agree to 2e-4, what is left of the
  # parts the model computes in float32.
  with jax.enable_x64(True):
    batch = {'video': jnp.asarray(np.random.default_rng(0).integers(
        0, 255, (4, 8, 32, 32, 3)), jnp.uint8),
             'label': jnp.array([1, 3, 0, 7])}
    reduced, scanned = _task('batch_reduction'), _task('multi_iteration')
    variables = jax.jit(reduced.init)(jax.random.key(0), batch)
    variables = jax.tree.map(lambda x: x.astype(jnp.float64), variables)
    params = variables['params']
    collections = {k: v for k, v in variables.items() if k != 'params'}

    def run(task):
      fn = jax.jit(jax.value_and_grad(task.loss, has_aux=True))
      return fn.lower(params, collections, batch, jax.random.key(1)).compile(
          O0)(params, collections, batch, jax.random.key(1))

    (loss_a, (_, coll_a)), grads_a = run(reduced)
    (loss_b, (_, coll_b)), grads_b = run(scanned)
    assert jax.tree.leaves(grads_a)[0].dtype == jnp.float64
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-4)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                         atol=1e-6),
                 coll_a, coll_b)
    difference = optax.global_norm(jax.tree.map(jnp.subtract, grads_a,
                                                grads_b))
    assert difference < 2e-3 * optax.global_norm(grads_a)


def test_frozen_backbone_is_declared_to_the_optimizer():
  # A zero gradient is not enough: Adam would still take full-size steps on
  # the weight-decay term. The core leaves `Task.frozen` parameters alone.
  task = _task('batch_reduction', freeze_backbone=True)
  params = {'backbone': {'conv': jnp.zeros(2)}, 'head': {'dense': jnp.zeros(1)}}
  assert task.frozen(params) == {'backbone': {'conv': True},
                                 'head': {'dense': False}}
  assert _task('batch_reduction').frozen is None


@pytest.mark.slow  # ~2 min of S3D compile on a loaded 2-core CPU.
def test_frozen_backbone_gets_no_gradient():
  task = _task('batch_reduction', freeze_backbone=True)
  batch = {'video': jnp.zeros((2, 8, 32, 32, 3), jnp.uint8) + 100,
           'label': jnp.array([0, 1])}
  variables = jax.jit(task.init)(jax.random.key(0), batch)
  params = variables['params']
  collections = {k: v for k, v in variables.items() if k != 'params'}
  grads, _ = jax.jit(jax.grad(task.loss, has_aux=True)).lower(
      params, collections, batch, jax.random.key(1)).compile(O0)(
          params, collections, batch, jax.random.key(1))
  assert optax.global_norm(grads['backbone']) == 0
  assert optax.global_norm(grads['head']) > 0
  # Nor do its batch-norm statistics move: it runs in inference mode.
  _, (_, new_collections) = jax.jit(task.loss)(params, collections, batch,
                                               jax.random.key(1))
  jax.tree.map(np.testing.assert_array_equal, new_collections, collections)


@pytest.mark.slow
def test_binary_trains_stage_wise_evaluates_and_tabulates(tmp_path, data_dir):
  config = 'experiments/configs/collab_memory.py:tiny,'
  stage1, stage2 = tmp_path / 'single_clip', tmp_path / 'cm_stagewise'
  run_main(main_args(config + 'single_clip', stage1, data_dir), timeout=900)
  run_main(main_args(config + 'cm', stage2, data_dir,
                     f'--config.train.init_from.workdir={stage1}'),
           timeout=900)
  with open(stage2 / 'warm_start.json') as f:
    report = json.load(f)
  # The backbone and classifier come from stage 1; the memory is new.
  assert any("['backbone']" in k for k in report['copied'])
  assert report['kept'] and all("['memory']" in k for k in report['kept'])
  for workdir, preset in ((stage1, 'single_clip'), (stage2, 'cm')):
    run_main(main_args(config + preset, workdir, data_dir, '--mode=eval'),
             timeout=900)
  with open(stage2 / 'eval' / 'collab_memory_test.json') as f:
    row = json.load(f)
  assert row['memory'] == 'associative' and row['warm_start']
  assert row['gflops'] > row['backbone_gflops'] > 0
  proc = run_main(main_args(config + 'cm', tmp_path, data_dir,
                            '--mode=table'))
  assert '| cm_stagewise | 2 | associative | gating | stage-wise |' in (
      proc.stdout)
  assert '| single_clip | 1 | none | - | trained |' in proc.stdout
