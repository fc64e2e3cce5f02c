"""Pixel-space augmentations `A(X; p)`: the ground truth `a(z, p)` learns.

Videos are `[B, T, H, W, 3]` float in [0, 1]; `params` are `[B, P]` float32,
one row per clip, the same transform applied to every frame of a clip. Each
family's row holds the fields of `PARAM_NAMES[family]`:

| family     | fields                 | identity      | transform (dm-pix)     |
|------------|------------------------|---------------|------------------------|
| crop       | y0, x0, y1, x1         | 0, 0, 1, 1    | box (fractions of the  |
|            |                        |               | frame) resized back to |
|            |                        |               | H x W, bilinear        |
| flip       | flip                   | 0             | left-right if >= 0.5   |
| brightness | delta                  | 0             | `adjust_brightness`    |
| saturation | factor                 | 1             | `adjust_saturation`    |
| rotation   | angle (radians, ccw)   | 0             | `rotate`, corners by   |
|            |                        |               | `rotation_fill`        |
| all        | the 8 fields above     | as above      | all of them, in the    |
|            |                        |               | order crop, flip,      |
|            |                        |               | rotation, saturation,  |
|            |                        |               | brightness             |

Every output is clipped to [0, 1] (a brightness shift leaves it otherwise).
All functions jit and are differentiable in the video.

A rotation uncovers the frame's corners; `rotation_fill` says what they show:
'reflect' (default: the frame mirrored at its edges), 'edge' (the edge
pixels repeated) or 'black'. Black corners are what pixel pipelines usually
do, but a learned rotation must make its codec's decoder draw them: a codec
trained on videos without black borders has no code that decodes to black,
and the network, pushed towards latents far outside the codebook, smears
noise over the whole frame (`augmenter.py:rotation` on the CPU codec: SSIM
0.23 against the plain reconstruction's 0.54 after 1500 steps at a learning
rate of 3e-4, its training loss rising after step 300). Mirrored content is
what the decoder can draw.
"""
from __future__ import annotations

import functools

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

FAMILIES = ('crop', 'flip', 'brightness', 'saturation', 'rotation', 'all')
# rotation_fill -> dm-pix (scipy.ndimage) boundary mode.
ROTATION_FILLS = {'reflect': 'reflect', 'edge': 'nearest', 'black': 'constant'}
DEFAULT_ROTATION_FILL = 'reflect'
SINGLE_FAMILIES = FAMILIES[:-1]
PARAM_NAMES = {
    'crop': ('y0', 'x0', 'y1', 'x1'),
    'flip': ('flip',),
    'brightness': ('delta',),
    'saturation': ('factor',),
    'rotation': ('angle',),
}
PARAM_NAMES['all'] = sum((PARAM_NAMES[f] for f in SINGLE_FAMILIES), ())
IDENTITY = {
    'crop': (0.0, 0.0, 1.0, 1.0),
    'flip': (0.0,),
    'brightness': (0.0,),
    'saturation': (1.0,),
    'rotation': (0.0,),
}
IDENTITY['all'] = sum((IDENTITY[f] for f in SINGLE_FAMILIES), ())


def check_family(family: str) -> str:
  if family not in FAMILIES:
    raise ValueError(f'augmentation family {family!r} is not one of '
                     f'{FAMILIES}.')
  return family


def check_rotation_fill(fill: str, name: str = 'rotation_fill') -> str:
  """`fill` if it is one of ROTATION_FILLS; the error names it `name`."""
  if fill not in ROTATION_FILLS:
    raise ValueError(f'{name}={fill!r} is not one of '
                     f'{tuple(ROTATION_FILLS)}.')
  return fill


def param_dim(family: str) -> int:
  """P, the length of a parameter row of `family`."""
  return len(PARAM_NAMES[check_family(family)])


def identity_params(family: str, batch: int) -> np.ndarray:
  """`[batch, P]` parameters that leave a video unchanged."""
  return np.tile(np.asarray(IDENTITY[check_family(family)], np.float32),
                 (batch, 1))


def field_slice(family: str, single: str) -> slice:
  """Where the fields of family `single` sit in a row of `family`."""
  start = PARAM_NAMES[family].index(PARAM_NAMES[single][0])
  return slice(start, start + len(PARAM_NAMES[single]))


# ---------------------------------------------------------------------------
# One frame stack `[T, H, W, 3]` and one parameter row.


def _crop_frames(frames: Array, box: Array) -> Array:
  """The box `(y0, x0, y1, x1)` (fractions) of every frame, resized to H x W.

  Output pixel centre `o` samples the input at `y0*H + (o + 0.5)*(y1 - y0) -
  0.5` (and likewise in x): pixel centres map to pixel centres, so the full
  box is exactly the identity. Bilinear, edge pixels repeated outside.
  """
  _, h, w, _ = frames.shape
  y0, x0, y1, x1 = box[0], box[1], box[2], box[3]
  scale = jnp.stack([y1 - y0, x1 - x0, jnp.ones_like(y0)])
  offset = jnp.stack([y0 * h + 0.5 * (y1 - y0) - 0.5,
                      x0 * w + 0.5 * (x1 - x0) - 0.5, jnp.zeros_like(y0)])
  crop = lambda image: pix.affine_transform(image, scale, offset=offset,
                                            order=1, mode='nearest')
  return jax.vmap(crop)(frames)


def _flip_frames(frames: Array, flip: Array) -> Array:
  return jnp.where(flip >= 0.5, pix.flip_left_right(frames), frames)


def _rotate_frames(frames: Array, angle: Array, fill: str) -> Array:
  # A positive angle turns the picture counter-clockwise on screen (the top
  # edge's centre moves to the left edge's centre).
  rotate = lambda image: pix.rotate(image, angle, order=1,
                                    mode=ROTATION_FILLS[fill], cval=0.0)
  return jax.vmap(rotate)(frames)


def _saturate_frames(frames: Array, factor: Array) -> Array:
  return pix.adjust_saturation(frames, factor)


def _brighten_frames(frames: Array, delta: Array) -> Array:
  return pix.adjust_brightness(frames, delta)


# (frames, row, rotation_fill) -> frames.
_SINGLE = {
    'crop': lambda f, p, _: _crop_frames(f, p),
    'flip': lambda f, p, _: _flip_frames(f, p[0]),
    'rotation': lambda f, p, fill: _rotate_frames(f, p[0], fill),
    'saturation': lambda f, p, _: _saturate_frames(f, p[0]),
    'brightness': lambda f, p, _: _brighten_frames(f, p[0]),
}
_ALL_ORDER = ('crop', 'flip', 'rotation', 'saturation', 'brightness')


def _augment_clip(family: str, fill: str, frames: Array, row: Array) -> Array:
  if family == 'all':
    for single in _ALL_ORDER:
      frames = _SINGLE[single](frames, row[field_slice('all', single)], fill)
    return frames
  return _SINGLE[family](frames, row, fill)


# ---------------------------------------------------------------------------
# Batches.


def augment(family: str, video: Array, params: Array, *,
            rotation_fill: str = DEFAULT_ROTATION_FILL) -> Array:
  """`A(X; p)`: `[B, T, H, W, 3]` in [0, 1], `[B, P]` -> `[B, T, H, W, 3]`.

  Args:
    family: one of FAMILIES.
    video: `[B, T, H, W, 3]` float in [0, 1].
    params: `[B, P]`, the fields of `PARAM_NAMES[family]`.
    rotation_fill: what a rotation's uncovered corners show (see the module
      docstring): one of ROTATION_FILLS.

  Raises:
    ValueError: unknown family or fill, or shapes that do not fit.
  """
  check_family(family)
  check_rotation_fill(rotation_fill)
  video = jnp.asarray(video)
  params = jnp.asarray(params, jnp.float32)
  if video.ndim != 5 or video.shape[-1] != 3:
    raise ValueError(f'video must be [B, T, H, W, 3], got {video.shape}.')
  if params.shape != (video.shape[0], param_dim(family)):
    raise ValueError(f'{family} params must be [B={video.shape[0]}, '
                     f'P={param_dim(family)}] ({PARAM_NAMES[family]}), got '
                     f'{params.shape}.')
  return _augment_batch(family, rotation_fill, video,
                        params.astype(video.dtype))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _augment_batch(family: str, fill: str, video: Array,
                   params: Array) -> Array:
  # Jitted even when called eagerly: one compile instead of one per op.
  out = jax.vmap(lambda v, p: _augment_clip(family, fill, v, p))(video,
                                                                 params)
  return jnp.clip(out, 0.0, 1.0)


def crop(video: Array, boxes: Array) -> Array:
  """Crops `[B, T, H, W, 3]` to `boxes` `[B, 4]` (y0, x0, y1, x1), resized."""
  return augment('crop', video, boxes)


def flip(video: Array, flips: Array) -> Array:
  """Flips left-right the clips whose `flips` `[B, 1]` is >= 0.5."""
  return augment('flip', video, flips)


def brightness(video: Array, deltas: Array) -> Array:
  """Adds `deltas` `[B, 1]` to every channel."""
  return augment('brightness', video, deltas)


def saturation(video: Array, factors: Array) -> Array:
  """Multiplies the HSV saturation by `factors` `[B, 1]`."""
  return augment('saturation', video, factors)


def rotation(video: Array, angles: Array, *,
             fill: str = DEFAULT_ROTATION_FILL) -> Array:
  """Rotates about the frame centre by `angles` `[B, 1]` (radians, ccw)."""
  return augment('rotation', video, angles, rotation_fill=fill)
