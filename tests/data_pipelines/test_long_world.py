"""Generated long walks: continuous, reproducible, streamed in chunks."""
import numpy as np
import pytest

from data_pipelines.generated import long_world as lw


def _video(config, seed, frames, chunk):
  return np.concatenate(list(lw.generate_long_world_chunks(
      config, seed, frames, chunk)))


def test_chunks_do_not_depend_on_the_chunk_size():
  a = _video(lw.TINY, 3, 50, 7)
  b = _video(lw.TINY, 3, 50, 50)
  assert a.shape == (50, 32, 32, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  chunks = list(lw.generate_long_world_chunks(lw.TINY, 3, 50, 16))
  assert [len(c) for c in chunks] == [16, 16, 16, 2]


def test_seeds_give_other_worlds():
  a, b = _video(lw.TINY, 0, 4, 4), _video(lw.TINY, 1, 4, 4)
  assert np.mean(np.abs(a.astype(int) - b.astype(int))) > 10


def test_a_pixel_does_not_depend_on_its_tile():
  big = lw.render_tile(lw.DEFAULT, 5, -100, 200, 64, 80)
  small = lw.render_tile(lw.DEFAULT, 5, -90, 230, 10, 20)
  np.testing.assert_array_equal(big[10:20, 30:50], small)


def test_the_camera_moves_and_never_turns_back():
  config = lw.DEFAULT
  frames = np.arange(0, 45_000, 25)  # 30 min, a sample per second.
  pos = lw.camera_positions(config, 7, frames).astype(float)
  path = lw._sample_path(config, 7)  # pylint: disable=protected-access
  along = pos @ path.heading
  # Rounding to whole pixels aside, progress along the heading never drops;
  # per second it is between 0.5 and 1.5 times the speed.
  steps = np.diff(along)
  assert steps.min() > 0.5 * 25 * config.speed - 2
  assert steps.max() < 1.5 * 25 * config.speed + 2
  # Consecutive frames move by about a pixel: continuous, no cuts.
  step = np.abs(np.diff(lw.camera_positions(config, 7, np.arange(500)),
                        axis=0))
  assert step.max() <= 2


def test_successive_frames_overlap_and_distant_chunks_differ():
  video = _video(lw.DEFAULT, 2, 1000, 125).astype(float)
  near = np.mean(np.abs(video[1] - video[0]))
  far = np.mean(np.abs(video[900] - video[0]))
  assert near < 15 < far


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match='seed'):
    next(lw.generate_long_world_chunks(lw.TINY, -1, 10, 5))
  with pytest.raises(ValueError, match='chunk_frames'):
    next(lw.generate_long_world_chunks(lw.TINY, 0, 10, 0))
  with pytest.raises(ValueError, match='object_radius'):
    lw.LongWorldConfig(object_radius=(5.0, 30.0))
  assert lw.DEFAULT.frames(60) == 90_000
