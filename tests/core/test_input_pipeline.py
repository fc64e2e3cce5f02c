"""Batches as a function of (seed, step), and exact padded evaluation."""
import jax
import numpy as np

from cvision.core import sharding
from cvision.core import input_pipeline
import ml_collections


def _source(n):
  return [{'x': np.full((2,), i, np.float32), 'label': np.int64(i)}
          for i in range(n)]


def _mesh():
  return sharding.make_mesh(ml_collections.ConfigDict(
      {'shape': (-1, 1), 'axes': ('data', 'model')}))


def test_step_s_batch_is_the_same_when_starting_at_s():
  dataset = input_pipeline.train_dataset(_source(10), global_batch_size=4,
                                         seed=3, keys=('x', 'label'))
  mesh_sharding = sharding.batch_sharding(_mesh())
  from_start = input_pipeline.train_iterator(dataset, start_step=0,
                                             sharding=mesh_sharding)
  batches = [np.asarray(next(from_start)['label']) for _ in range(6)]
  resumed = input_pipeline.train_iterator(dataset, start_step=4,
                                          sharding=mesh_sharding)
  np.testing.assert_array_equal(np.asarray(next(resumed)['label']), batches[4])
  # Each epoch of 10 examples (2 full batches of 4 + remainder) covers
  # distinct examples within a batch, and epochs are reshuffled.
  for b in batches:
    assert len(set(b.tolist())) == 4


def test_different_seeds_give_different_orders():
  a = input_pipeline.train_dataset(_source(10), global_batch_size=4, seed=0,
                                   keys=('label',))
  b = input_pipeline.train_dataset(_source(10), global_batch_size=4, seed=1,
                                   keys=('label',))
  assert any((a[i]['label'] != b[i]['label']).any() for i in range(5))


def test_eval_batches_cover_each_example_once_and_mark_padding():
  batches = list(input_pipeline.eval_batches(
      _source(10), global_batch_size=4, keys=('label',),
      sharding=sharding.batch_sharding(_mesh())))
  assert len(batches) == 3
  valid = np.concatenate([np.asarray(b[input_pipeline.VALID_KEY])
                          for b in batches])
  labels = np.concatenate([np.asarray(b['label']) for b in batches])
  assert valid.sum() == 10
  assert sorted(labels[valid].tolist()) == list(range(10))


def test_eval_batches_can_take_the_middle_clip():
  source = [{'video': np.arange(7, dtype=np.float32) + 10 * i,
             'label': np.int64(i)} for i in range(3)]
  crop = input_pipeline.center_temporal_crop(4, ('video',))
  # 7 frames, 4 kept: the surplus of 3 leaves 1 before and 2 after.
  np.testing.assert_array_equal(crop(source[0])['video'], [1, 2, 3, 4])
  batches = list(input_pipeline.eval_batches(
      source, global_batch_size=4, keys=('video', 'label'),
      sharding=sharding.batch_sharding(_mesh()), preprocess=crop))
  video = np.asarray(batches[0]['video'])
  assert video.shape == (4, 4)
  np.testing.assert_array_equal(video[2], [21, 22, 23, 24])
  np.testing.assert_array_equal(np.asarray(batches[0]['label'])[:3], [0, 1, 2])
  import pytest
  with pytest.raises(ValueError, match='shorter than the requested crop'):
    input_pipeline.center_temporal_crop(8, ('video',))(source[0])


def test_missing_keys_and_empty_splits_are_named():
  dataset = input_pipeline.train_dataset(_source(10), global_batch_size=2,
                                         seed=0, keys=('video',))
  try:
    dataset[0]
  except KeyError as e:
    assert 'video' in str(e) and 'label' in str(e)
  else:
    raise AssertionError('expected a KeyError')
  import pytest
  with pytest.raises(ValueError, match='empty'):
    input_pipeline.train_dataset([], global_batch_size=2, seed=0, keys=('x',))
  with pytest.raises(ValueError, match='fewer than the batch size'):
    input_pipeline.train_dataset(_source(3), global_batch_size=4, seed=0,
                                 keys=('x',))
