"""MPEG-4 extraction: GOP structure, motion vectors, residuals, Eq. 1-2."""
import os

import numpy as np
import pytest

from data_pipelines import video_io
from data_pipelines.mpeg import accumulate
from data_pipelines.mpeg import encoding
from data_pipelines.mpeg import extract
from data_pipelines.mpeg import motion_vectors
from data_pipelines.mpeg.errors import MpegExtractionError


def test_gops_have_the_papers_structure(right_moving_gops):
  g = right_moving_gops
  assert (g.codec, g.reencoded, g.num_gops, g.dropped_frames) == (
      'mpeg4', False, 2, 0)
  assert g.i_frames.shape == (2, 64, 64, 3) and g.i_frames.dtype == np.uint8
  assert g.motion_vectors.shape == (2, 11, 64, 64, 2)
  assert g.residuals.shape == (2, 11, 64, 64, 3)
  assert g.residuals.dtype == np.int16
  assert g.accumulated_motion_vectors.shape == (2, 11, 64, 64, 2)
  assert g.accumulated_residuals.shape == (2, 11, 64, 64, 3)
  np.testing.assert_array_equal(g.decoded[:, 0], g.i_frames)


def test_accumulation_identity_on_a_real_clip(right_moving_gops):
  """I_t(i) = I_0(i - Pi_t(i)) + Delta_t(i) for every P-frame of both GOPs.

  The decoded frames are the codec's; Pi and Delta come from its motion
  vectors. With motion rounded to whole pixels (MPEG-4's half-pixel
  interpolation is the codec rounding the residuals absorb), it is exact.
  """
  g = right_moving_gops
  for k in range(g.num_gops):
    rebuilt = accumulate.reconstruct_from_i_frame(
        g.i_frames[k], g.accumulated_motion_vectors[k],
        g.accumulated_residuals[k])
    np.testing.assert_array_equal(rebuilt, g.decoded[k, 1:])
  # Accumulated motion is real motion: it grows along the GOP.
  assert (np.abs(g.accumulated_motion_vectors[0, -1]).sum()
          > np.abs(g.accumulated_motion_vectors[0, 0]).sum() > 0)


def test_motion_vectors_follow_the_motion(right_moving_gops):
  g = right_moving_gops
  moving = np.abs(g.motion_vectors).sum(-1) > 0
  dx = g.motion_vectors[..., 0][moving]
  dy = g.motion_vectors[..., 1][moving]
  assert dx.mean() > 1.0 and abs(dy.mean()) < 0.5 * dx.mean()
  # Motion compensation predicts better than the previous frame as it is.
  frames = g.decoded.astype(np.int32)
  plain = np.abs(frames[:, 1:] - frames[:, :-1]).mean()
  assert np.abs(g.residuals).mean() < 0.8 * plain


def test_accumulate_hand_computed():
  # 1 x 4 frames, one channel: a bright pixel moves right 1 px per frame.
  frames = np.array([[[[0], [9], [0], [0]]], [[[0], [0], [9], [0]]],
                     [[[0], [0], [0], [9]]]], np.uint8)
  motion = np.zeros((2, 1, 4, 2), np.int32)
  motion[:, 0, 1:, 0] = 1  # Pixels 1..3 come from one to the left.
  delta = accumulate.residuals(frames, motion)
  # Frame 1 predicted from frame 0 moved right: [0, 0, 9, 0]; pixel 0 has
  # no motion and keeps frame 0's value.
  np.testing.assert_array_equal(delta[0, 0, :, 0], [0, 0, 0, 0])
  np.testing.assert_array_equal(delta[1, 0, :, 0], [0, 0, 0, 0])
  acc_motion, acc_residual = accumulate.accumulate(motion, delta)
  # Pixel 3 of frame 2 traces to pixel 1 of the I-frame; pixel 1 to 0.
  np.testing.assert_array_equal(acc_motion[1, 0, :, 0], [0, 1, 2, 2])
  np.testing.assert_array_equal(acc_residual, 0)
  np.testing.assert_array_equal(
      accumulate.reconstruct_from_i_frame(frames[0], acc_motion,
                                          acc_residual), frames[1:])


def _records(**fields):
  dtype = [('source', '<i4'), ('w', 'u1'), ('h', 'u1'), ('src_x', '<i2'),
           ('src_y', '<i2'), ('dst_x', '<i2'), ('dst_y', '<i2'),
           ('flags', '<u8'), ('motion_x', '<i4'), ('motion_y', '<i4'),
           ('motion_scale', '<u2')]
  out = np.zeros(1, dtype)
  for k, v in fields.items():
    out[k] = v
  return out


def test_rasterise_one_block():
  # A 16x16 block centred at (24, 8) whose source is 2 px right, 1 px up.
  rec = _records(source=-1, w=16, h=16, dst_x=24, dst_y=8, motion_x=4,
                 motion_y=-2, motion_scale=2)
  field = motion_vectors.rasterise(rec, 32, 48)
  assert field.shape == (32, 48, 2)
  np.testing.assert_array_equal(field[0:16, 16:32], np.broadcast_to(
      np.array([-2.0, 1.0], np.float32), (16, 16, 2)))
  assert not field[16:].any() and not field[:, :16].any()
  assert not field[:, 32:].any()
  np.testing.assert_array_equal(motion_vectors.rasterise(None, 4, 4), 0)
  with pytest.raises(ValueError, match='future frame'):
    motion_vectors.rasterise(_records(source=1, w=16, h=16, dst_x=8,
                                      dst_y=8, motion_scale=2), 16, 16)


def test_whole_pixels_round_half_away_from_zero():
  np.testing.assert_array_equal(
      motion_vectors.to_whole_pixels(np.array([-1.5, -0.5, 0.5, 1.0, 2.5])),
      [-2, -1, 1, 1, 3])


def test_corrupt_file_is_refused_by_name(tmp_path):
  path = tmp_path / 'broken.mp4'
  path.write_bytes(np.random.default_rng(0).bytes(4096))
  with pytest.raises(MpegExtractionError, match='broken.mp4.*corrupt'):
    extract.extract_gops(path)
  with pytest.raises(MpegExtractionError, match='no such file'):
    extract.extract_gops(tmp_path / 'missing.mp4')


def test_truncated_stream_is_refused(right_moving_clip):
  with pytest.raises(MpegExtractionError, match='bytes in memory'):
    extract.extract_gops(right_moving_clip[1][:200])


def test_h264_is_refused_or_reencoded_and_says_so(tmp_path,
                                                  right_moving_clip):
  path = str(tmp_path / 'clip.mp4')
  video_io.write_video(path, right_moving_clip[0], codec='libx264')
  with pytest.raises(MpegExtractionError,
                     match='clip.mp4.*h264, not MPEG-4 part 2'):
    extract.extract_gops(path, allow_reencode=False)
  gops = extract.extract_gops(path)
  assert gops.reencoded and 'h264' in gops.reencode_reason
  assert gops.codec == 'h264' and gops.num_gops == 2


def test_b_frames_and_odd_sizes_are_handled(tmp_path, right_moving_clip):
  path = str(tmp_path / 'with_b.avi')
  video_io.write_video(path, right_moving_clip[0], codec='mpeg4', bf=2, g=12,
                       qmin=4, qmax=4)
  with pytest.raises(MpegExtractionError, match='B-frames'):
    extract.extract_gops(path, allow_reencode=False)
  assert extract.extract_gops(path).reencode_reason == 'it has B-frames'

  odd = str(tmp_path / 'odd.mkv')
  video_io.write_video(odd, right_moving_clip[0][:, :33, :35], codec='ffv1',
                       pix_fmt='yuv444p')
  with pytest.raises(MpegExtractionError, match='odd frame size 33x35'):
    extract.extract_gops(odd)
  resized = extract.extract_gops(odd, size=(32, 32))
  assert resized.reencoded and resized.i_frames.shape == (2, 32, 32, 3)


def test_too_short_and_trailing_frames(right_moving_clip):
  frames = right_moving_clip[0]
  with pytest.raises(MpegExtractionError, match='fewer than one GOP'):
    extract.extract_gops(encoding.encode_mpeg4(frames[:5]))
  gops = extract.extract_gops(encoding.encode_mpeg4(frames[:17]))
  assert (gops.num_gops, gops.dropped_frames) == (1, 5)


def test_encoder_refuses_odd_sizes():
  with pytest.raises(ValueError, match='even frame size'):
    encoding.encode_mpeg4(np.zeros((2, 33, 32, 3), np.uint8))
