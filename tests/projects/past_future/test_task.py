"""The past-future task: labels, crops, gradient aggregation, binary."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvision.projects.past_future import task as pf
from experiments.configs import past_future as configs
from tests.conftest import run_main
from tests.conftest import TINY_CHUNK_FRAMES, TINY_CHUNKS


def _config(dataset_dir, preset='tiny,slot', **task_fields):
  config = configs.get_config(preset)
  config.data.dataset_dir = dataset_dir
  for k, v in task_fields.items():
    config.past_future[k] = v
  return config


def test_query_labels_say_past_when_already_observed():
  plan = pf.plan_queries(jax.random.key(0), 6, 3, 5)
  assert plan.chunks.shape == plan.labels.shape == (6, 3, 5)
  assert plan.crop_keys.shape[:2] == (6, 3)
  steps = np.arange(6)[:, None, None]
  np.testing.assert_array_equal(plan.labels, plan.chunks <= steps)
  assert plan.chunks.min() >= 0 and plan.chunks.max() <= 5
  # Queries come from the whole video, past and future alike.
  assert set(np.unique(plan.chunks)) == set(range(6))
  # Hand-checked: at step 1 of 4 chunks, chunks 0, 1 are past, 2, 3 future.
  labels = np.arange(4)[None, :] <= np.arange(4)[:, None]
  np.testing.assert_array_equal(labels[1], [True, True, False, False])
  metrics = pf.per_video_metrics(
      jnp.asarray([[[2.0, -1.0]], [[-3.0, 1.0]]]),  # [C=2, B=1, Q=2]
      jnp.asarray([[[True, False]], [[True, True]]]))
  # Right: (0,0) past, (0,1) future, (1,1) past; wrong: (1,0).
  assert float(metrics['accuracy'][0]) == 0.75
  assert float(metrics['accuracy_past'][0]) == pytest.approx(2 / 3)
  assert float(metrics['accuracy_future'][0]) == 1.0
  assert float(metrics['accuracy_first_half'][0]) == 1.0
  assert float(metrics['accuracy_second_half'][0]) == 0.5
  # Step-balanced: only step 0 has both kinds; there past and future are
  # both right -> 1.0.
  assert float(metrics['accuracy_step_balanced'][0]) == 1.0


def test_counting_steps_scores_three_quarters_but_half_step_balanced():
  num_chunks = 100
  steps = np.arange(num_chunks)[:, None, None]
  queries = np.arange(num_chunks)[None, None, :]  # Every chunk, every step.
  labels = queries <= steps  # [C, 1, C]
  # Past iff t >= C/2, whatever the query.
  logits = np.where(steps >= num_chunks // 2, 1.0, -1.0) * np.ones_like(
      labels, np.float32)
  metrics = pf.per_video_metrics(jnp.asarray(logits), jnp.asarray(labels))
  assert float(metrics['accuracy'][0]) == pytest.approx(0.75, abs=0.01)
  assert float(metrics['accuracy_step_balanced'][0]) == 0.5
  # A perfect recogniser scores 1 on both.
  perfect = pf.per_video_metrics(jnp.asarray(np.where(labels, 1.0, -1.0)),
                                 jnp.asarray(labels))
  assert float(perfect['accuracy_step_balanced'][0]) == 1.0


def test_near_and_far_split_queries_by_distance_from_the_step():
  # C=3 steps, one video, 2 queries each; near = at most 1 chunk away.
  chunks = np.asarray([[0, 2], [0, 2], [0, 1]])[:, None, :]
  labels = chunks <= np.arange(3)[:, None, None]
  # Wrong only on (step 0, query chunk 2) (distance 2: far) and
  # (step 2, query chunk 1) (distance 1: near).
  right = np.ones((3, 1, 2), bool)
  right[0, 0, 1] = right[2, 0, 1] = False
  logits = np.where(labels == right, 1.0, -1.0)
  metrics = pf.per_video_metrics(jnp.asarray(logits), jnp.asarray(labels),
                                 jnp.asarray(chunks), near_chunks=1)
  # Distances: step 0 -> 0, 2; step 1 -> 1, 1; step 2 -> 2, 1.
  # Near: 4 queries, 1 wrong; far: 2 queries, 1 wrong.
  assert float(metrics['accuracy_near'][0]) == 0.75
  assert float(metrics['accuracy_far'][0]) == 0.5
  assert float(metrics['accuracy'][0]) == pytest.approx(4 / 6)
  # Without the query chunks the split is not reported.
  assert 'accuracy_near' not in pf.per_video_metrics(
      jnp.asarray(logits), jnp.asarray(labels))


def test_query_crops_are_nearest_neighbour_crops_of_the_grid():
  codes = jnp.arange(8 * 8).reshape(1, 1, 8, 8, 1).astype(jnp.uint8)
  codes = jnp.tile(codes, (3, 2, 1, 1, 2))  # [3 queries, 2 frames, 8, 8, 2]
  same = pf.crop_codes(codes, jax.random.key(0), (1.0, 1.0))
  np.testing.assert_array_equal(same, codes)
  half = np.asarray(pf.crop_codes(codes, jax.random.key(1), (0.5, 0.5)))
  assert half.shape == codes.shape and half.dtype == np.uint8
  for crop in half:
    grid = crop[0, :, :, 0].astype(int)
    # Each code of a 4x4 window fills 2x2 cells: rows y0, y0, y0+1, ...
    y0, x0 = divmod(int(grid[0, 0]), 8)
    rows = y0 + np.array([0, 0, 1, 1, 2, 2, 3, 3])
    cols = x0 + np.array([0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(grid, (rows[:, None] * 8 + cols[None]))
    np.testing.assert_array_equal(crop[1], crop[0])  # Same crop each frame.


def test_block_size_divides_the_chunks():
  assert [pf.block_size(c, 8) for c in (360, 6, 7, 1)] == [8, 6, 7, 1]
  assert pf.block_size(13, 8) == 1


def _train_batch(dataset_dir):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  source = tfds.builder_from_directory(dataset_dir).as_data_source('train')
  return {k: jnp.stack([jnp.asarray(source[i][k]) for i in range(2)])
          for k in ('codes', 'video_index')}


@pytest.mark.parametrize('memory', [
    'slot', pytest.param('lstm', marks=pytest.mark.slow)])
def test_gradient_is_the_sum_of_per_chunk_gradients(tiny_long_codes, memory):
  model = pf.build(_config(tiny_long_codes, f'tiny,{memory}',
                           chunks_per_block=3))
  task = model.task
  batch = _train_batch(tiny_long_codes)
  params = task.init(jax.random.key(0), batch)['params']
  rng = jax.random.key(5)
  (loss, (metrics, _)), grads = jax.jit(jax.value_and_grad(
      lambda p: task.loss(p, {}, batch, rng), has_aux=True))(params)

  # The definition: each chunk's loss differentiated on its own, with the
  # memory of earlier chunks held fixed, one chunk at a time.
  runner = model.runner
  codes, plan = model.training_queries(batch['codes'], rng)
  chunks = pf.split_chunks(codes, TINY_CHUNK_FRAMES)
  step_grad = jax.jit(jax.value_and_grad(runner.step_loss, has_aux=True))
  state = runner.initial_memory(params, 2, TINY_CHUNKS)
  total, losses = None, []
  for t in range(TINY_CHUNKS):
    (step_loss, (state, _)), g = step_grad(params, state, chunks, plan, t)
    total = g if total is None else jax.tree.map(jnp.add, total, g)
    losses.append(float(step_loss))
  expected = jax.tree.map(lambda g: g / TINY_CHUNKS, total)
  assert float(loss) == pytest.approx(np.mean(losses), rel=1e-5)
  assert float(metrics['loss']) == pytest.approx(np.mean(losses), rel=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4,
                                                       atol=1e-6),
               grads, expected)
  assert float(optax.tree.norm(grads)) > 0


def test_bad_configs_are_named(tiny_long_codes):
  with pytest.raises(ValueError, match='dataset_dir'):
    pf.build_task(_config(''))
  config = _config(tiny_long_codes)
  config.model.memory = 'gru'
  with pytest.raises(ValueError, match="memory='gru'"):
    pf.build_task(config)
  with pytest.raises(ValueError, match='crop_scale'):
    pf.build_task(_config(tiny_long_codes, crop_scale=(0.0, 1.0)))
  batch = _train_batch(tiny_long_codes)
  task = pf.build_task(_config(tiny_long_codes, chunk_frames=5))
  with pytest.raises(ValueError, match='not a whole number of chunks'):
    task.init(jax.random.key(0), batch)
  task = pf.build_task(_config(tiny_long_codes, video_frames=45_000))
  with pytest.raises(ValueError, match='video_frames=45000'):
    task.init(jax.random.key(0), batch)


def test_train_and_eval_through_the_binary(tiny_long_codes,
                                           tiny_long_codes_test_only,
                                           tmp_path):
  workdir = str(tmp_path / 'run')
  args = ['--config=experiments/configs/past_future.py:tiny,slot',
          f'--workdir={workdir}',
          f'--config.data.dataset_dir={tiny_long_codes}']
  run_main(args)
  result = json.load(open(os.path.join(workdir, 'train_result.json')))
  assert result['step'] == 2
  assert 0 <= result['eval']['accuracy'] <= 1
  run_main(args + ['--mode=eval'])
  table = open(os.path.join(workdir, 'eval', 'past_future_test.md')).read()
  assert '| slot |' in table
  evaluated = json.load(open(os.path.join(workdir, 'eval_test.json')))
  # Evaluation queries are a function of the video, not of the run.
  assert evaluated['metrics']['accuracy'] == pytest.approx(
      result['eval']['accuracy'])
  # A dataset holding only a test split evaluates too (the state's input
  # shapes come from the evaluated split), with the same result.
  run_main(args[:2] + [f'--config.data.dataset_dir={tiny_long_codes_test_only}',
                       '--mode=eval'])
  test_only = json.load(open(os.path.join(workdir, 'eval_test.json')))
  assert test_only['metrics'] == pytest.approx(evaluated['metrics'])
