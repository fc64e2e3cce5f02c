"""Tests for data_pipelines.build (function and command line)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines import build
from data_pipelines import video_io
from data_pipelines.generated import moving_digits as md
from data_pipelines import sources
from tests.data_pipelines import bad_videos

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_build_moving_digits_and_reuse(tmp_path):
  builder = build.build_dataset('moving_digits', tmp_path, config='tiny')
  assert builder.info.splits['train'].num_examples == 64
  record = next(builder.data_path.glob('*-train.array_record-*'))
  mtime = os.stat(record).st_mtime_ns
  again = build.build_dataset('moving_digits', tmp_path, config='tiny')
  assert again.data_path == builder.data_path
  assert os.stat(record).st_mtime_ns == mtime  # Reused, not rebuilt.


def test_build_video_folder(tmp_path):
  root = tmp_path / 'videos'
  gen = md.MovingDigitsConfig(num_frames=8, height=32, width=32)
  for c, name in enumerate(('left', 'right')):
    (root / name).mkdir(parents=True)
    video_io.write_video(root / name / 'a.mp4',
                         md.generate_example(gen, c, 0)['video'])
  builder = build.build_dataset(
      'video_folder', tmp_path / 'tfds', root=root, num_frames=8, height=16,
      width=16, split_fractions=(('train', 1.0),))
  train = builder.as_data_source(split='train')
  assert len(train) == 2
  assert train[0]['video'].shape == (8, 16, 16, 3)


def test_unknown_dataset_lists_choices(tmp_path):
  with pytest.raises(ValueError, match='moving_digits, video_folder'):
    build.build_dataset('imagenet', tmp_path)
  assert not os.listdir(tmp_path)


def test_video_folder_needs_root(tmp_path):
  with pytest.raises(ValueError, match='root'):
    build.build_dataset('video_folder', tmp_path)


def test_command_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'data_pipelines.build_cli', '--dataset=moving_digits',
       '--config=tiny', f'--data_dir={tmp_path}'],
      cwd=_REPO_ROOT, capture_output=True, text=True, timeout=120,
      check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'moving_digits/tiny/1.0.0' in result.stdout
  assert (tmp_path / 'moving_digits' / 'tiny' / '1.0.0').is_dir()
  data = build.build_dataset('moving_digits', tmp_path, config='tiny')
  assert np.asarray(data.as_data_source(split='test')[0]['video']).shape == (
      8, 32, 32, 3)

  bad = subprocess.run(
      [sys.executable, '-m', 'data_pipelines.build_cli', '--dataset=nope',
       f'--data_dir={tmp_path}'],
      cwd=_REPO_ROOT, capture_output=True, text=True, timeout=120,
      check=False)
  assert bad.returncode != 0
  assert 'moving_digits, video_folder' in bad.stdout + bad.stderr


def test_split_specs_take_tfds_slices_and_name_bad_ones(data_dir):
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict(dict(
      name='moving_digits', data_dir=data_dir, dataset_dir='',
      builder_kwargs=dict(config='tiny')))
  full = sources.load_source(config, 'train')
  first = sources.load_source(config, 'train[:16]')
  assert len(full) == 64 and len(first) == 16
  np.testing.assert_array_equal(first[15]['video'], full[15]['video'])
  assert len(sources.load_source(config, 'train[:25%]')) == 16
  with pytest.raises(ValueError, match=r"'trian\[:16\]' not in dataset.*"
                     r"'test', 'train', 'validation'"):
    sources.load_source(config, 'trian[:16]')
  with pytest.raises(ValueError, match=r"'train\[:x\]'.*not a valid TFDS "
                     'split spec'):
    sources.load_source(config, 'train[:x]')
  with pytest.raises(ValueError, match=r"'train\[64:\]' not in dataset"):
    sources.load_source(config, 'train[64:]')  # Empty.
  validation = sources.load_source(config, 'validation')
  both = sources.load_source(config, 'train[:8]+validation')
  assert len(both) == 8 + len(validation)


def test_on_decode_error_reaches_the_builder(tmp_path):
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root)
  bad_videos.write_cut_mp4(root / 'walk' / 'cut.mp4', keep=0.3)
  kwargs = dict(root=root, num_frames=4, height=16, width=16,
                split_fractions=(('train', 1.0),))
  skipping = build.build_dataset('video_folder', tmp_path / 'a', **kwargs)
  assert skipping.info.metadata['num_videos_skipped'] == 1
  keeping = build.build_dataset('video_folder', tmp_path / 'b',
                                on_decode_error='keep_truncated', **kwargs)
  assert keeping.info.metadata['num_videos_truncated'] == 1
  with pytest.raises(ValueError, match='on_decode_error must be one of'):
    build.build_dataset('video_folder', tmp_path / 'c',
                        on_decode_error='ignore', **kwargs)


def test_command_line_on_decode_error_and_counts(tmp_path):
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root)
  bad_videos.write_cut_mp4(root / 'walk' / 'cut.mp4', keep=0.3)
  bad_videos.write_image_as_video(root / 'walk' / 'photo.mp4')
  args = [sys.executable, '-m', 'data_pipelines.build_cli',
          '--dataset=video_folder', f'--root={root}', '--num_frames=4',
          '--height=16', '--width=16', '--split_fractions=train=1.0']
  kept = subprocess.run(
      args + ['--on_decode_error=keep_truncated', f'--data_dir={tmp_path}/a'],
      cwd=_REPO_ROOT, capture_output=True, text=True, timeout=120,
      check=False)
  assert kept.returncode == 0, kept.stderr[-2000:]
  assert "3 videos read, 1 skipped: ['walk/photo.mp4']" in kept.stdout
  assert "1 kept truncated: ['walk/cut.mp4']" in kept.stdout
  failed = subprocess.run(
      args + ['--on_decode_error=fail', f'--data_dir={tmp_path}/b'],
      cwd=_REPO_ROOT, capture_output=True, text=True, timeout=120,
      check=False)
  assert failed.returncode != 0
  assert "on_decode_error='fail' stops the build" in failed.stderr
  assert not (tmp_path / 'b').exists()
