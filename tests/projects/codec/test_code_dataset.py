"""The code-dataset writer: round trip, carried labels, resume, refusals."""
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from cvision.projects.codec import code_dataset
from data_pipelines import build


def _fake_encode(video):
  """[B, T, H, W, 3] -> [B, T, H/4, W/4, 2]: block means, a checkable code."""
  b, t, h, w, _ = video.shape
  blocks = video.reshape(b, t, h // 4, 4, w // 4, 4, 3).mean(axis=(3, 5))
  return np.stack([blocks[..., 0], blocks[..., 1]], -1).astype(np.int32)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  return build.build_dataset('moving_digits',
                             str(tmp_path_factory.mktemp('src')),
                             config='tiny')


def _write(source_builder, out, encode=_fake_encode, **kw):
  args = dict(source_builder=source_builder, splits=['train', 'test'],
              output_dir=out, encode=encode, code_shape=(8, 8, 8, 2),
              code_dtype=np.uint8, metadata={'compression_rate': 24.0},
              batch_size=5, examples_per_shard=20)
  args.update(kw)
  return code_dataset.write_code_dataset(**args)


def test_codes_and_labels_read_back_in_source_order(source, tmp_path):
  out = str(tmp_path / 'codes')
  written = _write(source, out)
  assert written == {'train': 4, 'test': 1}  # 64/20 -> 4 shards, 16 -> 1.
  builder = tfds.builder_from_directory(out)
  assert builder.info.metadata['compression_rate'] == 24.0
  assert builder.info.features['codes'].np_dtype == np.uint8
  codes = builder.as_data_source('train')
  videos = source.as_data_source('train')
  assert len(codes) == 64
  for i in (0, 19, 20, 63):
    np.testing.assert_array_equal(codes[i]['codes'],
                                  _fake_encode(videos[i]['video'][None])[0])
    assert codes[i]['label'] == videos[i]['label']
    np.testing.assert_array_equal(codes[i]['frame_labels'],
                                  videos[i]['frame_labels'])
    assert 'video' not in codes[i]
  assert code_dataset.storage_bytes(out) > 0


def test_a_crash_leaves_no_complete_looking_dataset_and_rerun_resumes(
    source, tmp_path):
  out = str(tmp_path / 'codes')
  calls = {'n': 0}

  def flaky(video):
    calls['n'] += 1
    if calls['n'] == 6:  # In the second shard (4 batches of 5 per shard).
      raise RuntimeError('device lost')
    return _fake_encode(video)

  with pytest.raises(RuntimeError, match='device lost'):
    _write(source, out, encode=flaky)
  assert not os.path.exists(os.path.join(out, 'dataset_info.json'))
  files = sorted(os.listdir(out))
  assert any(f.endswith('00000-of-00004') for f in files)
  assert not any(f.endswith('00001-of-00004') for f in files)

  written = _write(source, out)
  assert written == {'train': 3, 'test': 1}  # The first shard was kept.
  assert not any(f.endswith('.tmp') for f in os.listdir(out))
  assert len(tfds.builder_from_directory(out).as_data_source('train')) == 64
  assert _write(source, out) == {'train': 0, 'test': 0}


def test_other_settings_into_the_same_directory_are_refused(source, tmp_path):
  out = str(tmp_path / 'codes')
  _write(source, out, splits=['test'])
  with pytest.raises(ValueError, match='compression_rate: was 24.0, now 96'):
    _write(source, out, splits=['test'],
           metadata={'compression_rate': 96})
  with open(os.path.join(out, code_dataset.MANIFEST)) as f:
    assert json.load(f)['compression_rate'] == 24.0


def test_wrong_code_shape_and_missing_split_are_named(source, tmp_path):
  with pytest.raises(ValueError, match=r'expected \(8, 4, 4, 2\)'):
    _write(source, str(tmp_path / 'a'), code_shape=(8, 4, 4, 2))
  with pytest.raises(ValueError, match="Split 'holdout' not in"):
    _write(source, str(tmp_path / 'b'), splits=['holdout'])


def test_time_chunks_cover_the_clip_in_order():
  video = np.arange(2 * 7 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 7, 4, 4, 3)
  seen = []

  def encode(v):
    seen.append(v.shape[1])
    return v[..., :1].astype(np.int32)

  out = code_dataset.encode_in_time_chunks(video, encode, chunk_frames=3)
  assert seen == [3, 3, 1]
  np.testing.assert_array_equal(out, video[..., :1])
