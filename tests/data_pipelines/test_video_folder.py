"""Tests for the video_folder TFDS builder on tiny real video files."""

import logging
import os

import numpy as np
import pytest

from data_pipelines import video_io
from data_pipelines.builders import video_folder
from data_pipelines.generated import moving_digits as md

_FRAMES = 12  # Frames per source video: 3 clips of 4.
_GEN = md.MovingDigitsConfig(num_frames=_FRAMES, height=32, width=32)


def _write_videos(root, classes=('jump', 'walk'), per_class=2, prefix=''):
  for c, name in enumerate(classes):
    os.makedirs(root / name, exist_ok=True)
    for i in range(per_class):
      video = md.generate_example(_GEN, seed=c, index=i)['video']
      video_io.write_video(root / name / f'{prefix}{name}_{i}.mp4', video,
                           crf=15)


@pytest.fixture
def video_root(tmp_path):
  """2 classes x 2 real mp4 files plus one corrupt .mp4."""
  root = tmp_path / 'videos'
  _write_videos(root)
  (root / 'walk' / 'corrupt.mp4').write_bytes(
      np.random.default_rng(0).bytes(2048))
  (root / 'walk' / 'notes.txt').write_text('not a video, not counted')
  return root


def _config(root, **kwargs):
  kwargs = {'num_frames': 4, 'height': 16, 'width': 16, **kwargs}
  return video_folder.VideoFolderConfig.for_folder(root, **kwargs)


def _builder(root, data_dir, **kwargs):
  return video_folder.VideoFolder(config=_config(root, **kwargs),
                                  data_dir=data_dir,
                                  file_format='array_record')


def _all_examples(builder):
  out = []
  for split in builder.info.splits:
    data = builder.as_data_source(split=split)
    out.extend(data[i] for i in range(len(data)))
  return out


def test_builds_and_skips_corrupt_file(video_root, tmp_path, caplog):
  builder = _builder(video_root, tmp_path / 'tfds')
  with caplog.at_level(logging.WARNING):
    builder.download_and_prepare()
  metadata = builder.info.metadata
  assert metadata['num_videos_read'] == 4
  assert metadata['num_videos_skipped'] == 1
  assert [s['path'] for s in metadata['skipped_files']] == ['walk/corrupt.mp4']
  assert 'corrupt.mp4' in caplog.text
  assert '4 videos read, 1 skipped' in caplog.text

  assert builder.info.features['label'].names == ['jump', 'walk']
  examples = _all_examples(builder)
  assert len(examples) == 4 * 3  # 12 frames -> 3 clips of 4 per video.
  for ex in examples:
    assert ex['video'].shape == (4, 16, 16, 3)
    assert ex['video'].dtype == np.uint8
    video_id = ex['video_id'].decode()
    assert ex['label'] == ['jump', 'walk'].index(video_id.split('/')[0])
    assert (ex['frame_labels'] == ex['label']).all()
    assert 0 <= ex['clip_index'] < 3
  # Every (video, clip) pair once.
  assert len({(ex['video_id'], int(ex['clip_index'])) for ex in examples}) == 12

  # A new builder on the same data reads it back, metadata included.
  again = _builder(video_root, tmp_path / 'tfds')
  assert again.data_path.exists()
  assert again.info.metadata['num_videos_skipped'] == 1
  again.download_and_prepare()  # No-op.


def test_clips_match_the_decoded_video(video_root, tmp_path):
  builder = _builder(video_root, tmp_path / 'tfds',
                     split_fractions=(('train', 1.0),))
  builder.download_and_prepare()
  assert list(builder.info.splits) == ['train']
  train = builder.as_data_source(split='train')
  ex = next(train[i] for i in range(len(train))
            if train[i]['video_id'] == b'jump/jump_1.mp4'
            and train[i]['clip_index'] == 2)
  decoded = video_io.read_video(video_root / 'jump' / 'jump_1.mp4',
                                size=(16, 16))
  np.testing.assert_array_equal(ex['video'], decoded[8:12])


def test_split_folders_layout(tmp_path):
  root = tmp_path / 'ucf'
  _write_videos(root / 'train', per_class=2)
  _write_videos(root / 'val', per_class=1, prefix='v')
  builder = _builder(root, tmp_path / 'tfds', max_clips_per_video=1)
  builder.download_and_prepare()
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      'train': 4, 'validation': 2}


def test_hash_split_is_deterministic(tmp_path):
  root = tmp_path / 'many'
  for name in ('a', 'b'):
    (root / name).mkdir(parents=True)
    for i in range(40):
      (root / name / f'{name}{i}.avi').write_bytes(b'')  # Never decoded.
  scan = video_folder.scan_video_folder(root)
  assert scan.class_names == ('a', 'b')
  assert scan == video_folder.scan_video_folder(root)
  sizes = {split: len(items) for split, items in scan.splits.items()}
  assert sum(sizes.values()) == 80
  assert sizes['train'] > sizes.get('validation', 0)
  assert sizes['train'] > sizes.get('test', 0)


def test_video_clips_stride_step_limit_and_padding(tmp_path):
  path = tmp_path / 'v.mp4'
  video_io.write_video(path, md.generate_example(_GEN, 0, 0)['video'], crf=15)
  full = video_io.read_video(path, size=(16, 16))

  def clips(**kwargs):
    cfg = _config(tmp_path, **kwargs)
    return video_folder.video_clips(path, cfg).clips

  overlapping = clips(clip_stride=2)
  assert len(overlapping) == 5  # Starts 0, 2, 4, 6, 8.
  np.testing.assert_array_equal(overlapping[1], full[2:6])
  gapped = clips(clip_stride=6)
  np.testing.assert_array_equal(gapped[1], full[6:10])
  stepped = clips(frame_step=2)
  np.testing.assert_array_equal(stepped[0], full[0:8:2])
  assert len(clips(max_clips_per_video=2)) == 2
  short = clips(num_frames=20)
  assert len(short) == 1 and short[0].shape[0] == 20
  assert video_folder.video_clips(path, _config(tmp_path,
                                                num_frames=20)).padded
  np.testing.assert_array_equal(short[0][12:], np.repeat(full[-1:], 8, 0))
  assert not clips(num_frames=20, pad_short_videos=False)


@pytest.mark.parametrize('layout', ['missing', 'empty', 'no_videos', 'file'])
def test_bad_folders_fail_before_writing(tmp_path, layout):
  root = tmp_path / 'videos'
  if layout == 'empty':
    root.mkdir()
  elif layout == 'no_videos':
    (root / 'cls').mkdir(parents=True)
    (root / 'cls' / 'readme.txt').write_text('x')
    (root / 'loose.mp4').write_bytes(b'')  # Not in a class folder.
  elif layout == 'file':
    root.write_text('x')
  data_dir = tmp_path / 'tfds'
  builder = _builder(root, data_dir)
  expected = FileNotFoundError if layout == 'missing' else (
      NotADirectoryError if layout == 'file' else ValueError)
  with pytest.raises(expected, match=str(root)):
    builder.download_and_prepare()
  assert not data_dir.exists()


def test_all_files_corrupt_is_an_error(tmp_path):
  root = tmp_path / 'videos'
  (root / 'a').mkdir(parents=True)
  (root / 'a' / 'x.mp4').write_bytes(b'garbage' * 100)
  data_dir = tmp_path / 'tfds'
  with pytest.raises(ValueError, match='No readable video'):
    _builder(root, data_dir).download_and_prepare()
  assert not data_dir.exists()


def test_failure_mid_generation_leaves_no_dataset(video_root, tmp_path,
                                                  monkeypatch):
  data_dir = tmp_path / 'tfds'
  real_clips = video_folder.video_clips
  calls = []

  def flaky_clips(path, config):
    calls.append(path)
    if len(calls) == 3:
      raise RuntimeError('disk on fire')
    return real_clips(path, config)

  monkeypatch.setattr(video_folder, 'video_clips', flaky_clips)
  builder = _builder(video_root, data_dir)
  with pytest.raises(RuntimeError, match='disk on fire'):
    builder.download_and_prepare()
  assert len(calls) == 3
  leftovers = [p for p in data_dir.rglob('*')] if data_dir.exists() else []
  assert not leftovers, leftovers  # No incomplete.* dir, no dataset_info.
  assert not _builder(video_root, data_dir).data_path.exists()

  monkeypatch.setattr(video_folder, 'video_clips', real_clips)
  builder = _builder(video_root, data_dir)
  builder.download_and_prepare()
  assert builder.info.metadata['num_videos_read'] == 4


def test_different_folders_do_not_collide(tmp_path):
  a, b = tmp_path / 'a' / 'videos', tmp_path / 'b' / 'videos'
  _write_videos(a, per_class=1)
  _write_videos(b, per_class=1)
  assert _config(a).name != _config(b).name
  assert _config(a).name != _config(a, num_frames=8).name
  assert _config(a).name == _config(a).name
  data_dir = tmp_path / 'tfds'
  _builder(a, data_dir, split_fractions=(('train', 1.0),)
           ).download_and_prepare()
  # Same explicit name, other folder: refuse to reuse the wrong data.
  clash = video_folder.VideoFolder(
      config=video_folder.VideoFolderConfig.for_folder(
          b, name=_config(a, split_fractions=(('train', 1.0),)).name,
          num_frames=4, height=16, width=16,
          split_fractions=(('train', 1.0),)),
      data_dir=data_dir)
  with pytest.raises(ValueError, match='another config name'):
    clash.download_and_prepare()


def test_builder_needs_a_video_folder_config(tmp_path):
  with pytest.raises(TypeError, match='VideoFolderConfig'):
    video_folder.VideoFolder(config='small', data_dir=tmp_path)
