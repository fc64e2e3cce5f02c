"""MPEG-4 extraction: GOP structure, motion vectors, residuals, Eq. 1-2."""

import os

import av
import numpy as np
import pytest

from data_pipelines import decode_timing
from data_pipelines import video_io
from data_pipelines.mpeg import accumulate
from data_pipelines.mpeg import encoding
from data_pipelines.mpeg import extract
from data_pipelines.mpeg import motion_vectors
from data_pipelines.mpeg.errors import MpegExtractionError
from data_pipelines.mpeg.errors import TooShortError
from tests.data_pipelines import bad_videos


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


def _records(*blocks, **fields):
  """FFmpeg's MOTION_VECTORS records, one per dict (or one from **fields)."""
  dtype = [('source', '<i4'), ('w', 'u1'), ('h', 'u1'), ('src_x', '<i2'),
           ('src_y', '<i2'), ('dst_x', '<i2'), ('dst_y', '<i2'),
           ('flags', '<u8'), ('motion_x', '<i4'), ('motion_y', '<i4'),
           ('motion_scale', '<u2')]
  blocks = blocks or (fields,)
  out = np.zeros(len(blocks), dtype)
  for row, block in zip(out, blocks):
    for k, v in block.items():
      row[k] = v
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


def test_rasterise_cells_many_frames_and_frame_edges():
  """Several frames in one scatter; blocks cut by the frame; no vectors.

  10x18 pixels: a 3x5 grid of 4-pixel cells, cropped back to the frame.
  """
  frame_0 = _records(
      # 16x16 at the top left, from 2 px right (half-pixel units).
      dict(source=-1, w=16, h=16, dst_x=8, dst_y=8, motion_x=4,
           motion_scale=2),
      # 8x8 sticking out on the right, quarter-pixel units.
      dict(source=-1, w=8, h=8, dst_x=20, dst_y=4, motion_x=-2, motion_y=6,
           motion_scale=4))
  frame_2 = _records(source=-1, w=8, h=8, dst_x=4, dst_y=12, motion_y=-1,
                     motion_scale=2)
  cells = motion_vectors.rasterise_cells([frame_0, None, frame_2], 10, 18)
  assert cells.shape == (3, 3, 5, 2)
  field = motion_vectors.cells_to_pixels(cells, 10, 18)
  expected = np.zeros((3, 10, 18, 2), np.float32)
  expected[0, :, :16] = (-2.0, 0.0)
  expected[0, :8, 16:] = (0.5, -1.5)
  expected[2, 8:, :8] = (0.0, 0.5)
  np.testing.assert_array_equal(field, expected)
  np.testing.assert_array_equal(motion_vectors.rasterise(frame_0, 10, 18),
                                expected[0])
  # Rounding on cells, then expanding, is rounding every pixel.
  np.testing.assert_array_equal(
      motion_vectors.cells_to_pixels(motion_vectors.to_whole_pixels(cells),
                                     10, 18),
      motion_vectors.to_whole_pixels(expected))


def test_whole_pixels_round_half_away_from_zero():
  np.testing.assert_array_equal(
      motion_vectors.to_whole_pixels(np.array([-1.5, -0.5, 0.5, 1.0, 2.5])),
      [-2, -1, 1, 1, 3])


def test_direct_accumulation_is_the_recurrence_of_eq_2(right_moving_gops):
  """The extraction's one-gather Delta_t = I_t - I_0(Gamma_t) is Eq. 2."""
  g = right_moving_gops
  whole = motion_vectors.to_whole_pixels(g.motion_vectors)
  np.testing.assert_array_equal(accumulate.residuals(g.decoded, whole),
                                g.residuals)
  acc_motion, acc_residual = accumulate.accumulate(whole, g.residuals)
  np.testing.assert_array_equal(acc_motion, g.accumulated_motion_vectors)
  np.testing.assert_array_equal(acc_residual, g.accumulated_residuals)


def _panning_texture(num_frames=24, height=46, width=70):
  """A smooth random texture moving 2 px right and 1 px down every 2 frames,
  with a noise patch appearing: motion on both axes, intra blocks too."""
  rng = np.random.default_rng(3)
  noise = rng.uniform(0, 255, (height + 40, width + 60))
  kernel = np.ones(7) / 7
  smooth = np.apply_along_axis(np.convolve, 1, noise, kernel, 'same')
  smooth = np.apply_along_axis(np.convolve, 0, smooth, kernel, 'same')
  texture = np.stack([smooth, 255 - smooth, np.roll(smooth, 9, 1)], -1)
  frames = np.stack([
      np.roll(texture, (t // 2, 2 * t), (0, 1))[:height, :width]
      for t in range(num_frames)]).astype(np.uint8)
  frames[14:, 10:26, 30:46] = rng.integers(0, 255, (16, 16, 3))
  return frames


def test_accumulation_identity_on_a_textured_clip():
  """Eq. 1-2 on a clip whose size is no multiple of the 4-pixel cells."""
  gops = extract.extract_gops(encoding.encode_mpeg4(_panning_texture()),
                              keep_decoded=True, allow_reencode=False)
  assert gops.motion_vectors.shape == (2, 11, 46, 70, 2)
  assert np.any(gops.motion_vectors != 0, axis=-1).mean() > 0.5
  for k in range(gops.num_gops):
    np.testing.assert_array_equal(
        accumulate.reconstruct_from_i_frame(
            gops.i_frames[k], gops.accumulated_motion_vectors[k],
            gops.accumulated_residuals[k]),
        gops.decoded[k, 1:])
  # 11 P-frames of (2, 0.5) px each add up: Pi is about (22, 5.5).
  assert np.median(gops.accumulated_motion_vectors[0, -1, ..., 0]) >= 16
  assert np.median(gops.accumulated_motion_vectors[0, -1, ..., 1]) >= 3


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


def test_other_gop_structure_is_named(right_moving_clip):
  data = encoding.encode_mpeg4(right_moving_clip[0], gop_size=6)
  with pytest.raises(MpegExtractionError,
                     match=r'GOPs have \[6\] frames, not 12'):
    extract.extract_gops(data, allow_reencode=False)
  gops = extract.extract_gops(data)
  assert gops.reencoded and gops.num_gops == 2


def test_file_without_video_is_refused(tmp_path):
  path = tmp_path / 'sound.wav'
  with av.open(str(path), mode='w') as container:
    stream = container.add_stream('pcm_s16le', rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16),
                                       format='s16', layout='mono')
    frame.sample_rate = 8000
    for packet in list(stream.encode(frame)) + list(stream.encode()):
      container.mux(packet)
  with pytest.raises(MpegExtractionError,
                     match='sound.wav.*has no video stream'):
    extract.extract_gops(path)


def test_too_short_and_trailing_frames(right_moving_clip):
  frames = right_moving_clip[0]
  with pytest.raises(MpegExtractionError, match='fewer than one GOP'):
    extract.extract_gops(encoding.encode_mpeg4(frames[:5]))
  gops = extract.extract_gops(encoding.encode_mpeg4(frames[:17]))
  assert (gops.num_gops, gops.dropped_frames) == (1, 5)


def test_encoder_refuses_odd_sizes():
  with pytest.raises(ValueError, match='even frame size'):
    encoding.encode_mpeg4(np.zeros((2, 33, 32, 3), np.uint8))


# Bad input (docs/reliability.md, "MPEG-4 extraction").


def test_still_image_named_as_video_is_refused(tmp_path):
  path = tmp_path / 'photo.mp4'
  bad_videos.write_image_as_video(path)
  with pytest.raises(MpegExtractionError,
                     match=r"photo\.mp4'.*a still image \(png_pipe\)"):
    extract.extract_gops(path)


def test_file_cut_at_a_packet_boundary_is_refused_or_kept_truncated(
    tmp_path):
  path = tmp_path / 'cut.mp4'
  bad_videos.write_cut_mp4(path, num_frames=250, keep=0.5,
                           at_packet_boundary=True)
  with pytest.raises(MpegExtractionError,
                     match=r"cut\.mp4'.*ends after \d+ of the 250 frames"):
    extract.extract_gops(path, size=(32, 48))
  gops = extract.extract_gops(path, size=(32, 48), keep_truncated=True)
  assert 'of the 250 frames' in gops.truncated
  decoded = int(gops.truncated.split('after ')[1].split()[0])
  assert gops.num_frames == decoded and gops.num_gops == decoded // 12
  # Only the GOPs asked for are decoded: the loss after them is not seen.
  assert not extract.extract_gops(path, size=(32, 48), max_gops=2).truncated


def test_real_avi_cut_short(tmp_path):
  path = bad_videos.opencv_clip('tree.avi', tmp_path)  # 444 announced, 68.
  with pytest.raises(MpegExtractionError, match='68 of the 444 frames'):
    extract.extract_gops(path, size=(32, 32))
  gops = extract.extract_gops(path, size=(32, 32), keep_truncated=True)
  assert (gops.num_gops, gops.dropped_frames) == (5, 8)


def test_too_short_is_its_own_error(right_moving_clip):
  with pytest.raises(TooShortError, match='fewer than one GOP'):
    extract.extract_gops(encoding.encode_mpeg4(right_moving_clip[0][:5]))


def test_decoded_frames_are_those_of_per_frame_to_ndarray(tmp_path,
                                                          right_moving_clip):
  path = tmp_path / 'clip.mp4'
  path.write_bytes(right_moving_clip[1])
  gops = extract.extract_gops(path, keep_decoded=True, allow_reencode=False)
  np.testing.assert_array_equal(
      gops.decoded.reshape(24, 64, 64, 3),
      decode_timing.decode_per_frame(os.fspath(path), 24, None))
