"""Per-video PSNR / SSIM / MAE against dm-pix and hand values."""
import dm_pix as pix
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.metrics import video_quality


def _video(shape, seed=0):
  return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def test_identical_videos():
  v = _video((2, 3, 16, 16, 3))
  assert np.all(video_quality.mae(v, v) == 0)
  np.testing.assert_allclose(video_quality.psnr(v, v), video_quality.MAX_PSNR,
                             rtol=1e-6)  # Capped, not +inf.
  np.testing.assert_allclose(video_quality.ssim(v, v), 1.0, atol=1e-5)


def test_constant_offset_hand_values():
  a = np.full((1, 4, 12, 12, 3), 0.5, np.float32)
  b = a + 0.1
  np.testing.assert_allclose(video_quality.mae(a, b), [0.1], rtol=1e-5)
  # mse = 0.01 -> PSNR = -10 log10(0.01) = 20 dB.
  np.testing.assert_allclose(video_quality.psnr(a, b), [20.0], rtol=1e-4)


def test_matches_dm_pix_per_frame_and_shapes():
  a, b = _video((2, 3, 4, 16, 16, 3), 1), _video((2, 3, 4, 16, 16, 3), 2)
  frames = lambda x: jnp.asarray(x.reshape(-1, 16, 16, 3))
  for fn, ref in ((video_quality.psnr, pix.psnr), (video_quality.ssim,
                                                   pix.ssim),
                  (video_quality.mae, pix.mae)):
    out = fn(a, b)
    assert isinstance(out, np.ndarray) and out.shape == (2, 3)
    expected = np.asarray(ref(frames(a), frames(b))).reshape(2, 3, 4).mean(-1)
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_jax_in_jax_out_and_uint8_scaled():
  a = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
  out = video_quality.mae(jnp.asarray(a), jnp.asarray(a // 2))
  assert not isinstance(out, np.ndarray) and out.shape == ()
  expected = np.mean(np.abs(a / 255.0 - (a // 2) / 255.0))
  assert float(out) == pytest.approx(expected, rel=1e-5)


def test_shape_mismatch_raises():
  with pytest.raises(ValueError, match='shape'):
    video_quality.psnr(_video((2, 8, 8, 3)), _video((3, 8, 8, 3)))


def test_an_exact_frame_counts_as_8_bit_rounding_not_infinity():
  video = np.zeros((2, 8, 8, 3), np.uint8)
  other = video.copy()
  other[1] = 10  # Frame 1 off by 10 levels everywhere.
  frame_1 = -10 * np.log10((10 / 255) ** 2)
  expected = (video_quality.MAX_PSNR + frame_1) / 2
  np.testing.assert_allclose(video_quality.psnr(video, other), expected,
                             rtol=1e-5)
  assert video_quality.MAX_PSNR == pytest.approx(58.92, abs=0.01)
  assert video_quality.psnr(video, video) == pytest.approx(
      video_quality.MAX_PSNR)
