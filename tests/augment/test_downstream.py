"""Code augmentation for a downstream model on codes (Table 4's rows)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision import tasks
from cvision.augment import downstream
from cvision.augment import frozen
from cvision.augment import nn_crop
from cvision.augment import params as params_lib
from experiments.configs import s3d as s3d_configs


def _latents(batch=2, t=4, h=8, w=8, c=3):
  return jnp.asarray(
      np.random.default_rng(0).normal(size=(batch, t, h, w, c)), jnp.float32)


def test_bad_settings_are_named():
  with pytest.raises(ValueError, match=r"code_augment.train='crops'"):
    downstream.from_config({'train': 'crops'})
  with pytest.raises(ValueError, match='eval_views=4 needs'):
    downstream.from_config({'eval_views': 4})
  with pytest.raises(ValueError, match='augmenter_workdir'):
    downstream.from_config({'train': 'learned'})
  with pytest.raises(ValueError, match=r'crop scale 1.5'):
    downstream.from_config({'crop_scale': 1.5})
  with pytest.raises(ValueError, match='unknown code_augment fields'):
    downstream.from_config({'views': 2})
  assert not downstream.from_config(None).active


def test_nn_crop_views_are_the_linearly_spaced_boxes():
  x = _latents()
  aug = downstream.from_config({'eval': 'nn_crop', 'eval_views': 3,
                                'crop_scale': 0.5})
  views = aug.eval_inputs(x)
  assert len(views) == 3
  boxes = params_lib.linspace_boxes(3, 0.5)
  for view, box in zip(views, boxes):
    assert view.shape == x.shape
    np.testing.assert_array_equal(
        view, nn_crop.nearest_neighbour_crop(x, box, (8, 8)))
  # The first box is the top-left quarter, each cell repeated 2x2.
  np.testing.assert_array_equal(views[0][:, :, ::2, ::2], x[:, :, :4, :4])
  np.testing.assert_array_equal(views[0][:, :, 1::2, 1::2], x[:, :, :4, :4])
  # 'none' at test is the clip itself, once.
  (same,) = downstream.from_config(None).eval_inputs(x)
  assert same is x


def test_nn_crop_training_boxes_are_random_per_clip_and_rng():
  x = _latents(batch=4)
  aug = downstream.from_config({'train': 'nn_crop', 'crop_min_scale': 0.5,
                                'crop_max_scale': 0.5})
  a = aug.train_input(x, jax.random.key(0))
  b = aug.train_input(x, jax.random.key(1))
  assert a.shape == x.shape
  assert not np.allclose(a, b)
  assert not np.allclose(a, x)  # A half-side box is never the whole grid.
  # Every clip of a is some 4x4 window of its own clip, upsampled 2x.
  for clip, out in zip(np.asarray(x), np.asarray(a)):
    window = out[:, ::2, ::2]
    found = any(np.array_equal(window, clip[:, i:i + 4, j:j + 4])
                for i in range(5) for j in range(5))
    assert found


def test_learned_views_go_through_the_network(tiny_augmenter_run,
                                              tiny_codec_run):
  augmenter = frozen.load_frozen_augmenter(tiny_augmenter_run)
  c = augmenter.latent_channels
  x = _latents(batch=2, t=4, h=8, w=8, c=c)
  aug = downstream.from_config(
      {'train': 'learned', 'eval': 'learned', 'eval_views': 2,
       'augmenter_workdir': tiny_augmenter_run},
      codebook_shape=(1, 8, c))
  views = aug.eval_inputs(x)
  boxes = params_lib.linspace_boxes(2, 0.875)
  for view, box in zip(views, boxes):
    np.testing.assert_allclose(
        view, augmenter.apply(x, np.tile(box, (2, 1))), rtol=1e-6)
  assert not np.allclose(views[0], views[1])
  trained = aug.train_input(x, jax.random.key(0))
  assert trained.shape == x.shape
  assert not np.allclose(trained, aug.train_input(x, jax.random.key(1)))
  with pytest.raises(ValueError, match='transforms'):
    downstream.from_config({'train': 'learned',
                            'augmenter_workdir': tiny_augmenter_run},
                           codebook_shape=(1, 8, c + 1))


def test_s3d_averages_logits_over_the_views(tiny_codec_run):
  config = s3d_configs.get_config('tiny,codes,nn_crops')
  config.codec.workdir = tiny_codec_run
  config.data.dataset_dir = os.path.join(tiny_codec_run, 'no_codes_here')
  config.code_augment.eval_views = 2
  task = tasks.build_task(config)
  aug = task.extras['augmentation']
  assert (aug.train_mode, aug.eval_mode, aug.eval_views) == (
      'nn_crop', 'nn_crop', 2)
  codebook = task.extras['codebook']
  n, k, _ = codebook.shape
  codes = jnp.asarray(np.random.default_rng(1).integers(
      0, k, (2, 4, 4, 4, n)), jnp.uint8)
  batch = {'codes': codes, 'label': jnp.asarray([1, 2])}
  variables = task.init(jax.random.key(0), batch)
  variables = jax.tree.map(lambda v: getattr(v, 'value', v), variables,
                           is_leaf=lambda v: hasattr(v, 'value'))
  params = variables.pop('params')
  logits = task.extras['logits'](params, variables, codes)
  model = task.extras['model']()
  x = task.extras['network_input'](params, codes)
  by_hand = np.mean([
      model.apply({'params': params, **variables},
                  nn_crop.nearest_neighbour_crop(x, box, (4, 4)), train=False)
      for box in params_lib.linspace_boxes(2, 0.875)], axis=0)
  np.testing.assert_allclose(logits, by_hand, rtol=1e-5, atol=1e-6)
  # Augmenting RGB is refused by name.
  rgb = s3d_configs.get_config('tiny,nn_crops')
  with pytest.raises(ValueError, match='code_augment augments codes'):
    tasks.build_task(rgb)
