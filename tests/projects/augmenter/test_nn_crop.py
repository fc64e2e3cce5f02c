"""Operations on the code grid: nearest-neighbour crops and mirroring."""
import numpy as np
import pytest

from cvision.projects.augmenter import nn_crop


def _grid(b=2, t=1, h=4, w=4, c=2):
  return np.arange(b * t * h * w * c, dtype=np.int32).reshape(b, t, h, w, c)


def test_full_box_at_the_same_size_is_the_identity():
  codes = _grid(h=4, w=6)
  out = nn_crop.nearest_neighbour_crop(codes, [0.0, 0.0, 1.0, 1.0], (4, 6))
  np.testing.assert_array_equal(out, codes)
  assert out.dtype == codes.dtype


def test_top_left_quarter_repeats_each_cell_twice():
  codes = _grid(b=1)
  out = np.asarray(
      nn_crop.nearest_neighbour_crop(codes, [0.0, 0.0, 0.5, 0.5], (4, 4)))
  # Output cell o samples floor((o + 0.5) / 4 * 0.5 * 4) = 0, 0, 1, 1.
  idx = [0, 0, 1, 1]
  np.testing.assert_array_equal(out[0, 0], codes[0, 0][idx][:, idx])


def test_per_clip_boxes_and_another_output_size():
  codes = _grid(b=2)
  boxes = np.array([[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]], np.float32)
  out = np.asarray(nn_crop.nearest_neighbour_crop(codes, boxes, (2, 2)))
  assert out.shape == (2, 1, 2, 2, 2)
  # Clip 0: floor(2 + (o + 0.5)) = 2, 3; clip 1: floor((o + 0.5) * 2) = 1, 3.
  np.testing.assert_array_equal(out[0, 0], codes[0, 0][[2, 3]][:, [2, 3]])
  np.testing.assert_array_equal(out[1, 0], codes[1, 0][[1, 3]][:, [1, 3]])


def test_float_latents_work_too():
  latents = np.random.default_rng(0).normal(size=(1, 2, 4, 4, 3))
  out = nn_crop.nearest_neighbour_crop(latents.astype(np.float32),
                                       [0, 0, 1, 1], (4, 4))
  np.testing.assert_allclose(out, latents, rtol=1e-6)


def test_flip_code_grid_mirrors_width():
  codes = _grid()
  np.testing.assert_array_equal(nn_crop.flip_code_grid(codes),
                                codes[:, :, :, ::-1])


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match=r'\[B, T, H, W, C\]'):
    nn_crop.nearest_neighbour_crop(np.zeros((4, 4, 2)), [0, 0, 1, 1], (2, 2))
  with pytest.raises(ValueError, match='out_hw'):
    nn_crop.nearest_neighbour_crop(_grid(), [0, 0, 1, 1], (0, 2))
