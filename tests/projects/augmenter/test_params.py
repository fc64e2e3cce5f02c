"""Random and fixed augmentation parameters."""
import jax
import ml_collections
import numpy as np
import pytest

from cvision.projects.augmenter import params as params_lib
from cvision.projects.augmenter import pixel_transforms as pt

from experiments.configs import augmenter as augmenter_config

KEY = jax.random.PRNGKey(0)
# The ranges are the config's (the one place they are written).
RANGES = augmenter_config.get_config().augment


def _ranges(**overrides):
  config = ml_collections.ConfigDict(RANGES.to_dict())
  config.update(overrides)
  return config


def test_crop_boxes_lie_in_the_frame_with_sides_in_range():
  boxes = np.asarray(params_lib.sample_params(KEY, 'crop', 256, RANGES))
  assert boxes.shape == (256, 4)
  sides_h, sides_w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
  np.testing.assert_allclose(sides_h, sides_w, atol=1e-6)  # Square.
  assert sides_h.min() >= 0.5 - 1e-6 and sides_h.max() <= 0.9 + 1e-6
  assert boxes.min() >= 0.0 and boxes.max() <= 1.0 + 1e-6


def test_aspect_ratio_range_changes_box_shapes():
  config = _ranges(crop_min_aspect_ratio=0.5, crop_max_aspect_ratio=2.0)
  boxes = np.asarray(params_lib.sample_params(KEY, 'crop', 256, config))
  ratio = (boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1])
  assert ratio.min() < 0.8 and ratio.max() > 1.25
  assert boxes.min() >= 0.0 and boxes.max() <= 1.0 + 1e-6


@pytest.mark.parametrize('family,low,high', [
    ('brightness', -0.3, 0.3), ('saturation', 0.0, 2.0),
    ('rotation', -np.pi / 6, np.pi / 6)])
def test_scalar_families_stay_in_their_ranges(family, low, high):
  values = np.asarray(params_lib.sample_params(KEY, family, 512, RANGES))
  assert values.shape == (512, 1)
  assert low - 1e-6 <= values.min() < low + 0.1 * (high - low)
  assert high - 0.1 * (high - low) < values.max() <= high + 1e-6


def test_flips_are_zero_or_one_at_the_configured_rate():
  flips = np.asarray(params_lib.sample_params(
      KEY, 'flip', 1000, _ranges(flip_probability=0.25)))
  assert set(np.unique(flips)) <= {0.0, 1.0}
  assert 0.2 < flips.mean() < 0.3


def test_all_draws_exactly_one_family_per_clip():
  rows = np.asarray(params_lib.sample_params(KEY, 'all', 500, RANGES))
  assert rows.shape == (500, 8)
  identity = pt.identity_params('all', 1)[0]
  active = []
  for single in pt.SINGLE_FAMILIES:
    part = pt.field_slice('all', single)
    active.append(np.any(rows[:, part] != identity[part], axis=1))
  active = np.stack(active, axis=1)
  # A flip drawn as 0 looks like no family at all; never two at once.
  assert active.sum(axis=1).max() == 1
  assert np.all(active.sum(axis=0) > 50)


def test_sampling_is_a_function_of_the_key():
  a = params_lib.sample_params(KEY, 'all', 8, RANGES)
  b = params_lib.sample_params(KEY, 'all', 8, RANGES)
  c = params_lib.sample_params(jax.random.PRNGKey(1), 'all', 8, RANGES)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_embed_in_all_puts_fields_in_place():
  rows = np.asarray(params_lib.embed_in_all('brightness', np.array([[0.2]])))
  expected = pt.identity_params('all', 1)
  expected[0, pt.PARAM_NAMES['all'].index('delta')] = 0.2
  np.testing.assert_array_equal(rows, expected)


def test_linspace_boxes_span_the_frame_and_one_is_central():
  np.testing.assert_allclose(params_lib.linspace_boxes(1, 0.5),
                             [[0.25, 0.25, 0.75, 0.75]])
  np.testing.assert_allclose(
      params_lib.linspace_boxes(3, 0.5),
      [[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75], [0.5, 0.5, 1, 1]])
  np.testing.assert_array_equal(params_lib.flip_params(True, 2), [[1], [1]])


def test_bad_configs_are_named():
  with pytest.raises(ValueError, match=r"'crop' parameters need the fields "
                     r"\['crop_min_aspect_ratio', 'crop_max_aspect_ratio'\]"):
    params_lib.check_config({'crop_min_scale': 0.5, 'crop_max_scale': 0.9},
                            'crop')
  with pytest.raises(ValueError, match='crop_min_scale=0.9 and '
                     'augment.crop_max_scale=0.5'):
    params_lib.check_config(_ranges(crop_min_scale=0.9, crop_max_scale=0.5))
  with pytest.raises(ValueError, match='flip_probability=2'):
    params_lib.check_config(_ranges(flip_probability=2))
  with pytest.raises(ValueError, match="augment.rotation_fill='zero' is not "
                     r"one of \('reflect', 'edge', 'black'\)"):
    params_lib.check_config(_ranges(rotation_fill='zero'))
  with pytest.raises(ValueError, match="family 'zoom'"):
    params_lib.sample_params(KEY, 'zoom', 2, RANGES)
  with pytest.raises(ValueError, match='num_crops=0'):
    params_lib.linspace_boxes(0, 0.5)
