"""Continuous, cut-free long videos: a camera walking over a generated world.

Each video has its own world, an endless procedurally generated image: a
smooth large-scale colour field (regions of different hue), a fine texture,
and scattered opaque discs and squares of random colours (the landmarks that
make one place look unlike another). World pixel `(y, x)` is a pure function
of (seed, y, x), so nothing is stored: each chunk renders only the tile its
camera path covers.

The camera looks straight down and walks: it advances along a random heading
at a speed that varies smoothly within [0.5, 1.5] x `speed`, and sways
sideways by up to `sway` pixels. It never walks backwards along its heading,
so it never comes back to a place it has seen (chunks more than a frame width
of travel apart show disjoint ground), and the statistics of the world are the
same everywhere, so a frame tells nothing about when in the video it was shot:
what the past/future task needs to be fair to a model without memory.

Everything is a pure function of (config, seed, frame index): concatenated
chunks are identical for any chunk size, and memory is O(chunk), so an hour
at 25 fps streams in chunks without ever being held in memory.
"""
from __future__ import annotations

from collections.abc import Iterator
import dataclasses

import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
# Salts keeping the hash streams of different quantities apart.
_SALT_COLOUR = 1
_SALT_TEXTURE = 2
_SALT_OBJECT = 3
_SALT_PATH = 4


@dataclasses.dataclass(frozen=True)
class LongWorldConfig:
  """Frame size, frame rate, camera motion and world appearance.

  Attributes:
    height: frame height in pixels.
    width: frame width in pixels.
    fps: frames per second (what turns minutes into frames).
    speed: mean camera speed along its heading, pixels per frame.
    sway: amplitude of the sideways meander, pixels.
    colour_scale: side of the large-scale colour regions, pixels.
    texture_scale: period of the fine texture, pixels.
    texture_amplitude: texture contrast, in [0, 1] intensity.
    object_cell: landmarks are scattered one per cell of this side (pixels),
      each present with probability `object_density`.
    object_density: fraction of cells holding a landmark.
    object_radius: (min, max) landmark radius, pixels (< object_cell / 2).
  """
  height: int = 64
  width: int = 64
  fps: int = 25
  speed: float = 1.0
  sway: float = 96.0
  colour_scale: float = 384.0
  texture_scale: float = 12.0
  texture_amplitude: float = 0.06
  object_cell: int = 40
  object_density: float = 0.7
  object_radius: tuple[float, float] = (6.0, 15.0)

  def __post_init__(self):
    if min(self.height, self.width, self.fps) < 1:
      raise ValueError('height, width and fps must be positive, got '
                       f'{self.height}, {self.width}, {self.fps}.')
    if self.speed <= 0:
      raise ValueError(f'speed must be > 0, got {self.speed}.')
    if not 0 < self.object_radius[0] <= self.object_radius[1] < (
        self.object_cell / 2):
      raise ValueError(f'object_radius {self.object_radius} must be '
                       f'increasing, positive and < object_cell/2 '
                       f'({self.object_cell / 2}).')
    if not 0 <= self.object_density <= 1:
      raise ValueError(f'object_density must be in [0, 1], got '
                       f'{self.object_density}.')

  def frames(self, minutes: float) -> int:
    """Frames in `minutes` of video at `fps`."""
    return int(round(minutes * 60 * self.fps))


DEFAULT = LongWorldConfig()
TINY = LongWorldConfig(height=32, width=32, speed=2.0, sway=16.0,
                       colour_scale=96.0, object_cell=20,
                       object_radius=(3.0, 8.0))


def _hash(seed: int, salt: int, *coords: np.ndarray) -> np.ndarray:
  """Uniform floats in [0, 1) from integer coordinates (splitmix64 mixing).

  Same inputs, same outputs, on any machine: the world is a function of the
  seed and the coordinates only.
  """
  with np.errstate(over='ignore'):
    h = np.full(np.broadcast(*coords).shape,
                (seed * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9)
                & 0xFFFFFFFFFFFFFFFF, np.uint64)
    for c in coords:
      h ^= np.asarray(c).astype(np.int64).astype(np.uint64)
      h = (h + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
      h ^= h >> np.uint64(30)
      h *= np.uint64(0xBF58476D1CE4E5B9)
      h ^= h >> np.uint64(27)
      h *= np.uint64(0x94D049BB133111EB)
      h ^= h >> np.uint64(31)
  return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _value_noise(seed: int, salt: int, ys: np.ndarray, xs: np.ndarray,
                 scale: float, channels: int) -> np.ndarray:
  """Smooth noise in [0, 1] on a lattice of `scale` pixels: `[Y, X, C]`."""
  fy, fx = ys[:, None] / scale, xs[None, :] / scale
  iy, ix = np.floor(fy), np.floor(fx)
  ty, tx = fy - iy, fx - ix
  ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)  # smoothstep
  out = []
  for c in range(channels):
    corner = lambda dy, dx: _hash(seed, salt * 16 + c, iy + dy, ix + dx)
    top = corner(0, 0) * (1 - tx) + corner(0, 1) * tx
    bottom = corner(1, 0) * (1 - tx) + corner(1, 1) * tx
    out.append(top * (1 - ty) + bottom * ty)
  return np.stack(out, axis=-1)


def render_tile(config: LongWorldConfig, seed: int, y0: int, x0: int,
                height: int, width: int) -> np.ndarray:
  """World pixels `[y0, y0+height) x [x0, x0+width)`: `[h, w, 3] float32`.

  In [0, 1]. A pixel's value does not depend on the tile it is rendered in.
  """
  ys = np.arange(y0, y0 + height, dtype=np.float64)
  xs = np.arange(x0, x0 + width, dtype=np.float64)
  # Large-scale colour: two octaves, stretched so regions differ in hue.
  colour = (0.7 * _value_noise(seed, _SALT_COLOUR, ys, xs,
                               config.colour_scale, 3)
            + 0.3 * _value_noise(seed, _SALT_COLOUR + 8, ys, xs,
                                 config.colour_scale / 4, 3))
  colour = np.clip(0.5 + 1.6 * (colour - 0.5), 0.05, 0.95)
  texture = _value_noise(seed, _SALT_TEXTURE, ys, xs, config.texture_scale, 1)
  image = colour + config.texture_amplitude * (texture - 0.5) * 2
  # Landmarks: at most one per cell; a pixel checks its own cell and the 8
  # around it, since a landmark is smaller than half a cell.
  cell = config.object_cell
  cy = np.floor(ys / cell).astype(np.int64)[:, None]
  cx = np.floor(xs / cell).astype(np.int64)[None, :]
  lo, hi = config.object_radius
  for dy in (-1, 0, 1):
    for dx in (-1, 0, 1):
      gy, gx = cy + dy, cx + dx
      rnd = lambda k: _hash(seed, _SALT_OBJECT * 16 + k, gy, gx)
      present = rnd(0) < config.object_density
      radius = lo + (hi - lo) * rnd(1)
      centre_y = (gy + 0.5) * cell + (rnd(2) - 0.5) * (cell - 2 * radius)
      centre_x = (gx + 0.5) * cell + (rnd(3) - 0.5) * (cell - 2 * radius)
      dist_y = np.abs(ys[:, None] - centre_y)
      dist_x = np.abs(xs[None, :] - centre_x)
      square = rnd(4) < 0.5
      inside = np.where(square, np.maximum(dist_y, dist_x),
                        np.hypot(dist_y, dist_x)) <= radius
      hit = present & inside
      if hit.any():
        obj = np.stack([rnd(5 + c) for c in range(3)], axis=-1)
        image = np.where(hit[..., None], obj, image)
  return np.clip(image, 0.0, 1.0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class _Path:
  """The camera path of one video, in closed form (see `camera_positions`)."""
  origin: np.ndarray  # [2] (y, x) pixels.
  heading: np.ndarray  # [2] unit vector (y, x).
  side: np.ndarray  # [2] unit vector, perpendicular.
  pace: tuple[float, float]  # (angular frequency, phase): speed variation.
  sway: np.ndarray  # [3, 3] (amplitude, angular frequency, phase) rows.


def _sample_path(config: LongWorldConfig, seed: int) -> _Path:
  rng = np.random.default_rng(np.random.SeedSequence(seed,
                                                     spawn_key=(_SALT_PATH,)))
  angle = rng.uniform(0, 2 * np.pi)
  heading = np.array([np.sin(angle), np.cos(angle)])
  side = np.array([heading[1], -heading[0]])
  origin = rng.uniform(-1e6, 1e6, size=2)
  # Sideways sway: three sinusoids with periods of 40 s to 4 min at 25 fps;
  # their summed lateral speed stays below half the forward speed.
  periods = rng.uniform(1000, 6000, size=3)
  omegas = 2 * np.pi / periods
  amplitudes = config.sway * rng.dirichlet(np.ones(3))
  amplitudes = np.minimum(amplitudes, 0.5 * config.speed / omegas / 3)
  sway = np.stack([amplitudes, omegas, rng.uniform(0, 2 * np.pi, 3)], axis=1)
  pace = (2 * np.pi / rng.uniform(500, 3000), rng.uniform(0, 2 * np.pi))
  return _Path(origin, heading, side, pace, sway)


def camera_positions(config: LongWorldConfig, seed: int,
                     frames: np.ndarray) -> np.ndarray:
  """Top-left world pixel of each frame in `frames`: `[n, 2] int64` (y, x).

  Along the heading the camera covers `speed * t` plus a bounded oscillation
  whose speed is at most half of `speed`, so it never turns back.
  """
  path = _sample_path(config, seed)
  t = np.asarray(frames, np.float64)
  omega, phase = path.pace
  along = config.speed * (t + 0.5 / omega * (np.sin(omega * t + phase)
                                             - np.sin(phase)))
  amp, om, ph = (path.sway[:, i, None] for i in range(3))
  across = np.sum(amp * np.sin(om * t[None] + ph), axis=0)
  pos = (path.origin[None] + along[:, None] * path.heading[None]
         + across[:, None] * path.side[None])
  return np.round(pos).astype(np.int64)


def generate_long_world_chunks(config: LongWorldConfig, seed: int,
                               num_frames: int,
                               chunk_frames: int) -> Iterator[np.ndarray]:
  """Streams one continuous video, chunk by chunk, in O(chunk) memory.

  Args:
    config: frame size and world.
    seed: the video (world and camera path); >= 0.
    num_frames: length of the video.
    chunk_frames: frames per yielded chunk (the last may be shorter); the
      frames do not depend on it.

  Yields:
    `[c, H, W, 3] uint8` frames.
  """
  if seed < 0:
    raise ValueError(f'seed must be >= 0, got {seed}.')
  if chunk_frames <= 0 or num_frames < 0:
    raise ValueError(f'chunk_frames must be > 0 and num_frames >= 0, got '
                     f'{chunk_frames} and {num_frames}.')
  h, w = config.height, config.width
  for start in range(0, num_frames, chunk_frames):
    frames = np.arange(start, min(start + chunk_frames, num_frames))
    pos = camera_positions(config, seed, frames)
    (y0, x0), (y1, x1) = pos.min(axis=0), pos.max(axis=0)
    tile = render_tile(config, seed, int(y0), int(x0), int(y1 - y0) + h,
                       int(x1 - x0) + w)
    tile = (tile * 255 + 0.5).astype(np.uint8)
    yield np.stack([tile[y - y0:y - y0 + h, x - x0:x - x0 + w]
                    for y, x in pos])
