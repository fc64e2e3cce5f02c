"""Code augmentation for a downstream model on codes (Table 4's rows)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision import projects
from cvision.projects.s3d import task as s3d_task
from cvision.projects.augmenter import downstream
from cvision.projects.augmenter import frozen
from cvision.projects.augmenter import nn_crop
from cvision.projects.augmenter import params as params_lib
from cvision.projects.codec.vqvae import quantizer as vq_lib
from experiments.configs import s3d as s3d_configs


def _code_augment(overrides=None):
  """`config.code_augment` of the s3d config (its defaults) with overrides."""
  config = s3d_configs.get_config().code_augment
  config.update(overrides or {})
  return config


def _from_config(overrides=None, **kwargs):
  return downstream.from_config(_code_augment(overrides), **kwargs)


def _latents(batch=2, t=4, h=8, w=8, c=3):
  return jnp.asarray(
      np.random.default_rng(0).normal(size=(batch, t, h, w, c)), jnp.float32)


def test_bad_settings_are_named():
  with pytest.raises(ValueError, match=r"code_augment.train='crops'"):
    _from_config({'train': 'crops'})
  with pytest.raises(ValueError, match='eval_views=4 needs'):
    _from_config({'eval_views': 4})
  with pytest.raises(ValueError, match='augmenter_workdir'):
    _from_config({'train': 'learned'})
  with pytest.raises(ValueError, match=r'crop scale 1.5'):
    _from_config({'crop_scale': 1.5})
  assert not _from_config(None).active


def test_nn_crop_views_are_the_linearly_spaced_boxes():
  x = _latents()
  aug = _from_config({'eval': 'nn_crop', 'eval_views': 3,
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
  (same,) = _from_config(None).eval_inputs(x)
  assert same is x


def test_nn_crop_training_boxes_are_random_per_clip_and_rng():
  x = _latents(batch=4)
  aug = _from_config({'train': 'nn_crop', 'crop_min_scale': 0.5,
                                'crop_max_scale': 0.5})
  a, flipped = aug.train_input(x, jax.random.key(0))
  b, _ = aug.train_input(x, jax.random.key(1))
  assert flipped is None  # Boxes never mirror.
  assert a.shape == x.shape
  assert not np.allclose(a, b)
  assert not np.allclose(a, x)  # A half-side box is never the whole grid.
  # Every clip of a is some 4x4 window of its own clip, upsampled 2x.
  for clip, out in zip(np.asarray(x), np.asarray(a)):
    window = out[:, ::2, ::2]
    found = any(np.array_equal(window, clip[:, i:i + 4, j:j + 4])
                for i in range(5) for j in range(5))
    assert found


def test_train_probability_augments_that_share_of_clips():
  x = _latents(batch=64)
  aug = _from_config({'train': 'nn_crop', 'crop_min_scale': 0.5,
                                'crop_max_scale': 0.5,
                                'train_probability': 0.25})
  out, flipped = aug.train_input(x, jax.random.key(0))
  assert flipped is None
  out = np.asarray(out)
  kept = [np.array_equal(o, c) for o, c in zip(out, np.asarray(x))]
  # A half-side box never gives the clip back, so the kept clips are the
  # ones the coin skipped: about 3 in 4 (48 expected, sd 3.5).
  assert 36 <= sum(kept) <= 60
  every = _from_config({'train': 'nn_crop', 'crop_min_scale': 0.5,
                                  'crop_max_scale': 0.5})
  boxes, _ = every.train_input(x, jax.random.key(0))
  assert not any(np.array_equal(o, c)
                 for o, c in zip(np.asarray(boxes), np.asarray(x)))
  with pytest.raises(ValueError, match=r'train_probability=0.0 must be in'):
    _from_config({'train': 'nn_crop', 'train_probability': 0.0})


def test_learned_views_go_through_the_network(tiny_augmenter_run,
                                              tiny_codec_run):
  augmenter = frozen.load_frozen_augmenter(tiny_augmenter_run)
  c = augmenter.latent_channels
  x = _latents(batch=2, t=4, h=8, w=8, c=c)
  aug = _from_config(
      {'train': 'learned', 'eval': 'learned', 'eval_views': 2,
       'augmenter_workdir': tiny_augmenter_run},
      codebook_shape=(1, 8, c))
  views = aug.eval_inputs(x)
  boxes = params_lib.linspace_boxes(2, 0.875)
  for view, box in zip(views, boxes):
    np.testing.assert_allclose(
        view, augmenter.apply(x, np.tile(box, (2, 1))), rtol=1e-6)
  assert not np.allclose(views[0], views[1])
  trained, flipped = aug.train_input(x, jax.random.key(0))
  assert trained.shape == x.shape and flipped is None  # A crop network.
  assert not np.allclose(trained, aug.train_input(x, jax.random.key(1))[0])
  with pytest.raises(ValueError, match='transforms'):
    _from_config({'train': 'learned',
                            'augmenter_workdir': tiny_augmenter_run},
                           codebook_shape=(1, 8, c + 1))


def test_learned_crop_training_boxes_follow_code_augment(tiny_augmenter_run):
  augmenter = frozen.load_frozen_augmenter(tiny_augmenter_run)
  c = augmenter.latent_channels
  x = _latents(batch=3, t=4, h=8, w=8, c=c)
  key = jax.random.key(0)
  fixed = params_lib.crop_ranges(0.875, 0.875)
  aug = _from_config(
      {'train': 'learned', 'augmenter_workdir': tiny_augmenter_run,
       'crop_min_scale': 0.875, 'crop_max_scale': 0.875},
      codebook_shape=(1, 8, c))
  trained, _ = aug.train_input(x, key)
  boxes = params_lib.sample_params(key, 'crop', 3, fixed)
  np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], 0.875, rtol=1e-6)
  np.testing.assert_allclose(trained, augmenter.apply(x, boxes), rtol=1e-6)
  # The network was trained on sides 0.5-0.9 (augmenter.py's default).
  with pytest.raises(ValueError, match=r'crop_min_scale=0.3 .*sides 0.5-0.9'):
    _from_config(
        {'train': 'learned', 'augmenter_workdir': tiny_augmenter_run,
         'crop_min_scale': 0.3})
  with pytest.raises(ValueError, match=r'crop_scale=0.95: .*sides 0.5-0.9'):
    _from_config(
        {'eval': 'learned', 'eval_views': 2, 'crop_scale': 0.95,
         'augmenter_workdir': tiny_augmenter_run})


def test_s3d_averages_logits_over_the_views(tiny_codec_run):
  config = s3d_configs.get_config('tiny,codes,nn_crops')
  config.codec.workdir = tiny_codec_run
  config.data.dataset_dir = os.path.join(tiny_codec_run, 'no_codes_here')
  config.code_augment.eval_views = 2
  classifier = s3d_task.build(config)
  task = classifier.task
  aug = classifier.augmentation
  assert (aug.train_mode, aug.eval_mode, aug.eval_views) == (
      'nn_crop', 'nn_crop', 2)
  n, k, _ = classifier.codec.codebook.shape
  codes = jnp.asarray(np.random.default_rng(1).integers(
      0, k, (2, 4, 4, 4, n)), jnp.uint8)
  batch = {'codes': codes, 'label': jnp.asarray([1, 2])}
  variables = task.init(jax.random.key(0), batch)
  variables = jax.tree.map(lambda v: getattr(v, 'value', v), variables,
                           is_leaf=lambda v: hasattr(v, 'value'))
  params = variables.pop('params')
  logits = task.predict(params, variables, batch)
  model = classifier.model
  x = classifier.network_input(params, codes)
  by_hand = np.mean([
      model.apply({'params': params, **variables},
                  nn_crop.nearest_neighbour_crop(x, box, (4, 4)), train=False)
      for box in params_lib.linspace_boxes(2, 0.875)], axis=0)
  np.testing.assert_allclose(logits, by_hand, rtol=1e-5, atol=1e-6)
  # Augmenting RGB is refused by name.
  rgb = s3d_configs.get_config('tiny,nn_crops')
  with pytest.raises(ValueError, match='code_augment augments codes'):
    projects.build_task(rgb)


class _ExactFlipNetwork:
  """Stands in for a frozen 'flip' network: mirrors where the flag is set."""
  family = 'flip'

  def sample_params(self, rng, batch):
    return params_lib.sample_params(rng, 'flip', batch,
                                    {'flip_probability': 0.5})

  def apply(self, latents, params, family=None):
    del family  # Always 'flip'.
    flag = jnp.asarray(params)[:, 0, None, None, None, None] >= 0.5
    return jnp.where(flag, latents[:, :, :, ::-1], latents)


def _flip_augmentation():
  base = _from_config(
      {'flip_classes': s3d_configs.MOVING_DIGITS_FLIP_CLASSES})
  return downstream.CodeAugmentation(**dict(
      vars(base), train_mode='learned', augmenter=_ExactFlipNetwork()))


def test_flipped_training_clips_get_the_mirrored_label():
  aug = _flip_augmentation()
  x = _latents(batch=16)
  out, flipped = aug.train_input(x, jax.random.key(3))
  flipped = np.asarray(flipped)
  assert 0 < flipped.sum() < 16  # Probability 1/2 per clip.
  for clip, got, f in zip(np.asarray(x), np.asarray(out), flipped):
    np.testing.assert_array_equal(got, clip[:, :, ::-1] if f else clip)
  # translate_right <-> left, rotate_cw <-> ccw; down, up, grow, shrink stay.
  labels = jnp.asarray([0, 1, 2, 3, 4, 5, 6, 7])
  both = jnp.asarray([True] * 8)
  np.testing.assert_array_equal(aug.train_labels(labels, both),
                                [1, 0, 2, 3, 5, 4, 6, 7])
  np.testing.assert_array_equal(aug.train_labels(labels, ~both), labels)
  # Per-frame labels [B, T]: a flipped clip's every frame is mirrored.
  frames = jnp.asarray([[0, 4, 6], [0, 4, 6]])
  np.testing.assert_array_equal(
      aug.train_labels(frames, jnp.asarray([True, False])),
      [[1, 5, 6], [0, 4, 6]])
  # Mirror-invariant labels (flip_classes=()) are left alone.
  keep = downstream.CodeAugmentation(**dict(vars(aug), flip_classes=None))
  np.testing.assert_array_equal(keep.train_labels(labels, both), labels)


def test_clips_the_coin_skips_are_neither_flipped_nor_relabelled():
  aug = downstream.CodeAugmentation(**dict(
      vars(_flip_augmentation()), train_probability=0.5))
  x = _latents(batch=32)
  out, flipped = aug.train_input(x, jax.random.key(5))
  flipped = np.asarray(flipped)
  for clip, got, f in zip(np.asarray(x), np.asarray(out), flipped):
    np.testing.assert_array_equal(got, clip[:, :, ::-1] if f else clip)
  # Flip chance 1/2 times coin 1/2: about 8 of 32 (sd 2.4).
  assert 2 <= flipped.sum() <= 15
  _, every = _flip_augmentation().train_input(x, jax.random.key(5))
  assert flipped.sum() < np.asarray(every).sum()


def test_a_flipped_test_view_is_scored_in_the_clip_classes():
  aug = downstream.CodeAugmentation(**dict(
      vars(_flip_augmentation()), eval_mode='learned', eval_views=2))
  x = _latents(batch=1, w=4)
  views = aug.eval_inputs(x)
  assert aug.eval_view_flipped() == [False, True]
  np.testing.assert_array_equal(views[1], x[:, :, :, ::-1])

  # A "network" that says translate_right when the top-left cell is bigger
  # than the top-right one, translate_left otherwise.
  def scores(view):
    right = view[:, 0, 0, 0, 0] > view[:, 0, 0, -1, 0]
    return jnp.where(right[:, None], jnp.eye(8)[0], jnp.eye(8)[1])

  # Both views agree once the mirrored one is mapped back.
  averaged = downstream.average_over_views(scores, views, aug)
  np.testing.assert_array_equal(averaged, scores(x))
  # Averaged as they come, they would cancel out.
  naive = downstream.average_over_views(scores, views)
  np.testing.assert_allclose(naive[0, :2], [0.5, 0.5])


def test_bad_flip_classes_are_named():
  with pytest.raises(ValueError, match=r'flip_classes=\(0, 0, 1\) must list'):
    _from_config({'flip_classes': (0, 0, 1)})
  with pytest.raises(ValueError, match='class 0 goes to 1, whose mirror is 2'):
    _from_config({'flip_classes': (1, 2, 0)})
  aug = _flip_augmentation()
  with pytest.raises(ValueError, match='has 8 entries for a model of 4'):
    aug.check_num_classes(4)
  aug.check_num_classes(8)
  # Without flips the map is not used, so any class count is fine.
  _from_config(
      {'flip_classes': s3d_configs.MOVING_DIGITS_FLIP_CLASSES}
  ).check_num_classes(101)


def test_the_s3d_flip_map_is_the_generator_mirror():
  from data_pipelines.generated import moving_digits  # pylint: disable=g-import-not-at-top
  assert (s3d_configs.MOVING_DIGITS_FLIP_CLASSES ==
          moving_digits.DEFAULT.label_flip_classes)
  assert (tuple(s3d_configs.get_config('codes').code_augment.flip_classes)
          == s3d_configs.MOVING_DIGITS_FLIP_CLASSES)


def test_s3d_trains_flipped_clips_on_mirrored_labels(tiny_codec_run,
                                                     monkeypatch):
  aug = _flip_augmentation()
  monkeypatch.setattr(downstream, 'from_config', lambda *a, **k: aug)
  config = s3d_configs.get_config('tiny,codes')
  config.codec.workdir = tiny_codec_run
  config.data.dataset_dir = os.path.join(tiny_codec_run, 'no_codes_here')
  classifier = s3d_task.build(config)
  task = classifier.task
  n, k, _ = classifier.codec.codebook.shape
  codes = jnp.asarray(np.random.default_rng(1).integers(
      0, k, (8, 4, 4, 4, n)), jnp.uint8)
  labels = jnp.asarray([0, 1, 4, 5, 0, 1, 4, 5])
  batch = {'codes': codes, 'label': labels}
  variables = task.init(jax.random.key(0), batch)
  variables = jax.tree.map(lambda v: getattr(v, 'value', v), variables,
                           is_leaf=lambda v: hasattr(v, 'value'))
  params = variables.pop('params')
  rng = jax.random.key(7)
  loss, _ = task.loss(params, variables, batch, rng)
  # The same clips by hand: the task splits off the augmentation key first.
  dropout_rng, augment_rng = jax.random.split(rng)
  x, flipped = aug.train_input(classifier.network_input(params, codes),
                               augment_rng)
  assert 0 < int(np.sum(flipped)) < 8
  logits, _ = classifier.model.apply(
      {'params': params, **variables}, x, train=True,
      rngs={'dropout': dropout_rng}, mutable=list(variables))
  mirrored = jnp.where(flipped, jnp.asarray([1, 0, 5, 4, 1, 0, 5, 4]), labels)
  want = s3d_task.per_example_metrics(logits, mirrored)['loss'].mean()
  as_given = s3d_task.per_example_metrics(logits, labels)['loss'].mean()
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  assert abs(float(want) - float(as_given)) > 1e-4


class _SnappingCodec:
  """Stands in for a `FrozenCodec`: only its codebooks are used."""

  def __init__(self, codebook):
    self.codebook = codebook

  def snap_to_codebook(self, latents):
    return vq_lib.snap_to_codebook(latents, self.codebook)


def test_snapped_learned_views_are_codebook_entries():
  codebook = np.asarray(np.random.default_rng(2).normal(size=(1, 5, 3)),
                        np.float32)
  x = _latents(batch=4, w=4)  # Off-codebook latents, C = 1 x 3.
  aug = downstream.CodeAugmentation(**dict(
      vars(_flip_augmentation()), eval_mode='learned', eval_views=2,
      snap_codec=_SnappingCodec(codebook)))
  trained, flipped = aug.train_input(x, jax.random.key(0))
  mirrored = jnp.where(jnp.asarray(flipped)[:, None, None, None, None],
                       x[:, :, :, ::-1], x)
  # Each cell is the codebook entry nearest to the network's output.
  nearest = np.argmin(((np.asarray(mirrored)[..., None, :] -
                        codebook[0]) ** 2).sum(-1), -1)
  np.testing.assert_array_equal(trained, codebook[0][nearest])
  plain, flip = aug.eval_inputs(x)
  np.testing.assert_array_equal(
      flip, vq_lib.snap_to_codebook(x[:, :, :, ::-1], codebook))
  np.testing.assert_array_equal(plain, vq_lib.snap_to_codebook(x, codebook))
  with pytest.raises(ValueError, match="snaps the learned network's outputs"):
    _from_config({'train': 'nn_crop', 'snap_to_codebook': True})


def test_snapping_needs_the_codec(tiny_augmenter_run):
  c = frozen.load_frozen_augmenter(tiny_augmenter_run).latent_channels
  with pytest.raises(ValueError, match='snap_to_codebook needs the codec'):
    _from_config(
        {'train': 'learned', 'augmenter_workdir': tiny_augmenter_run,
         'snap_to_codebook': True}, codebook_shape=(1, 8, c))
