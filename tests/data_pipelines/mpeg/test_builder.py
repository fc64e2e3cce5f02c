"""The mpeg_gops TFDS builder: generated videos and a folder of files."""
import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import video_io
from data_pipelines.builders import mpeg_gops
from data_pipelines.generated import moving_digits as md
from data_pipelines.mpeg import accumulate
from data_pipelines.mpeg.errors import MpegExtractionError
from tests.conftest import REPO_ROOT as _REPO_ROOT
from tests.data_pipelines import bad_videos


def test_tiny_dataset_features(mpeg_data_dir):
  builder = mpeg_gops.build(mpeg_data_dir, 'tiny')
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      'train': 16, 'validation': 8, 'test': 8}
  example = builder.as_data_source(split='test')[0]
  assert example['i_frames'].shape == (1, 32, 32, 3)
  assert example['motion_vectors'].dtype == np.float16
  assert example['accumulated_residuals'].shape == (1, 11, 32, 32, 3)
  assert 0 <= example['label'] < 8
  assert builder.info.metadata['gop_size'] == 12


def test_folder_of_videos(tmp_path):
  root = tmp_path / 'videos'
  config = md.MovingDigitsConfig(num_frames=14, height=32, width=32)
  for split in ('train', 'test'):
    for index, label in enumerate(('jump', 'run')):
      folder = root / split / label
      folder.mkdir(parents=True)
      frames = md.generate_example(config, 5, index)['video']
      video_io.write_video(str(folder / 'h264.mp4'), frames)  # Re-encoded.
      video_io.write_video(str(folder / 'mpeg4.avi'), frames, codec='mpeg4',
                           g=12, bf=0, qmin=4, qmax=4, sc_threshold=10**9)
  (root / 'train' / 'run' / 'broken.mp4').write_bytes(b'not a video' * 50)
  video_io.write_video(str(root / 'test' / 'run' / 'short.mp4'),
                       frames[:6])
  builder = mpeg_gops.build(
      tmp_path / 'tfds', mpeg_gops.folder_config(root, num_gops=1, height=32,
                                                 width=32))
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      'train': 4, 'test': 4}
  metadata = builder.info.metadata
  assert sorted(s['path'] for s in metadata['skipped_files']) == [
      'test/run/short.mp4', 'train/run/broken.mp4']
  assert metadata['num_videos_reencoded'] == 4  # The H.264 files.
  assert builder.info.features['label'].names == ['jump', 'run']
  example = builder.as_data_source(split='train')[0]
  rebuilt = accumulate.reconstruct_from_i_frame(
      example['i_frames'][0], example['accumulated_motion_vectors'][0],
      example['accumulated_residuals'][0])
  assert rebuilt.min() >= 0 and rebuilt.max() <= 255
  assert os.path.isdir(builder.data_dir)


# Bad input: the rules of video_folder (docs/reliability.md).


def _folder(tmp_path, **kwargs):
  return mpeg_gops.folder_config(tmp_path / 'videos', num_gops=1,
                                 height=32, width=32,
                                 split_fractions=(('train', 1.0),), **kwargs)


def _good(root, classes=('jump', 'run')):
  bad_videos.write_good_videos(root, classes=classes, num_frames=14)


def test_split_of_only_unreadable_files_is_left_out(tmp_path, caplog):
  """Issue 35 row 3: mpeg_gops used to abort; now as video_folder."""
  root = tmp_path / 'videos'
  _good(root / 'train')
  (root / 'validation' / 'run').mkdir(parents=True)
  (root / 'validation' / 'run' / 'broken.mp4').write_bytes(b'garbage' * 99)
  with caplog.at_level(logging.WARNING):
    builder = mpeg_gops.build(tmp_path / 'tfds', _folder(tmp_path))
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      'train': 2}
  metadata = builder.info.metadata
  assert metadata['splits_left_out'] == {'validation': 1}
  assert metadata['skipped_files'][0]['path'] == 'validation/run/broken.mp4'
  assert 'split validation is left out' in caplog.text
  saved = tfds.builder_from_directory(builder.data_path)
  assert "splits left out: ['validation']" in saved.info.description


def test_folder_of_only_bad_files_is_an_error(tmp_path):
  root = tmp_path / 'videos'
  bad_videos.write_image_as_video(root / 'a' / 'x.mp4')
  with pytest.raises(ValueError, match=r'No readable video in .*all 1 files'
                     r'.*x\.mp4: a still image'):
    mpeg_gops.build(tmp_path / 'tfds', _folder(tmp_path))
  assert not (tmp_path / 'tfds').exists()


def _with_cut_file(tmp_path):
  root = tmp_path / 'videos'
  _good(root)
  full = tmp_path / 'full.mp4'
  bad_videos.write_faststart_mp4(full, bad_videos.moving_frames(60, 32, 32))
  # Six whole packets: fewer frames than the one GOP asked for.
  bad_videos.cut_file(full, root / 'run' / 'cut.mp4',
                      bad_videos.packet_offsets(full)[6])
  return root


@pytest.mark.parametrize('policy,reason', [
    ('skip', r'ends after \d+ of the 60 frames'),
    # One GOP of exactly 12 frames per example: the frames before the fault
    # make no GOP, so keep_truncated skips the file too, saying why.
    ('keep_truncated', r'fewer than one GOP of 12 \(decoding stopped: '),
])
def test_file_cut_short_is_skipped_and_counted(tmp_path, policy, reason):
  _with_cut_file(tmp_path)
  builder = mpeg_gops.build(tmp_path / 'tfds',
                            _folder(tmp_path, on_decode_error=policy))
  (skipped,) = builder.info.metadata['skipped_files']
  assert skipped['path'] == 'run/cut.mp4'
  assert re.search(reason, skipped['reason'])
  assert builder.info.metadata['num_videos_read'] == 2


def test_file_cut_short_fails_the_build_on_request(tmp_path):
  _with_cut_file(tmp_path)
  data_dir = tmp_path / 'tfds'
  mpeg_gops.build(data_dir, 'tiny')
  before = bad_videos.snapshot(data_dir)
  with pytest.raises(MpegExtractionError,
                     match=r"cut\.mp4'.*on_decode_error='fail'"):
    mpeg_gops.build(data_dir, _folder(tmp_path, on_decode_error='fail'))
  assert bad_videos.snapshot(data_dir) == before


def test_unknown_policy_is_refused(tmp_path):
  with pytest.raises(ValueError, match='on_decode_error must be one of'):
    _folder(tmp_path, on_decode_error='ignore')


def test_no_reencode_refusal_names_the_flag(tmp_path):
  """Issue 35 row 4: the refusal named a Python argument, not the flag."""
  path = tmp_path / 'clip.mp4'
  video_io.write_video(path, bad_videos.moving_frames(24, 32, 32))
  result = subprocess.run(
      [sys.executable, '-m', 'data_pipelines.mpeg.build_cli',
       f'--video={path}', '--no_reencode'], cwd=_REPO_ROOT,
      capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode != 0
  assert 'h264, not MPEG-4 part 2' in result.stderr
  assert '--no_reencode refuses to re-encode it' in result.stderr
  assert 'allow_reencode' not in result.stderr


def test_command_line_on_decode_error_for_a_folder(tmp_path):
  root = _with_cut_file(tmp_path)
  result = subprocess.run(
      [sys.executable, '-m', 'data_pipelines.mpeg.build_cli', f'--root={root}',
       '--num_gops=1', '--size=32,32', f'--data_dir={tmp_path}/tfds',
       '--on_decode_error=fail'], cwd=_REPO_ROOT,
      capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode != 0
  assert "cut.mp4" in result.stderr and "on_decode_error='fail'" in (
      result.stderr)


def test_moving_digits_configs_hold_the_very_videos_of_moving_digits(
    tmp_path):
  from data_pipelines import build  # pylint: disable=g-import-not-at-top
  gops = mpeg_gops.build(tmp_path, 'moving_digits_tiny')
  pixels = build.build_dataset('moving_digits', tmp_path, config='tiny')
  assert {k: v.num_examples for k, v in gops.info.splits.items()} == {
      k: v.num_examples for k, v in pixels.info.splits.items()} == {
          'train': 64, 'validation': 16, 'test': 16}
  g, v = gops.as_data_source('test'), pixels.as_data_source('test')
  # One GOP of all 8 frames: an I-frame and 7 P-frames.
  assert g[0]['i_frames'].shape == (1, 32, 32, 3)
  assert g[0]['motion_vectors'].shape == (1, 7, 32, 32, 2)
  assert [int(g[i]['label']) for i in range(16)] == [
      int(v[i]['label']) for i in range(16)]
  error = lambda a, b: np.abs(a.astype(int) - b.astype(int)).mean()
  for i in range(16):
    # Each I-frame is its video's first frame up to MPEG-4's loss, far
    # closer than to the next video's.
    own = error(g[i]['i_frames'][0], v[i]['video'][0])
    other = error(g[i]['i_frames'][0], v[(i + 1) % 16]['video'][0])
    assert own < 10 and own < other / 3, (i, own, other)
  # The one-off cost of the build, for the three-route table.
  assert gops.info.metadata['build_seconds'] > 0
  assert gops.info.metadata['gop_size'] == 8
