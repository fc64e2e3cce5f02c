"""Augmenting a downstream model's code inputs (paper Sec. 3.4, Table 4).

A model trained on codes gets its augmentations in code space, from one of:

| mode    | train time (a random `p` per clip)  | test time (N views, averaged)   |
|---------|-------------------------------------|---------------------------------|
| none    | the codes as encoded                | the codes as encoded (N = 1)    |
| nn_crop | a random box of the code grid,      | N linearly spaced boxes, each   |
|         | resized by nearest neighbour [44]   | resized by nearest neighbour    |
| learned | the augmentation network `a(z, p)`, | crop networks: N linearly spaced|
|         | crop boxes as nn_crop's (within the | boxes; flip networks: the clip  |
|         | network's trained sides), other `p` | and its flip (N = 2)            |
|         | from its training ranges            |                                 |

'none' is the central-crop baseline: the codec encoded the central view of
every video. `snap_to_codebook` replaces the learned network's output by
the nearest codebook entries, so the model only ever sees codes'
embeddings (on the CR-32 moving digits it changed top-1 by under 1.5
points: the network's latents are not hurt by being off the codebook).

Labels that a mirror changes (translate_right becomes translate_left, a
clockwise turn counter-clockwise; "pushing something from left to right" in
Something-Something) are declared by `flip_classes`, the class each class's
mirror image has. A clip flipped at train time then trains on its mirrored
label, and a flipped test view's scores are mapped back before averaging.
Without it, flips are only right for labels that a mirror keeps (Kinetics).

All of it runs on device inside the jitted step, on the
embedded codes `[B, T, H, W, C]`; the augmentation network is frozen (its
parameters are constants, `cvision.projects.augmenter.frozen`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cvision.projects.augmenter import frozen
from cvision.projects.augmenter import nn_crop
from cvision.projects.augmenter import params as params_lib
from cvision.projects.augmenter import pixel_transforms as pt

Array = jax.Array
MODES = ('none', 'nn_crop', 'learned')


@dataclasses.dataclass(frozen=True)
class CodeAugmentation:
  """Train- and test-time augmentation of embedded codes.

  Attributes:
    train_mode: one of `MODES`, at train time.
    eval_mode: one of `MODES`, at test time.
    eval_views: test-time views per clip.
    crop_scale: side of the test-time boxes, as a fraction of the grid.
    crop_ranges: the `params` ranges training boxes are sampled from, by
      'nn_crop' and by a 'learned' crop network.
    train_probability: chance that a training clip is augmented; the others
      pass as encoded (and are not flipped).
    augmenter: the frozen network, for 'learned'.
    flip_classes: `[num_classes]` int, the class of each class's mirror
      image; None when every label is mirror-invariant.
    snap_codec: the codec (`FrozenCodec`) whose codebooks the learned
      network's outputs are snapped to. None: used as they are.
  """
  train_mode: str
  eval_mode: str
  eval_views: int
  crop_scale: float
  crop_ranges: ml_collections.ConfigDict
  train_probability: float = 1.0
  augmenter: frozen.FrozenAugmenter | None = None
  flip_classes: np.ndarray | None = None
  snap_codec: Any = None

  @property
  def active(self) -> bool:
    return self.train_mode != 'none' or self.eval_mode != 'none'

  def train_input(self, latents: Array,
                  rng: Array) -> tuple[Array, Array | None]:
    """A random augmentation per clip, and which clips it mirrored.

    Each clip is augmented with probability `train_probability`, else
    passed as it is.

    Args:
      latents: `[B, T, H, W, C]` embedded codes.
      rng: a PRNG key.

    Returns:
      the augmented latents, the same shape, and `[B]` bool (True where the
      clip was flipped), or None when this mode never flips.
    """
    if self.train_mode == 'none' or self.train_probability >= 1.0:
      return self._augment(latents, rng)
    # Split only here, so that runs augmenting every clip keep their
    # random streams.
    rng, coin_rng = jax.random.split(rng)
    # Every clip is augmented and the coin picks per clip: under jit the
    # batch shape is static, so skipping clips would save no compute.
    augmented, flipped = self._augment(latents, rng)
    chosen = jax.random.uniform(coin_rng, (latents.shape[0],)) < (
        self.train_probability)
    mixed = jnp.where(chosen.reshape((-1,) + (1,) * (latents.ndim - 1)),
                      augmented, latents)
    return mixed, None if flipped is None else flipped & chosen

  def _augment(self, latents: Array,
               rng: Array) -> tuple[Array, Array | None]:
    """`train_input` for every clip."""
    batch = latents.shape[0]
    if self.train_mode == 'nn_crop':
      boxes = params_lib.sample_params(rng, 'crop', batch, self.crop_ranges)
      return nn_crop.nearest_neighbour_crop(latents, boxes,
                                            latents.shape[2:4]), None
    if self.train_mode == 'learned':
      if self.augmenter.family == 'crop':
        params = params_lib.sample_params(rng, 'crop', batch,
                                          self.crop_ranges)
      else:  # Flips (and 'all') draw from the network's own ranges.
        params = self.augmenter.sample_params(rng, batch)
      flipped = None
      if self._train_flips:
        # The pixel transform flips where the flag is >= 0.5.
        flag = params[:, pt.field_slice(self.augmenter.family, 'flip')]
        flipped = flag[:, 0] >= 0.5
      return self._learned(latents, params), flipped
    return latents, None

  def train_labels(self, labels: Array, flipped: Array | None) -> Array:
    """The labels of `train_input`'s clips: mirrored where flipped.

    Args:
      labels: `[B]` or `[B, T]` (per-frame) int class ids.
      flipped: `train_input`'s `[B]` bool, or None.
    """
    if flipped is None or self.flip_classes is None:
      return labels
    mirrored = jnp.asarray(self.flip_classes)[labels]
    flipped = flipped.reshape(flipped.shape + (1,) * (labels.ndim - 1))
    return jnp.where(flipped, mirrored, labels)

  def eval_inputs(self, latents: Array) -> list[Array]:
    """`[B, T, H, W, C]` -> `eval_views` views of it, each the same shape.

    `eval_view_flipped` says which views are mirror images; their scores
    are mapped back to the clip's classes (`unflip_scores`) before they are
    averaged.
    """
    batch = latents.shape[0]
    if self.eval_mode == 'none':
      return [latents]
    if self._eval_flips:
      flips = [params_lib.flip_params(f, batch) for f in (False, True)]
      return [self._learned(latents, p) for p in flips[:self.eval_views]]
    boxes = params_lib.linspace_boxes(self.eval_views, self.crop_scale)
    if self.eval_mode == 'nn_crop':
      return [nn_crop.nearest_neighbour_crop(latents, box, latents.shape[2:4])
              for box in boxes]
    return [self._learned(latents, np.tile(box, (batch, 1)), family='crop')
            for box in boxes]

  def _learned(self, latents: Array, params, family: str | None = None):
    """The augmentation network's output, snapped if so configured."""
    out = self.augmenter.apply(latents, params, family=family)
    if self.snap_codec is None:
      return out
    return self.snap_codec.snap_to_codebook(out).astype(
        out.dtype)

  @property
  def _train_flips(self) -> bool:
    return (self.train_mode == 'learned' and
            self.augmenter.family in ('flip', 'all'))

  @property
  def _eval_flips(self) -> bool:
    return self.eval_mode == 'learned' and self.augmenter.family == 'flip'

  def eval_view_flipped(self) -> list[bool]:
    """For each of `eval_inputs`' views, whether it is the mirror image."""
    if self._eval_flips:
      return [False, True][:self.eval_views]
    return [False] * (1 if self.eval_mode == 'none' else self.eval_views)

  def unflip_scores(self, scores: Array) -> Array:
    """A mirrored view's `[..., num_classes]` scores, in the clip's classes.

    The mirror of class c is class `flip_classes[c]`, so the clip's score for
    c is the mirrored view's score for `flip_classes[c]` (an involution).
    """
    if self.flip_classes is None:
      return scores
    return jnp.take(scores, jnp.asarray(self.flip_classes), axis=-1)

  @property
  def flips(self) -> bool:
    """Whether some training clip or test view is a mirror image."""
    return self._train_flips or self._eval_flips

  def check_num_classes(self, num_classes: int) -> None:
    """Raises ValueError if flips are used and `flip_classes` does not
    cover `num_classes` classes."""
    if (self.flips and self.flip_classes is not None and
        len(self.flip_classes) != num_classes):
      raise ValueError(
          f'code_augment.flip_classes has {len(self.flip_classes)} entries '
          f'for a model of {num_classes} classes: give the mirror class of '
          'each class, or () if a mirror keeps every label.')


def from_config(config: Any, *, codebook_shape: tuple[int, ...] | None = None,
                codec=None) -> CodeAugmentation:
  """The augmentation of `config` (`config.code_augment`), checked.

  Args:
    config: `config.code_augment`, or None for no augmentation.
    codebook_shape: `[N, K, D]` of the codec whose codes are augmented.
    codec: that `FrozenCodec`, if at hand: a learned augmenter is checked
      against it.

  Raises:
    ValueError: an unknown mode, a view count the mode cannot give, or a
      'learned' mode without an augmenter whose latents fit the codes.
  """
  c = config
  for name in ('train', 'eval'):
    if c[name] not in MODES:
      raise ValueError(f'code_augment.{name}={c[name]!r}: expected one of '
                       f'{MODES}.')
  if c.eval_views < 1:
    raise ValueError(f'code_augment.eval_views={c.eval_views} must be >= 1.')
  if not 0.0 < c.train_probability <= 1.0:
    raise ValueError(
        f'code_augment.train_probability={c.train_probability} must be in '
        "(0, 1]; code_augment.train='none' augments no clip.")
  if c.eval == 'none' and c.eval_views != 1:
    raise ValueError(f'code_augment.eval_views={c.eval_views} needs '
                     "code_augment.eval='nn_crop' or 'learned'.")
  params_lib.central_box(c.crop_scale)  # Checks the scale.
  ranges = params_lib.crop_ranges(c.crop_min_scale, c.crop_max_scale)
  augmenter = None
  snap_codec = None
  if c.snap_to_codebook and 'learned' not in (c.train, c.eval):
    raise ValueError('code_augment.snap_to_codebook snaps the learned '
                     "network's outputs: set code_augment.train or .eval to "
                     "'learned'.")
  if 'learned' in (c.train, c.eval):
    if not c.augmenter_workdir:
      raise ValueError(
          "code_augment 'learned' needs the augmentation network: pass "
          '--config.code_augment.augmenter_workdir=<the augmenter run>.')
    augmenter = frozen.load_frozen_augmenter(c.augmenter_workdir)
    if codec is not None:
      augmenter.check_codec(codec)
    elif codebook_shape is not None:
      augmenter.check_codebook_shape(codebook_shape)
    if c.eval == 'learned' and augmenter.family not in ('crop', 'flip',
                                                        'all'):
      raise ValueError(
          f'The augmenter in {augmenter.workdir} does {augmenter.family!r}; '
          "test-time views need a 'crop', 'flip' or 'all' network.")
    if augmenter.family == 'crop':
      if c.train == 'learned':
        _check_within_trained_boxes(
            augmenter, ranges.crop_min_scale, ranges.crop_max_scale,
            f'code_augment.crop_min_scale={ranges.crop_min_scale} and '
            f'crop_max_scale={ranges.crop_max_scale}')
      if c.eval == 'learned':
        _check_within_trained_boxes(augmenter, c.crop_scale, c.crop_scale,
                                    f'code_augment.crop_scale={c.crop_scale}')
    if c.snap_to_codebook:
      if codec is None:
        raise ValueError('code_augment.snap_to_codebook needs the codec '
                         "whose codebooks the codes index.")
      snap_codec = codec
    if (c.eval == 'learned' and augmenter.family == 'flip'
        and c.eval_views > 2):
      raise ValueError(f'code_augment.eval_views={c.eval_views}: a flip '
                       'network gives 2 views (the clip and its flip).')
  return CodeAugmentation(
      train_mode=c.train, eval_mode=c.eval, eval_views=int(c.eval_views),
      crop_scale=float(c.crop_scale), crop_ranges=ranges,
      train_probability=float(c.train_probability), augmenter=augmenter,
      flip_classes=_check_flip_classes(c.flip_classes),
      snap_codec=snap_codec)


def _check_within_trained_boxes(augmenter: frozen.FrozenAugmenter,
                                low: float, high: float, setting: str) -> None:
  """Raises unless box sides `low`-`high` are ones the crop network was
  trained on: outside them it extrapolates, unchecked."""
  trained = augmenter.augment_config
  if not trained.crop_min_scale <= low <= high <= trained.crop_max_scale:
    raise ValueError(
        f'{setting}: the crop network in {augmenter.workdir} was trained on '
        f'box sides {trained.crop_min_scale}-{trained.crop_max_scale}; keep '
        'its boxes within them.')


def _check_flip_classes(flip_classes) -> np.ndarray | None:
  """`flip_classes` as an int array (None if empty), checked."""
  if flip_classes is None or len(flip_classes) == 0:
    return None
  mirror = np.asarray(flip_classes)
  n = len(mirror)
  if (mirror.ndim != 1 or not np.issubdtype(mirror.dtype, np.integer) or
      sorted(mirror.tolist()) != list(range(n))):
    raise ValueError(
        f'code_augment.flip_classes={tuple(flip_classes)} must list, for '
        f'each class, its mirror class: a permutation of 0..{n - 1}.')
  if np.any(mirror[mirror] != np.arange(n)):
    bad = int(np.flatnonzero(mirror[mirror] != np.arange(n))[0])
    raise ValueError(
        f'code_augment.flip_classes={tuple(flip_classes)}: mirroring twice '
        f'must give the class back, but class {bad} goes to '
        f'{mirror[bad]}, whose mirror is {mirror[mirror[bad]]}.')
  return mirror


def average_over_views(apply_fn, views: list[Array],
                       augmentation: CodeAugmentation | None = None) -> Array:
  """The mean of `apply_fn(view)` over the views (logits of one clip).

  With `augmentation`, the outputs of mirrored views are first mapped back
  to the clip's classes (`CodeAugmentation.unflip_scores`).
  """
  outs = [apply_fn(v) for v in views]
  if augmentation is not None:
    outs = [augmentation.unflip_scores(o) if flipped else o
            for o, flipped in zip(outs, augmentation.eval_view_flipped())]
  return sum(outs[1:], outs[0]) / len(outs)

