"""The video_folder builder on bad input: named errors or skip-and-count.

Each test asserts what the user sees (the error, or the counts in the
metadata, the log and the description) and that nothing already written
(another dataset in the same data_dir, the video folder) changed.
docs/reliability.md lists these tests by input.
"""

import logging
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import video_io
from data_pipelines.builders import video_folder
from tests.data_pipelines import bad_videos

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_ONE_SPLIT = (('train', 1.0),)


def _config(root, **kwargs):
  kwargs = {'num_frames': 4, 'height': 16, 'width': 16,
            'split_fractions': _ONE_SPLIT, **kwargs}
  return video_folder.VideoFolderConfig.for_folder(root, **kwargs)


def _builder(root, data_dir, **kwargs):
  return video_folder.VideoFolder(config=_config(root, **kwargs),
                                  data_dir=data_dir,
                                  file_format='array_record')


def _num_examples(builder):
  return {k: v.num_examples for k, v in builder.info.splits.items()}


@pytest.fixture
def data_dir_with_a_dataset(tmp_path):
  """A data dir already holding one good dataset, and its snapshot."""
  other = tmp_path / 'other_videos'
  bad_videos.write_good_videos(other)
  data_dir = tmp_path / 'tfds'
  _builder(other, data_dir).download_and_prepare()
  return data_dir, bad_videos.snapshot(data_dir)


def _bad_file(kind: str, path) -> None:
  """Writes one kind of unreadable 'video' at `path`."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if kind == 'png_named_mp4':
    bad_videos.write_image_as_video(path)
  elif kind == 'zero_bytes':
    open(path, 'wb').close()
  elif kind == 'text':
    with open(path, 'w') as f:
      f.write('not a video\n' * 50)
  elif kind == 'audio_only':
    bad_videos.write_audio_only(path)
  elif kind == 'header_only_mp4':  # Opens (index at the front), no frames.
    full = path + '.full.mp4'
    bad_videos.write_faststart_mp4(full, bad_videos.moving_frames(50))
    bad_videos.cut_file(full, path, bad_videos.packet_offsets(full)[0])
    os.remove(full)
  elif kind == 'broken_link':
    os.symlink(path + '.deleted', path)
  elif kind == 'fifo':
    os.mkfifo(path)
  else:
    raise ValueError(kind)


_BAD_KINDS = {
    'png_named_mp4': 'a still image',
    'zero_bytes': 'cannot open container',
    'text': 'cannot open container',
    'audio_only': 'has no video stream',
    'header_only_mp4': 'no decodable frames|no frame decodes',
    'broken_link': 'no such file',
    'fifo': 'not a regular file',
}


@pytest.mark.parametrize('kind', sorted(_BAD_KINDS))
def test_unreadable_file_is_skipped_counted_and_described(tmp_path, kind,
                                                         caplog):
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root)
  _bad_file(kind, root / 'walk' / 'bad.mp4')
  before = bad_videos.snapshot(root)
  builder = _builder(root, tmp_path / 'tfds')
  with caplog.at_level(logging.WARNING):
    builder.download_and_prepare()
  metadata = builder.info.metadata
  assert metadata['num_videos_read'] == 2
  assert metadata['num_videos_skipped'] == 1
  (skipped,) = metadata['skipped_files']
  assert skipped['path'] == 'walk/bad.mp4'
  assert re.search(_BAD_KINDS[kind], skipped['reason'])
  assert 'walk/bad.mp4' in caplog.text
  assert '2 videos read, 1 skipped' in caplog.text
  assert '2 videos read, 1 skipped' in builder.info.description
  assert _num_examples(builder) == {'train': 2 * 3}
  assert bad_videos.snapshot(root) == before  # The folder is only read.
  # The counts are saved: a new builder reads them back, and the dataset
  # directory (what `data.dataset_dir` reads) describes them.
  again = _builder(root, tmp_path / 'tfds')
  assert again.info.metadata['skipped_files'] == metadata['skipped_files']
  saved = tfds.builder_from_directory(builder.data_path)
  assert '2 videos read, 1 skipped' in saved.info.description


def test_folder_of_only_bad_files_is_an_error(tmp_path,
                                              data_dir_with_a_dataset):
  """Issue 35 row 1: a folder holding only a PNG named x.mp4 (and friends)."""
  data_dir, before = data_dir_with_a_dataset
  root = tmp_path / 'videos'
  _bad_file('png_named_mp4', root / 'a' / 'x.mp4')
  _bad_file('zero_bytes', root / 'b' / 'empty.mp4')
  with pytest.raises(ValueError, match=r"No readable video in .*videos'.*all "
                     r'2 files were skipped.*x\.mp4: a still image'):
    _builder(root, data_dir).download_and_prepare()
  assert bad_videos.snapshot(data_dir) == before


def _truncated_folder(tmp_path):
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root)
  bad_videos.write_cut_mp4(root / 'walk' / 'cut.mp4', num_frames=250,
                           keep=0.3)
  return root


def test_file_cut_short_is_skipped_by_default(tmp_path, caplog):
  """Issue 35 row 2: a faststart mp4 cut short opens, then fails part-way."""
  root = _truncated_folder(tmp_path)
  builder = _builder(root, tmp_path / 'tfds')
  assert builder.builder_config.on_decode_error == 'skip'
  with caplog.at_level(logging.WARNING):
    builder.download_and_prepare()
  metadata = builder.info.metadata
  assert [s['path'] for s in metadata['skipped_files']] == ['walk/cut.mp4']
  assert 'corrupt packet after' in metadata['skipped_files'][0]['reason']
  assert metadata['num_videos_truncated'] == 0
  assert _num_examples(builder) == {'train': 6}
  assert 'cut.mp4' in caplog.text


def test_file_cut_at_a_packet_boundary_is_skipped(tmp_path):
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root)
  bad_videos.write_cut_mp4(root / 'walk' / 'cut.mp4', num_frames=250,
                           keep=0.3, at_packet_boundary=True)
  builder = _builder(root, tmp_path / 'tfds')
  builder.download_and_prepare()
  (skipped,) = builder.info.metadata['skipped_files']
  assert 'of the 250 frames' in skipped['reason']


def test_file_cut_short_kept_truncated_on_request(tmp_path, caplog):
  root = _truncated_folder(tmp_path)
  builder = _builder(root, tmp_path / 'tfds',
                     on_decode_error='keep_truncated')
  with caplog.at_level(logging.WARNING):
    builder.download_and_prepare()
  metadata = builder.info.metadata
  assert metadata['num_videos_skipped'] == 0
  assert metadata['num_videos_read'] == 3
  (truncated,) = metadata['truncated_files']
  assert truncated['path'] == 'walk/cut.mp4'
  assert 'corrupt packet after' in truncated['reason']
  decoded = int(truncated['reason'].split('after ')[1].split()[0])
  assert 20 < decoded < 125
  train = builder.as_data_source(split='train')
  cut_clips = [train[i] for i in range(len(train))
               if train[i]['video_id'] == b'walk/cut.mp4']
  assert len(cut_clips) == decoded // 4
  assert '1 kept truncated' in builder.info.description
  assert 'keeping the frames before a decode error' in caplog.text


def test_file_cut_short_fails_the_build_on_request(tmp_path,
                                                   data_dir_with_a_dataset):
  data_dir, before = data_dir_with_a_dataset
  root = _truncated_folder(tmp_path)
  builder = _builder(root, data_dir, on_decode_error='fail')
  with pytest.raises(video_io.VideoReadError,
                     match=r"cut\.mp4'.*corrupt packet.*"
                     "on_decode_error='fail'"):
    builder.download_and_prepare()
  assert not builder.data_path.exists()
  assert bad_videos.snapshot(data_dir) == before


def test_unknown_decode_error_policy_lists_the_choices(tmp_path):
  with pytest.raises(ValueError, match="'skip', 'keep_truncated', 'fail'"):
    _config(tmp_path, on_decode_error='ignore')


def test_policy_is_part_of_the_dataset_name(tmp_path):
  assert (_config(tmp_path).name !=
          _config(tmp_path, on_decode_error='keep_truncated').name)


def test_split_with_only_unreadable_files_is_left_out_and_counted(tmp_path,
                                                                  caplog):
  """Issue 35 row 3; the same rule as mpeg_gops (tests/mpeg/test_builder)."""
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root / 'train')
  # Opens (the header is whole) but holds no frame.
  _bad_file('header_only_mp4', root / 'validation' / 'jump' / 'a.mp4')
  builder = _builder(root, tmp_path / 'tfds')
  with caplog.at_level(logging.WARNING):
    builder.download_and_prepare()
  assert _num_examples(builder) == {'train': 6}
  assert builder.info.metadata['splits_left_out'] == {'validation': 1}
  assert 'split validation is left out' in caplog.text
  assert "splits left out: ['validation']" in builder.info.description


def test_video_shorter_than_one_clip_is_padded_and_counted(tmp_path):
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root)
  video_io.write_video(root / 'walk' / 'short.mp4',
                       bad_videos.moving_frames(3, 32, 32))
  builder = _builder(root, tmp_path / 'tfds')
  builder.download_and_prepare()
  assert builder.info.metadata['padded_files'] == ['walk/short.mp4']
  assert '1 padded' in builder.info.description
  skipping = _builder(root, tmp_path / 'tfds2', pad_short_videos=False)
  skipping.download_and_prepare()
  (skipped,) = skipping.info.metadata['skipped_files']
  assert skipped['path'] == 'walk/short.mp4'
  assert 'shorter than one clip of 4 frames' in skipped['reason']


def test_odd_frame_sizes_in_and_out(tmp_path):
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root)
  video_io.write_video(root / 'walk' / 'odd.mkv',
                       bad_videos.moving_frames(8, 33, 35), codec='ffv1',
                       pix_fmt='yuv444p')
  builder = _builder(root, tmp_path / 'tfds', height=15, width=17)
  builder.download_and_prepare()
  assert builder.info.metadata['num_videos_skipped'] == 0
  train = builder.as_data_source(split='train')
  assert len(train) == 2 * 3 + 2
  assert train[0]['video'].shape == (4, 15, 17, 3)


def test_real_clips_cut_short_and_damaged(tmp_path):
  """vtest.avi reads; tree.avi (444 frames announced, 68 there) is named."""
  root = tmp_path / 'videos'
  for name, cls in (('vtest.avi', 'walk'), ('tree.avi', 'tree'),
                    ('Megamind_bugy.avi', 'walk')):
    (root / cls).mkdir(parents=True, exist_ok=True)
    os.symlink(bad_videos.opencv_clip(name, tmp_path), root / cls / name)
  # Every frame is decoded (no max_clips_per_video: decoding that stops
  # early never reaches the end, where the loss shows).
  builder = _builder(root, tmp_path / 'tfds')
  builder.download_and_prepare()
  (skipped,) = builder.info.metadata['skipped_files']
  assert skipped['path'] == 'tree/tree.avi'
  assert 'ends after 68 of the 444 frames' in skipped['reason']
  assert _num_examples(builder) == {'train': 795 // 4 + 270 // 4}
  kept = _builder(root, tmp_path / 'tfds', on_decode_error='keep_truncated')
  kept.download_and_prepare()
  assert kept.info.metadata['truncated_files'][0]['path'] == 'tree/tree.avi'
  train = kept.as_data_source(split='train')
  assert sum(train[i]['video_id'] == b'tree/tree.avi'
             for i in range(len(train))) == 68 // 4


# Folders.


@pytest.mark.parametrize('layout,error,message', [
    ('missing', FileNotFoundError, 'does not exist'),
    ('file', NotADirectoryError, 'is not a directory'),
    ('empty', ValueError, 'No videos found'),
    ('loose_videos', ValueError, r"2 video files lie directly in it.*"
     r"move them into one sub-folder per class"),
    ('mixed', ValueError, r"mixes split folders \(\['train'\]\) with other "
     r"folders \(\['jump'\]\)"),
])
def test_bad_folder_is_named_before_anything_is_written(
    tmp_path, data_dir_with_a_dataset, layout, error, message):
  data_dir, before = data_dir_with_a_dataset
  root = tmp_path / 'videos'
  if layout == 'file':
    root.write_text('x')
  elif layout == 'empty':
    root.mkdir()
  elif layout == 'loose_videos':
    root.mkdir()
    for name in ('a.mp4', 'b.avi'):
      video_io.write_video(root / name, bad_videos.moving_frames(4),
                           codec='mpeg4')
  elif layout == 'mixed':
    bad_videos.write_good_videos(root / 'train', classes=('jump',))
    bad_videos.write_good_videos(root, classes=('jump',))
  with pytest.raises(error, match=message) as info:
    _builder(root, data_dir).download_and_prepare()
  assert str(root) in str(info.value)
  assert bad_videos.snapshot(data_dir) == before


def test_unlistable_class_folder_is_named(tmp_path, data_dir_with_a_dataset,
                                          monkeypatch):
  data_dir, before = data_dir_with_a_dataset
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root)
  locked = os.fspath(root / 'walk')
  real_scandir = os.scandir

  # Tests run as root, which lists any folder: the error of a folder
  # without read permission is simulated.
  def scandir(path='.'):
    if os.fspath(path) == locked:
      raise PermissionError(13, 'Permission denied', locked)
    return real_scandir(path)

  monkeypatch.setattr(os, 'scandir', scandir)
  with pytest.raises(PermissionError,
                     match=r"Cannot list video folder .*walk'"):
    _builder(root, data_dir).download_and_prepare()
  monkeypatch.undo()
  assert bad_videos.snapshot(data_dir) == before


def test_class_folder_without_videos_is_named(tmp_path, caplog):
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root)
  (root / 'run').mkdir()
  (root / 'run' / 'notes.txt').write_text('no video here')
  with caplog.at_level(logging.WARNING):
    scan = video_folder.scan_video_folder(root)
  assert scan.class_names == ('jump', 'walk')
  assert "class folder 'run' holds no" in caplog.text


@pytest.mark.skipif(os.geteuid() == 0, reason='root lists any folder: chmod '
                    'cannot make it unreadable (see the simulated test)')
def test_unreadable_permissions(tmp_path):
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root)
  (root / 'jump' / 'jump_0.mp4').chmod(0)
  builder = _builder(root, tmp_path / 'tfds')
  builder.download_and_prepare()
  (skipped,) = builder.info.metadata['skipped_files']
  assert 'Permission denied' in skipped['reason']
  (root / 'walk').chmod(0)
  with pytest.raises(PermissionError, match='Cannot list video folder'):
    _builder(root, tmp_path / 'tfds2').download_and_prepare()
  (root / 'walk').chmod(0o755)


# Interrupted builds.


def test_keyboard_interrupt_mid_build_leaves_nothing(tmp_path, monkeypatch,
                                                     data_dir_with_a_dataset):
  data_dir, before = data_dir_with_a_dataset
  root = tmp_path / 'videos'
  bad_videos.write_good_videos(root, per_class=2)
  real_clips = video_folder.video_clips
  calls = []

  def interrupted(path, config):
    calls.append(path)
    if len(calls) == 3:
      raise KeyboardInterrupt
    return real_clips(path, config)

  monkeypatch.setattr(video_folder, 'video_clips', interrupted)
  with pytest.raises(KeyboardInterrupt):
    _builder(root, data_dir).download_and_prepare()
  assert bad_videos.snapshot(data_dir) == before
  monkeypatch.setattr(video_folder, 'video_clips', real_clips)
  builder = _builder(root, data_dir)
  builder.download_and_prepare()
  assert _num_examples(builder) == {'train': 4 * 3}


_KILLED_BUILD = '''
import os, signal, sys
sys.path.insert(0, {repo!r})
from data_pipelines.builders import video_folder
real_clips = video_folder.video_clips
calls = []
def killed(path, config):
  calls.append(path)
  if len(calls) == 3:
    os.kill(os.getpid(), signal.SIGKILL)  # No cleanup runs.
  return real_clips(path, config)
video_folder.video_clips = killed
video_folder.VideoFolder(
    config=video_folder.VideoFolderConfig.for_folder(
        {root!r}, num_frames=4, height=16, width=16,
        split_fractions=(('train', 1.0),)),
    data_dir={data_dir!r}, file_format='array_record').download_and_prepare()
'''


def test_killed_build_never_reads_as_complete_and_rebuilds(tmp_path, caplog):
  root, data_dir = tmp_path / 'videos', tmp_path / 'tfds'
  bad_videos.write_good_videos(root, per_class=2)
  proc = subprocess.run(
      [sys.executable, '-c', _KILLED_BUILD.format(
          repo=_REPO_ROOT, root=os.fspath(root), data_dir=os.fspath(data_dir))],
      capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
  builder = _builder(root, data_dir)
  assert not builder.data_path.exists()  # Nothing reads as built.
  (leftover,) = builder.data_path.parent.glob('incomplete.*')
  assert not (leftover / 'dataset_info.json').exists()
  with caplog.at_level(logging.WARNING):
    builder.download_and_prepare()
  assert 'unfinished build' in caplog.text and leftover.name in caplog.text
  assert _num_examples(builder) == {'train': 4 * 3}
  assert builder.info.metadata['num_videos_read'] == 4
  clip = builder.as_data_source(split='train')[0]
  assert clip['video'].shape == (4, 16, 16, 3)
  assert np.asarray(clip['video']).std() > 0
