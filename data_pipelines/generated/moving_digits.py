"""Moving Digits: synthetic videos whose label is the motion, not the content.

A handwritten digit (sklearn's bundled 8x8 `load_digits`, upscaled) in a random
colour moves over a random smooth colour texture. The class is how it moves:

  0 translate_right   1 translate_left   2 translate_down   3 translate_up
  4 rotate_cw         5 rotate_ccw       6 grow             7 shrink

Nothing in a single frame tells the class apart. The frame lives on a torus
(a digit leaving one edge re-enters at the opposite edge), and the start
position, angle and size are uniform on their ranges, so every motion keeps
the per-frame distribution of (position, angle, size) unchanged: the frame at
any time index has the same distribution whatever the class. For that reason
growing and shrinking are periodic ("looming"): the size runs through a fixed
range on a log scale and wraps from largest to smallest (grow) or smallest to
largest (shrink) every 7-12 frames. Digit identity, colours and background are
drawn independently of the class.

Defaults move the digit 5-8% of the frame side per frame (3-5 px at 64x64),
turn it 12-24 degrees per frame, and make it 28-57% of the frame side
(40% on average), so motion survives 4x-8x downsampled codes.

`frame_labels[t]` is the class of the step from frame t to frame t+1 (the
last frame keeps its segment's class). Videos with several segments switch
class at segment boundaries while the digit keeps its state, so the video is
continuous; their `label` is the class covering most frames, ties going to the
lowest class id.

`label_rule='odd_one_out'` makes a label that no single part of the video
holds: equal segments all share one motion but one, and the label is that odd
motion. A clip showing one segment cannot tell whether its motion is the odd
one; only comparing it with the others' can (the collaborative-memory
variant, where averaging independent clip predictions is not enough).

`label_rule='count_rotations'` makes a counting label: equal segments, each
independently rotating (cw or ccw) with probability 1/2, else translating
(one of the four directions); the label is how many segments rotate, 0 to
`segments_per_video` (`label_names`). A clip sees one segment, so it can tell
only whether its own segment rotates.

Everything is a pure function of (config, seed, index): `generate_example`
draws from `np.random.default_rng([seed, index])`.
"""

from collections.abc import Iterator
import dataclasses
import functools

import numpy as np
from PIL import Image
from sklearn import datasets as sk_datasets

CLASS_NAMES = (
    'translate_right', 'translate_left', 'translate_down', 'translate_up',
    'rotate_cw', 'rotate_ccw', 'grow', 'shrink',
)

# Per-class unit velocity of the state (y, x, angle, log-size phase); scaled
# per segment by (speed, speed, rotation_speed, zoom_speed). Image y points
# down, so a positive angle step turns the digit clockwise on screen.
_DIRECTIONS = np.array([
    [0, 1, 0, 0], [0, -1, 0, 0], [1, 0, 0, 0], [-1, 0, 0, 0],
    [0, 0, 1, 0], [0, 0, -1, 0], [0, 0, 0, 1], [0, 0, 0, -1],
], np.float64)

_DIGIT_RES = 24  # Upscaled digit bitmap side before rendering.
_TEXTURE_CYCLES = 3  # Highest background frequency, in cycles per frame.
# spawn_key namespaces of the long stream, kept apart from the
# default_rng([seed, index]) streams of generate_example.
_STREAM_SCENE_KEY = 1
_STREAM_SEGMENT_KEY = 2


LABEL_RULES = ('majority', 'odd_one_out', 'count_rotations')
ROTATION_CLASSES = (4, 5)  # rotate_cw, rotate_ccw.
_TRANSLATIONS = (0, 1, 2, 3)


@dataclasses.dataclass(frozen=True)
class MovingDigitsConfig:
  """Shape and motion parameters of generated videos.

  Attributes:
    num_frames: frames per video, T.
    height: frame height in pixels.
    width: frame width in pixels.
    num_classes: motion classes in use, the first `num_classes` of
      `CLASS_NAMES` (2..8); 4 gives translations only.
    segments_per_video: motion segments per video; 1 gives one label per
      video, more give dense per-frame labels.
    min_segment_frames: shortest segment, in frames.
    max_segment_frames: longest segment of `generate_long_video_chunks`.
    digit_size: geometric-mean digit side as a fraction of min(height, width).
    size_range: ratio between the largest and the smallest digit side.
    speed: (min, max) translation per frame, fraction of min(height, width).
    rotation_speed: (min, max) rotation per frame, in degrees.
    zoom_speed: (min, max) log-size change per frame, as a fraction of the
      log of `size_range` (0.1 wraps every 10 frames).
    texture_amplitude: standard deviation of the background texture around
      its base colour, in [0, 1] intensity units.
    label_rule: 'majority' (the class covering most frames),
      'odd_one_out' (equal segments, all of one class but one; the label is
      that one's class) or 'count_rotations' (equal segments, each rotating
      or translating with probability 1/2; the label is the number of
      rotating segments; needs num_classes >= 6).
  """
  num_frames: int = 16
  height: int = 64
  width: int = 64
  num_classes: int = 8
  segments_per_video: int = 1
  min_segment_frames: int = 4
  max_segment_frames: int = 32
  digit_size: float = 0.4
  size_range: float = 2.0
  speed: tuple[float, float] = (0.05, 0.08)
  rotation_speed: tuple[float, float] = (12.0, 24.0)
  zoom_speed: tuple[float, float] = (0.08, 0.14)
  texture_amplitude: float = 0.1
  label_rule: str = 'majority'

  def __post_init__(self):
    if self.label_rule not in LABEL_RULES:
      raise ValueError(f'label_rule={self.label_rule!r}: expected one of '
                       f'{LABEL_RULES}.')
    if self.label_rule == 'odd_one_out' and (
        self.segments_per_video < 3 or
        self.num_frames % self.segments_per_video):
      raise ValueError(
          "label_rule='odd_one_out' needs segments_per_video >= 3 (so the "
          'common motion is the majority) dividing num_frames (equal '
          f'segments); got {self.segments_per_video} segments of '
          f'{self.num_frames} frames.')
    if self.label_rule == 'count_rotations' and (
        self.num_classes < 6 or self.num_frames % self.segments_per_video):
      raise ValueError(
          "label_rule='count_rotations' needs num_classes >= 6 (the "
          'translations and rotations) and equal segments; got '
          f'num_classes={self.num_classes}, {self.segments_per_video} '
          f'segments of {self.num_frames} frames.')
    if not 2 <= self.num_classes <= len(CLASS_NAMES):
      raise ValueError(
          f'num_classes must be in [2, {len(CLASS_NAMES)}], got '
          f'{self.num_classes}.')
    if min(self.num_frames, self.height, self.width) < 1:
      raise ValueError('num_frames, height and width must be positive.')
    if self.segments_per_video < 1 or self.min_segment_frames < 1:
      raise ValueError(
          'segments_per_video and min_segment_frames must be >= 1.')
    if self.segments_per_video * self.min_segment_frames > self.num_frames:
      raise ValueError(
          f'{self.segments_per_video} segments of at least '
          f'{self.min_segment_frames} frames do not fit in {self.num_frames} '
          'frames.')
    if self.max_segment_frames < self.min_segment_frames:
      raise ValueError('max_segment_frames must be >= min_segment_frames.')
    # Pixels take the nearest torus copy of the digit; a rotated bitmap
    # reaching past half the frame would be cut off.
    if self.digit_size * np.sqrt(2 * self.size_range) > 1.0:
      raise ValueError('digit_size * sqrt(2 * size_range) must be <= 1.')

  @property
  def class_names(self) -> tuple[str, ...]:
    """Motion classes in use: the names of `frame_labels`."""
    return CLASS_NAMES[:self.num_classes]

  @property
  def label_flip_classes(self) -> tuple[int, ...]:
    """The label of each label's horizontal mirror image.

    A mirror swaps translate_right/left and rotate_cw/ccw and keeps the
    rest; a count of rotating segments stays the same.

    Raises:
      ValueError: the classes in use hold one of a mirror pair only.
    """
    if self.label_rule == 'count_rotations':
      return tuple(range(len(self.label_names)))
    names = self.class_names
    swap = {'translate_right': 'translate_left', 'rotate_cw': 'rotate_ccw'}
    swap.update({v: k for k, v in swap.items()})
    mirror = [swap.get(name, name) for name in names]
    missing = [m for m in mirror if m not in names]
    if missing:
      raise ValueError(
          f'num_classes={self.num_classes}: the mirror images {missing} are '
          'not among the classes, so flips have no label.')
    return tuple(names.index(m) for m in mirror)

  @property
  def label_names(self) -> tuple[str, ...]:
    """Names of the video `label`: the motions, or the counts."""
    if self.label_rule == 'count_rotations':
      return tuple(f'{k}_rotating'
                   for k in range(self.segments_per_video + 1))
    return self.class_names


# The variants named in the docs and used by the TFDS builder.
DEFAULT = MovingDigitsConfig()
DENSE = MovingDigitsConfig(num_frames=32, segments_per_video=4)
ODD_ONE_OUT = MovingDigitsConfig(num_frames=32, segments_per_video=4,
                                 label_rule='odd_one_out')
# The four translations only: a clip's own motion then says nothing of the
# label (odd or one of the three others, 1/4 each), averaging clip votes can
# name the odd direction in at most 2 of 3 cases (a vote cannot know whether
# its clip is the odd one), and comparing clips names it always.
ODD_TRANSLATION = dataclasses.replace(ODD_ONE_OUT, num_classes=4)
# Counting (5 labels, 0-4 rotating segments, binomial 1:4:6:4:1). At the
# optimum of each loss, scored by averaging softmax over one clip per segment:
# single-clip training answers 2 for every video (37.5%); the clip-averaged
# loss of multi-clip training moves each clip's vote so that the average
# names 1, 2 and 3 (87.5%); clips that see each other can count (100%).
COUNT_ROTATIONS = dataclasses.replace(ODD_ONE_OUT,
                                      label_rule='count_rotations')
LONG = MovingDigitsConfig(
    num_frames=256, segments_per_video=16, min_segment_frames=8)


@functools.lru_cache(maxsize=1)
def _digit_bitmaps() -> np.ndarray:
  """All sklearn digits upscaled, `[N, D+2, D+2] float32` in [0, 1].

  The one-pixel zero border makes out-of-range bilinear reads transparent.
  """
  digits = sk_datasets.load_digits().images.astype(np.float32) / 16.0
  out = np.zeros((len(digits), _DIGIT_RES + 2, _DIGIT_RES + 2), np.float32)
  for i, d in enumerate(digits):
    big = Image.fromarray(d, mode='F').resize(
        (_DIGIT_RES, _DIGIT_RES), Image.Resampling.BICUBIC)
    # Stretch the soft 8x8 strokes into crisp, mostly opaque ones.
    out[i, 1:-1, 1:-1] = np.clip((np.asarray(big) - 0.1) / 0.4, 0.0, 1.0)
  return out


@dataclasses.dataclass(frozen=True)
class _Scene:
  """What stays fixed over a video: digit, colours and background."""
  digit: np.ndarray  # [D+2, D+2] float32 alpha.
  digit_index: int
  colour: np.ndarray  # [3] float32 in [0, 1].
  background: np.ndarray  # [H, W, 3] float32 in [0, 1].


def _sample_scene(rng: np.random.Generator,
                  config: MovingDigitsConfig) -> _Scene:
  bitmaps = _digit_bitmaps()
  digit_index = int(rng.integers(len(bitmaps)))
  base = rng.uniform(0.15, 0.85, size=3)
  # Keep the digit visible: take the first candidate colour far enough from
  # the background colour (or the farthest one).
  candidates = rng.uniform(0.0, 1.0, size=(8, 3))
  dist = np.linalg.norm(candidates - base, axis=-1)
  far = np.flatnonzero(dist > 0.5)
  colour = candidates[far[0] if far.size else int(np.argmax(dist))]
  # Smooth periodic texture: random low-frequency Fourier coefficients. A
  # periodic texture matches the torus the digit moves on.
  h, w = config.height, config.width
  k = _TEXTURE_CYCLES
  coeffs = np.zeros((h, w // 2 + 1, 3), np.complex128)
  ky = np.r_[0:min(k + 1, h), max(h - k, k + 1):h]
  kx = np.arange(min(k + 1, w // 2 + 1))
  noise = (rng.standard_normal((len(ky), len(kx), 3)) +
           1j * rng.standard_normal((len(ky), len(kx), 3)))
  fy = np.minimum(ky, h - ky)[:, None, None]
  fx = kx[None, :, None]
  coeffs[np.ix_(ky, kx)] = noise / (1.0 + np.hypot(fy, fx))**2
  coeffs[0, 0] = 0.0
  field = np.fft.irfft2(coeffs, s=(h, w), axes=(0, 1))
  field /= field.std(axis=(0, 1), keepdims=True) + 1e-8
  background = np.clip(base + config.texture_amplitude * field, 0.0, 1.0)
  return _Scene(
      digit=bitmaps[digit_index], digit_index=digit_index,
      colour=colour.astype(np.float32),
      background=background.astype(np.float32))


def _sample_state(rng: np.random.Generator,
                  config: MovingDigitsConfig) -> np.ndarray:
  """Uniform start state (y, x, angle, phase), `[4] float64`."""
  return np.array([
      rng.uniform(0, config.height), rng.uniform(0, config.width),
      rng.uniform(0, 2 * np.pi), rng.uniform(0, 1)])


def _sample_magnitudes(rng: np.random.Generator, config: MovingDigitsConfig,
                       n: int) -> np.ndarray:
  """Per-segment speeds for every motion kind, `[n, 4] float64`.

  All four are drawn for every segment whatever its class, so the amount of
  randomness used (and hence everything drawn later) is class independent.
  """
  side = min(config.height, config.width)
  speed = rng.uniform(*config.speed, size=n) * side
  rotation = np.deg2rad(rng.uniform(*config.rotation_speed, size=n))
  zoom = rng.uniform(*config.zoom_speed, size=n)
  return np.stack([speed, speed, rotation, zoom], axis=-1)


def _wrap_state(state: np.ndarray, config: MovingDigitsConfig) -> np.ndarray:
  period = np.array([config.height, config.width, 2 * np.pi, 1.0])
  return np.mod(state, period)


def _segment_states(start: np.ndarray, velocity: np.ndarray,
                    offsets: np.ndarray) -> np.ndarray:
  """States at integer `offsets` into a segment, `[n, 4]`.

  Closed form (start + k * velocity), so a frame's state does not depend on
  how a long stream is cut into chunks.
  """
  return start[None, :] + offsets[:, None] * velocity[None, :]


def _render(scene: _Scene, states: np.ndarray,
            config: MovingDigitsConfig) -> np.ndarray:
  """Draws frames for states `[n, 4]` (y, x, angle, phase) -> `[n, H, W, 3]`.

  Pixels are inverse-mapped into the digit bitmap and sampled bilinearly;
  offsets are taken on the torus, so the digit wraps around the edges.
  """
  h, w = config.height, config.width
  states = _wrap_state(states, config).astype(np.float32)
  cy, cx, angle, phase = (states[:, i, None, None] for i in range(4))
  ys = np.arange(h, dtype=np.float32)[None, :, None] + 0.5
  xs = np.arange(w, dtype=np.float32)[None, None, :] + 0.5
  dy = np.mod(ys - cy + h / 2, h) - h / 2  # [n, H, 1]
  dx = np.mod(xs - cx + w / 2, w) - w / 2  # [n, 1, W]
  side = (config.digit_size * min(h, w) *
          np.exp(np.log(config.size_range) * (phase - 0.5)))
  cos, sin = np.cos(angle) / side, np.sin(angle) / side
  # Rotating screen offsets by -angle shows the digit turned by +angle.
  u = cos * dx + sin * dy  # Digit x in units of its side, centred at 0.
  v = cos * dy - sin * dx  # Digit y.
  size = scene.digit.shape[0]
  gx = np.clip((u + 0.5) * _DIGIT_RES + 0.5, 0, size - 1.001)
  gy = np.clip((v + 0.5) * _DIGIT_RES + 0.5, 0, size - 1.001)
  x0, y0 = gx.astype(np.int32), gy.astype(np.int32)
  fx, fy = gx - x0, gy - y0
  flat = scene.digit.reshape(-1)
  i00 = y0 * size + x0
  alpha = ((flat[i00] * (1 - fx) + flat[i00 + 1] * fx) * (1 - fy) +
           (flat[i00 + size] * (1 - fx) + flat[i00 + size + 1] * fx) * fy)
  alpha = alpha[..., None]
  frames = scene.background * (1 - alpha) + scene.colour * alpha
  return (frames * 255 + 0.5).astype(np.uint8)


def _segment_lengths(rng: np.random.Generator,
                     config: MovingDigitsConfig) -> np.ndarray:
  """Random partition of num_frames into segments_per_video parts."""
  k = config.segments_per_video
  spare = config.num_frames - k * config.min_segment_frames
  return config.min_segment_frames + rng.multinomial(spare, np.full(k, 1 / k))


def _next_class(rng: np.random.Generator, previous: int | None,
                num_classes: int) -> int:
  """Uniform class, different from `previous` so segment boundaries show."""
  if previous is None:
    return int(rng.integers(num_classes))
  return int((previous + 1 + rng.integers(num_classes - 1)) % num_classes)


def _odd_one_out_segments(
    rng: np.random.Generator,
    config: MovingDigitsConfig) -> tuple[np.ndarray, list[int]]:
  """Equal segments, one class for all but one at a random position.

  Segments of the common class still differ in speed (drawn per segment), so
  every boundary shows; only the odd one changes the kind of motion.
  """
  k = config.segments_per_video
  common = _next_class(rng, None, config.num_classes)
  odd = _next_class(rng, common, config.num_classes)
  classes = [common] * k
  classes[int(rng.integers(k))] = odd
  return np.full(k, config.num_frames // k), classes


def _count_rotations_segments(
    rng: np.random.Generator,
    config: MovingDigitsConfig) -> tuple[np.ndarray, list[int]]:
  """Equal segments, each a rotation or a translation (1/2 each)."""
  k = config.segments_per_video
  rotating = rng.random(k) < 0.5
  rotation = rng.choice(ROTATION_CLASSES, size=k)
  translation = rng.choice(_TRANSLATIONS, size=k)
  classes = [int(c) for c in np.where(rotating, rotation, translation)]
  return np.full(k, config.num_frames // k), classes


def _check_seed(seed: int, index: int = 0) -> None:
  if seed < 0 or index < 0:
    raise ValueError(f'seed and index must be >= 0, got {seed}, {index}.')


def generate_example(config: MovingDigitsConfig, seed: int,
                     index: int) -> dict[str, np.ndarray | int]:
  """Generates one video, a pure function of (config, seed, index).

  Returns:
    dict with `video` `[T, H, W, 3] uint8`, `label` int (by
    `config.label_rule`: the majority class over frames, the odd class, or
    the count of rotating segments) and `frame_labels` `[T] int32` (motion
    class of the step t -> t+1).
  """
  _check_seed(seed, index)
  rng = np.random.default_rng([seed, index])
  scene = _sample_scene(rng, config)
  state = _sample_state(rng, config)
  if config.label_rule == 'odd_one_out':
    lengths, classes = _odd_one_out_segments(rng, config)
  elif config.label_rule == 'count_rotations':
    lengths, classes = _count_rotations_segments(rng, config)
  else:
    lengths = _segment_lengths(rng, config)
    classes, prev = [], None
    for _ in lengths:
      prev = _next_class(rng, prev, config.num_classes)
      classes.append(prev)
  magnitudes = _sample_magnitudes(rng, config, len(lengths))
  states = []
  for length, cls, mag in zip(lengths, classes, magnitudes):
    velocity = _DIRECTIONS[cls] * mag
    states.append(_segment_states(state, velocity, np.arange(length)))
    state = _wrap_state(state + length * velocity, config)
  frame_labels = np.repeat(np.asarray(classes, np.int32), lengths)
  if config.label_rule == 'odd_one_out':
    label = min(classes, key=classes.count)
  elif config.label_rule == 'count_rotations':
    label = sum(c in ROTATION_CLASSES for c in classes)
  else:
    label = int(np.argmax(np.bincount(frame_labels,
                                      minlength=config.num_classes)))
  return {
      'video': _render(scene, np.concatenate(states), config),
      'label': label,
      'frame_labels': frame_labels,
  }


def generate_long_video_chunks(
    config: MovingDigitsConfig,
    seed: int,
    num_frames: int,
    chunk_frames: int,
) -> Iterator[dict[str, np.ndarray]]:
  """Streams one continuous long video, chunk by chunk, in O(chunk) memory.

  Segments follow one another with lengths uniform in
  [config.min_segment_frames, config.max_segment_frames] and a class that
  differs from the previous one; `config.num_frames` and
  `segments_per_video` are not used. The frames do not depend on
  `chunk_frames`: concatenated chunks are identical for any chunk size.

  Yields:
    dicts with `video` `[c, H, W, 3] uint8` and `frame_labels` `[c] int32`,
    `c = chunk_frames` except for a shorter last chunk.
  """
  _check_seed(seed)
  if chunk_frames <= 0 or num_frames < 0:
    raise ValueError('chunk_frames must be > 0 and num_frames >= 0.')
  scene_rng = np.random.default_rng(
      np.random.SeedSequence(seed, spawn_key=(_STREAM_SCENE_KEY,)))
  scene = _sample_scene(scene_rng, config)
  state = _sample_state(scene_rng, config)

  def segments() -> Iterator[tuple[int, int, np.ndarray]]:
    """Yields (class, length, velocity); each segment has its own rng."""
    prev = None
    for i in range(num_frames + 1):  # Never exhausted: lengths are >= 1.
      rng = np.random.default_rng(
          np.random.SeedSequence(seed, spawn_key=(_STREAM_SEGMENT_KEY, i)))
      length = int(rng.integers(config.min_segment_frames,
                                config.max_segment_frames + 1))
      prev = _next_class(rng, prev, config.num_classes)
      yield prev, length, _DIRECTIONS[prev] * _sample_magnitudes(
          rng, config, 1)[0]

  segment_iter = segments()
  cls, length, velocity = next(segment_iter)
  offset = 0  # Frames of the current segment already emitted.
  emitted = 0
  while emitted < num_frames:
    n = min(chunk_frames, num_frames - emitted)
    states, labels = [], []
    while n > 0:
      take = min(n, length - offset)
      states.append(_segment_states(state, velocity,
                                    np.arange(offset, offset + take)))
      labels.append(np.full(take, cls, np.int32))
      offset += take
      n -= take
      if offset == length:
        state = _wrap_state(state + length * velocity, config)
        cls, length, velocity = next(segment_iter)
        offset = 0
    states = np.concatenate(states)
    emitted += len(states)
    yield {'video': _render(scene, states, config),
           'frame_labels': np.concatenate(labels)}
