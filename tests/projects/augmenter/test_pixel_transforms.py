"""Pixel-space ground truths A(X; p) against hand-computed small cases."""
import jax
import numpy as np
import pytest

from cvision.projects.augmenter import pixel_transforms as pt


def _video(b=2, t=2, h=4, w=4, seed=0):
  return np.random.default_rng(seed).uniform(
      0.05, 0.95, (b, t, h, w, 3)).astype(np.float32)


def test_flip_is_exact_and_per_clip():
  video = _video()
  out = np.asarray(pt.flip(video, np.array([[1.0], [0.0]])))
  np.testing.assert_array_equal(out[0], video[0][:, :, ::-1])
  np.testing.assert_array_equal(out[1], video[1])


def test_full_frame_box_is_the_identity():
  video = _video(h=6, w=5)
  out = pt.crop(video, np.tile([[0.0, 0.0, 1.0, 1.0]], (2, 1)))
  np.testing.assert_allclose(out, video, atol=1e-6)


def test_crop_samples_pixel_centres_bilinearly():
  # Columns hold their index: the top-left quarter, resized 2x, samples
  # columns (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (the first one
  # clamped to the edge).
  frame = np.tile(np.arange(4, dtype=np.float32)[None, :, None] / 10,
                  (4, 1, 3))
  video = frame[None, None]
  out = np.asarray(pt.crop(video, np.array([[0.0, 0.0, 0.5, 0.5]])))
  np.testing.assert_allclose(out[0, 0, 0, :, 0],
                             np.array([0.0, 0.25, 0.75, 1.25]) / 10,
                             atol=1e-6)
  # Every row is the same (the input rows are).
  np.testing.assert_allclose(out[0, 0, :, :, 0], out[0, 0, :1, :, 0]
                             .repeat(4, 0), atol=1e-6)


def test_brightness_adds_and_clips():
  video = np.full((1, 1, 2, 2, 3), 0.5, np.float32)
  video[0, 0, 0, 0] = 0.95
  out = np.asarray(pt.brightness(video, np.array([[0.1]])))
  np.testing.assert_allclose(out[0, 0, 1, 1], [0.6, 0.6, 0.6], atol=1e-6)
  np.testing.assert_allclose(out[0, 0, 0, 0], [1.0, 1.0, 1.0])


def test_saturation_zero_is_grey_at_the_hsv_value_and_one_is_identity():
  video = np.zeros((1, 1, 1, 1, 3), np.float32)
  video[..., :] = [0.2, 0.4, 0.6]
  grey = np.asarray(pt.saturation(video, np.array([[0.0]])))
  np.testing.assert_allclose(grey.ravel(), [0.6, 0.6, 0.6], atol=1e-6)
  video = _video()
  same = pt.saturation(video, np.ones((2, 1), np.float32))
  np.testing.assert_allclose(same, video, atol=1e-5)


def test_rotation_by_a_quarter_turn_is_rot90_counter_clockwise():
  video = _video(b=1, t=1, h=5, w=5)
  out = np.asarray(pt.rotation(video, np.array([[np.pi / 2]])))
  # The border is left out: float32 cos(pi/2) is not 0, so border pixels
  # sample a hair outside the frame and get the fill.
  np.testing.assert_allclose(out[0, 0, 1:-1, 1:-1],
                             np.rot90(video[0, 0])[1:-1, 1:-1], atol=1e-5)


def test_rotation_fills_corners_black():
  video = np.ones((1, 1, 8, 8, 3), np.float32)
  out = np.asarray(pt.rotation(video, np.array([[np.pi / 4]]), fill='black'))
  assert out[0, 0, 0, 0].max() == 0.0
  assert out[0, 0, 4, 4].min() == 1.0


def test_rotation_reflect_and_edge_fills_keep_the_frames_colours():
  # A constant frame stays constant when the corners come from the frame
  # itself; black corners would not.
  video = np.full((1, 1, 8, 8, 3), 0.7, np.float32)
  angle = np.array([[np.pi / 4]])
  for fill in ('reflect', 'edge'):
    out = np.asarray(pt.rotation(video, angle, fill=fill))
    np.testing.assert_allclose(out, video, atol=1e-5, err_msg=fill)
  # The fill changes only what lies outside the rotated frame.
  video = _video(b=1, t=1, h=8, w=8)
  fills = {f: np.asarray(pt.rotation(video, angle, fill=f))[0, 0]
           for f in ('reflect', 'edge', 'black')}
  for fill in ('reflect', 'edge'):
    np.testing.assert_allclose(fills[fill][3:5, 3:5], fills['black'][3:5, 3:5],
                               atol=1e-6)
    assert np.abs(fills[fill][0, 0] - fills['black'][0, 0]).max() > 1e-3


def test_rotation_fill_default_is_reflect_and_bad_fill_raises():
  video = _video()
  angle = np.full((2, 1), 0.4, np.float32)
  np.testing.assert_allclose(
      pt.rotation(video, angle),
      pt.augment('rotation', video, angle, rotation_fill='reflect'))
  with pytest.raises(ValueError, match="rotation_fill='zero' is not one of"):
    pt.augment('rotation', video, angle, rotation_fill='zero')


def test_all_family_with_identity_values_is_the_identity():
  video = _video()
  out = pt.augment('all', video, pt.identity_params('all', 2))
  np.testing.assert_allclose(out, video, atol=1e-5)


def test_all_family_with_one_active_family_matches_that_family():
  video = _video(h=8, w=8)
  box = np.array([[0.1, 0.2, 0.6, 0.7], [0.0, 0.0, 0.5, 0.5]], np.float32)
  params = pt.identity_params('all', 2)
  params[:, pt.field_slice('all', 'crop')] = box
  np.testing.assert_allclose(pt.augment('all', video, params),
                             pt.crop(video, box), atol=1e-5)


def test_augment_jits_and_keeps_shape():
  video = _video()
  params = np.array([[0.3], [-0.3]], np.float32)
  out = jax.jit(pt.augment, static_argnums=0)('rotation', video, params)
  assert out.shape == video.shape


def test_bad_inputs_name_what_is_wrong():
  with pytest.raises(ValueError, match="family 'zoom'"):
    pt.augment('zoom', _video(), np.zeros((2, 1)))
  with pytest.raises(ValueError, match=r"crop params must be \[B=2, P=4\]"):
    pt.crop(_video(), np.zeros((2, 3)))
  with pytest.raises(ValueError, match=r'\[B, T, H, W, 3\]'):
    pt.flip(np.zeros((2, 4, 4, 3)), np.zeros((2, 1)))
