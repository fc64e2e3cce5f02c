"""Tests for the moving_digits TFDS builder (tiny config, array_record)."""

import numpy as np
import pytest

from data_pipelines.builders import moving_digits
from data_pipelines.generated import moving_digits as md


def _build(data_dir):
  builder = moving_digits.MovingDigits(
      config='tiny', data_dir=data_dir, file_format='array_record')
  builder.download_and_prepare()
  return builder


@pytest.fixture(scope='module')
def tiny_builder(tmp_path_factory):
  return _build(tmp_path_factory.mktemp('tfds'))


def test_splits_and_features(tiny_builder):
  splits = tiny_builder.info.splits
  assert {name: splits[name].num_examples for name in splits} == {
      'train': 64, 'validation': 16, 'test': 16}
  assert tiny_builder.info.features['label'].names == list(md.CLASS_NAMES)
  train = tiny_builder.as_data_source(split='train')
  assert len(train) == 64
  ex = train[0]
  assert ex['video'].shape == (8, 32, 32, 3) and ex['video'].dtype == np.uint8
  assert ex['frame_labels'].shape == (8,)
  assert ex['frame_labels'].dtype == np.int32
  assert 0 <= ex['label'] < 8
  assert (ex['frame_labels'] == ex['label']).all()
  assert ex['video_id'].decode().startswith('train_')


def test_examples_come_from_the_generator(tiny_builder):
  config = tiny_builder.builder_config
  seeds = {name: seed for name, _, seed in config.splits}
  assert len(set(seeds.values())) == 3  # Each split has its own seed.
  test = tiny_builder.as_data_source(split='test')
  for i in range(3):
    ex = test[i]
    index = int(ex['video_id'].decode().split('_')[1])
    expected = md.generate_example(config.generator, seeds['test'], index)
    assert ex['video'].tobytes() == expected['video'].tobytes()
    assert ex['label'] == expected['label']


def test_rebuild_is_byte_identical(tiny_builder, tmp_path):
  other = _build(tmp_path)
  for split in ('train', 'validation', 'test'):
    a = tiny_builder.as_data_source(split=split)
    b = other.as_data_source(split=split)
    assert len(a) == len(b)
    for i in range(len(a)):
      assert a[i]['video_id'] == b[i]['video_id']
      assert a[i]['video'].tobytes() == b[i]['video'].tobytes()
      assert a[i]['label'] == b[i]['label']
  # The record files themselves are identical too.
  for path in tiny_builder.data_path.glob('*.array_record-*'):
    assert path.read_bytes() == (other.data_path / path.name).read_bytes()
  # Nothing but the dataset goes into data_dir (no empty downloads/).
  assert sorted(p.name for p in tmp_path.iterdir()) == ['moving_digits']


def test_splits_do_not_share_videos(tiny_builder):
  seen = {}
  for split in ('train', 'validation', 'test'):
    data = tiny_builder.as_data_source(split=split)
    for i in range(len(data)):
      key = data[i]['video'].tobytes()
      assert key not in seen, (split, seen.get(key))
      seen[key] = split


def test_configs():
  configs = {c.name: c for c in moving_digits.MovingDigits.BUILDER_CONFIGS}
  assert set(configs) == {'small', 'large', 'tiny', 'dense', 'odd_one_out',
                          'odd_translation', 'count_rotations', 'long',
                          'paper'}
  paper = configs['paper'].generator
  assert (paper.num_frames, paper.height, paper.width) == (32, 256, 256)
  assert moving_digits.MovingDigits.DEFAULT_BUILDER_CONFIG_NAME == 'small'
  small = configs['small'].generator
  assert (small.num_frames, small.height, small.width) == (16, 64, 64)
  assert configs['dense'].generator.segments_per_video > 1
  # `large` is `small` with 8x the training videos, the same seeds: its
  # first 1024 training videos are small's.
  assert configs['large'].generator == configs['small'].generator
  assert configs['large'].splits[0] == ('train', 8192, 1)
  assert configs['small'].splits[0] == ('train', 1024, 1)
  assert configs['long'].generator.num_frames >= 256
  assert configs['odd_one_out'].generator.label_rule == 'odd_one_out'
  odd_translation = configs['odd_translation'].generator
  assert odd_translation.label_rule == 'odd_one_out'
  assert odd_translation.class_names == (
      'translate_right', 'translate_left', 'translate_down', 'translate_up')
  odd_one_out = configs['odd_one_out'].generator
  assert odd_translation.num_frames == odd_one_out.num_frames
  count = configs['count_rotations'].generator
  assert count.label_rule == 'count_rotations'
  assert len(count.label_names) == count.segments_per_video + 1 == 5
