"""Tests for data_pipelines.video_io."""

import os

import numpy as np
import pytest

from data_pipelines import decode_timing
from data_pipelines import video_io
from tests.data_pipelines import bad_videos


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
  real_iter_frames = video_io.iter_frames

  def counting_iter_frames(*args, **kwargs):
    for frame in real_iter_frames(*args, **kwargs):
      decoded.append(1)
      yield frame

  monkeypatch.setattr(video_io, 'iter_frames', counting_iter_frames)
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


def test_truncated_avi_is_a_decode_error_naming_the_frames(tmp_path):
  path = tmp_path / 'clip.avi'
  video_io.write_video(path, _gradient_video(t=24), codec='mpeg4')
  data = path.read_bytes()
  cut = tmp_path / 'cut.avi'
  cut.write_bytes(data[:len(data) * 9 // 10])
  # The AVI header announces 24 frames; the cut falls inside a later one.
  with pytest.raises(video_io.VideoDecodeError) as info:
    video_io.read_video(cut)
  assert 0 < info.value.frames_decoded < 24
  assert info.value.frames_expected == 24


# Bad input read by every builder (docs/reliability.md, "Video files").


@pytest.mark.parametrize('fmt', ['PNG', 'JPEG'])
def test_still_image_with_a_video_suffix_is_refused(tmp_path, fmt):
  path = tmp_path / 'x.mp4'
  bad_videos.write_image_as_video(path, fmt)
  for fn in (video_io.read_video, video_io.probe_video):
    with pytest.raises(video_io.VideoReadError,
                       match=r"x\.mp4'.*a still image \(\w+_pipe\), not a "
                       'video'):
      fn(path)


def test_cut_faststart_mp4_is_a_decode_error_after_its_frames(tmp_path):
  path, intact = tmp_path / 'cut.mp4', tmp_path / 'intact.mp4'
  bad_videos.write_cut_mp4(path, num_frames=250, keep=0.3, full_path=intact)
  assert video_io.probe_video(path).num_frames == 250  # It opens.
  with pytest.raises(video_io.VideoDecodeError,
                     match=r"cut\.mp4'.*corrupt packet after \d+ frames"
                     ) as info:
    video_io.read_video(path, size=(16, 24))
  decoded = info.value.frames_decoded
  assert 20 < decoded < 125 and info.value.frames_expected == 250
  # Every frame decoded before the fault reaches a streaming reader first.
  chunks = []
  with pytest.raises(video_io.VideoDecodeError):
    for chunk in video_io.iter_video_chunks(path, 32, size=(16, 24)):
      chunks.append(chunk)
  assert sum(len(c) for c in chunks) == decoded
  # The frames kept are the file's first frames, not garbage.
  np.testing.assert_array_equal(
      np.concatenate(chunks),
      video_io.read_video(intact, size=(16, 24), max_frames=decoded))


def test_mp4_cut_at_a_packet_boundary_is_caught_by_its_frame_count(tmp_path):
  path = tmp_path / 'cut.mp4'
  bad_videos.write_cut_mp4(path, num_frames=250, keep=0.3,
                           at_packet_boundary=True)
  with pytest.raises(video_io.VideoDecodeError,
                     match=r'ends after \d+ of the 250 frames') as info:
    video_io.read_video(path)
  assert info.value.frames_decoded < 125
  # Reading only the frames that are there is no error.
  assert len(video_io.read_video(path, max_frames=10)) == 10


def test_cut_mkv_is_caught_by_its_duration(tmp_path):
  full, cut = tmp_path / 'full.mkv', tmp_path / 'cut.mkv'
  video_io.write_video(full, bad_videos.moving_frames(60), crf=18)
  assert video_io.read_video(full).shape[0] == 60
  offsets = bad_videos.packet_offsets(full)
  bad_videos.cut_file(full, cut, offsets[30])
  with pytest.raises(video_io.VideoDecodeError,
                     match=r'ends after \d+ of the 60 frames'):
    video_io.read_video(cut)


def test_file_with_sound_and_no_video_is_refused(tmp_path):
  path = tmp_path / 'sound.mp4'
  bad_videos.write_audio_only(path)
  with pytest.raises(video_io.VideoReadError, match='has no video stream'):
    video_io.read_video(path)


def test_fifo_and_broken_link_are_refused_without_blocking(tmp_path):
  fifo = tmp_path / 'pipe.mp4'
  os.mkfifo(fifo)  # Opening it for reading would wait for a writer.
  with pytest.raises(video_io.VideoReadError, match='not a regular file'):
    video_io.read_video(fifo)
  link = tmp_path / 'gone.mp4'
  link.symlink_to(tmp_path / 'deleted.mp4')
  with pytest.raises(video_io.VideoReadError, match='no such file'):
    video_io.probe_video(link)


def test_unreadable_file_is_a_video_read_error(tmp_path, monkeypatch):
  path = tmp_path / 'locked.mp4'
  video_io.write_video(path, bad_videos.moving_frames(4))
  # Tests run as root, where chmod cannot make a file unreadable: the error
  # FFmpeg gives an unreadable file is simulated.
  def refuse(*args, **kwargs):
    raise PermissionError(13, 'Permission denied', os.fspath(path))

  monkeypatch.setattr(video_io.av, 'open', refuse)
  with pytest.raises(video_io.VideoReadError,
                     match=r"locked\.mp4'.*Permission denied"):
    video_io.read_video(path)


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads any file: chmod '
                    'cannot make it unreadable (see the simulated test)')
def test_unreadable_file_by_permissions(tmp_path):
  path = tmp_path / 'locked.mp4'
  video_io.write_video(path, bad_videos.moving_frames(4))
  path.chmod(0)
  with pytest.raises(video_io.VideoReadError, match='Permission denied'):
    video_io.read_video(path)


def test_frame_size_change_is_named_unless_resizing(tmp_path):
  path = tmp_path / 'sizes.m2v'
  bad_videos.write_size_change(path)
  with pytest.raises(video_io.VideoDecodeError,
                     match='frame size changes from 32x48 to 48x64'):
    video_io.read_video(path)
  assert video_io.read_video(path, size=(16, 16)).shape[1:] == (16, 16, 3)


# Real clips (Debian's opencv-doc; skipped when it is not installed).


def test_real_avi_cut_short_is_named(tmp_path):
  # tree.avi's header lists 444 frames; the file holds 68.
  path = bad_videos.opencv_clip('tree.avi', tmp_path)
  with pytest.raises(video_io.VideoDecodeError,
                     match='ends after 68 of the 444 frames'):
    video_io.read_video(path, size=(16, 16))
  assert len(video_io.read_video(path, max_frames=68)) == 68


def test_real_damaged_xvid_still_reads_in_full(tmp_path):
  # Megamind_bugy.avi: packed-bitstream Xvid that FFmpeg decodes whole.
  path = bad_videos.opencv_clip('Megamind_bugy.avi', tmp_path)
  frames = video_io.read_video(path, size=(33, 45))
  assert frames.shape == (270, 33, 45, 3)
  assert frames.std() > 10  # Pictures, not a blank fill.


@pytest.mark.parametrize('clip,num_frames,size', [
    ('vtest.avi', 40, None), ('vtest.avi', 40, (64, 64)),
    ('cup.mp4', 30, (48, 64)), ('tree.avi', 20, (30, 40)),
])
def test_frames_are_those_of_per_frame_to_ndarray(tmp_path, clip,
                                                  num_frames, size):
  """The reused single-threaded converter changes no pixel (issue 38)."""
  path = bad_videos.opencv_clip(clip, tmp_path)
  np.testing.assert_array_equal(
      video_io.read_video(path, size=size, max_frames=num_frames),
      decode_timing.decode_per_frame(path, num_frames, size))


@pytest.mark.parametrize('size', [None, (20, 30)])
def test_generated_frames_are_those_of_per_frame_to_ndarray(tmp_path, size):
  path = tmp_path / 'clip.mkv'
  video_io.write_video(path, bad_videos.moving_frames(12), crf=20)
  np.testing.assert_array_equal(
      video_io.read_video(path, size=size),
      decode_timing.decode_per_frame(os.fspath(path), 12, size))


def test_decode_timing_times_each_decoder(tmp_path):
  path = tmp_path / 'clip.mp4'
  video_io.write_video(path, bad_videos.moving_frames(12))
  timings = decode_timing.time_decoders(
      {'clip': decode_timing.decode_clip,
       'per_frame': decode_timing.decode_per_frame},
      os.fspath(path), num_frames=8, size=(16, 16), repeats=3)
  for timing in timings.values():
    assert len(timing.seconds) == 3 and timing.num_frames == 8
    assert timing.frames_per_s == pytest.approx(8 / timing.median_s)
