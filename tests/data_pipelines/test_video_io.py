"""Tests for data_pipelines.video_io."""

import os

import numpy as np
import pytest

from data_pipelines import video_io


def _gradient_video(t=12, h=32, w=48):
  """`[T, H, W, 3] uint8`: a smooth gradient plus a moving bright square."""
  frames = np.zeros((t, h, w, 3), np.uint8)
  frames[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, None, :]
  frames[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[None, :, None]
  frames[..., 2] = 96
  for i in range(t):
    frames[i, 8:20, 2 * i:2 * i + 12] = 230
  return frames


@pytest.mark.parametrize('codec,suffix,options', [
    ('libx264', '.mp4', {'crf': 12}),
    ('mpeg4', '.avi', {'qmin': 2, 'qmax': 4}),
    ('mpeg4', '.mkv', {'qmin': 2, 'qmax': 4, 'bf': 0, 'g': 12}),
])
def test_write_read_round_trip(tmp_path, codec, suffix, options):
  frames = _gradient_video()
  path = tmp_path / f'clip{suffix}'
  assert video_io.write_video(path, frames, fps=25, codec=codec,
                              **options) == len(frames)
  back = video_io.read_video(path)
  assert back.shape == frames.shape and back.dtype == np.uint8
  # Lossy codecs: close, not exact.
  assert np.abs(back.astype(np.int32) - frames).mean() < 6
  info = video_io.probe_video(path)
  assert info.num_frames == len(frames)
  assert info.size == (32, 48) and info.fps == pytest.approx(25)


def test_read_resizes_and_truncates(tmp_path):
  frames = _gradient_video()
  path = tmp_path / 'clip.mp4'
  video_io.write_video(path, frames, crf=12)
  small = video_io.read_video(path, size=(16, 24), max_frames=5)
  assert small.shape == (5, 16, 24, 3)
  # Area downscaling keeps the mean colour.
  assert abs(small.mean() - frames[:5].mean()) < 3


def test_iter_video_chunks_matches_read_video(tmp_path):
  path = tmp_path / 'clip.mp4'
  video_io.write_video(path, _gradient_video(t=11), crf=12)
  chunks = list(video_io.iter_video_chunks(path, 4, size=(16, 24)))
  assert [len(c) for c in chunks] == [4, 4, 3]
  np.testing.assert_array_equal(np.concatenate(chunks),
                                video_io.read_video(path, size=(16, 24)))


def test_iter_video_chunks_is_lazy(tmp_path, monkeypatch):
  path = tmp_path / 'long.mp4'
  video_io.write_video(path, _gradient_video(t=24), crf=20)
  decoded = []
  real_iter_frames = video_io._iter_frames

  def counting_iter_frames(*args, **kwargs):
    for frame in real_iter_frames(*args, **kwargs):
      decoded.append(1)
      yield frame

  monkeypatch.setattr(video_io, '_iter_frames', counting_iter_frames)
  chunks = video_io.iter_video_chunks(path, 4)
  first = next(chunks)
  assert first.shape == (4, 32, 48, 3)
  assert len(decoded) == 4  # Only the first chunk was decoded.
  chunks.close()


def test_write_video_streams_chunks(tmp_path):
  frames = _gradient_video(t=10)
  path = tmp_path / 'chunks.mp4'
  written = video_io.write_video(
      path, (frames[i:i + 3] for i in range(0, 10, 3)), crf=12)
  assert written == 10
  assert video_io.read_video(path).shape == frames.shape


def test_odd_size_with_x264_is_a_clear_error(tmp_path):
  path = tmp_path / 'odd.mp4'
  with pytest.raises(ValueError, match='even'):
    video_io.write_video(path, np.zeros((2, 31, 32, 3), np.uint8))
  assert not path.exists()


def test_write_rejects_bad_frames(tmp_path):
  with pytest.raises(ValueError, match='uint8'):
    video_io.write_video(tmp_path / 'f.mp4', np.zeros((2, 8, 8, 3), np.float32))
  with pytest.raises(ValueError, match='No frames'):
    video_io.write_video(tmp_path / 'e.mp4', [])


@pytest.mark.parametrize('content', [
    b'',  # Empty file.
    np.random.default_rng(0).bytes(4096),  # Random bytes.
    b'this is a text file, not a video\n' * 20,
])
def test_unreadable_files_raise_video_read_error(tmp_path, content):
  path = tmp_path / 'broken.mp4'
  path.write_bytes(content)
  for fn in (video_io.read_video, video_io.probe_video,
             lambda p: list(video_io.iter_video_chunks(p, 4))):
    with pytest.raises(video_io.VideoReadError) as info:
      fn(path)
    assert os.fspath(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert info.value.reason


def test_missing_file_and_directory(tmp_path):
  with pytest.raises(video_io.VideoReadError, match='no such file'):
    video_io.read_video(tmp_path / 'nope.mp4')
  with pytest.raises(video_io.VideoReadError, match='not a regular file'):
    video_io.probe_video(tmp_path)


def test_truncated_file_raises_or_reads_fewer_frames(tmp_path):
  path = tmp_path / 'clip.avi'
  video_io.write_video(path, _gradient_video(t=24), codec='mpeg4')
  data = path.read_bytes()
  cut = tmp_path / 'cut.avi'
  cut.write_bytes(data[:len(data) // 2])
  # A cut AVI either decodes its first frames or fails with VideoReadError;
  # it never raises anything else.
  try:
    frames = video_io.read_video(cut)
  except video_io.VideoReadError:
    return
  assert 0 < len(frames) < 24
