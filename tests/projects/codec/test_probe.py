"""Linear probes of moving cells from codes: targets, features, scores."""
import numpy as np
import pytest

from cvision.projects.codec import probe


def _square_video(positions, size=8, cell=4):
  """A static grey frame with a white `cell`-sized square at each (y, x)."""
  video = np.full((1, len(positions), size, size, 3), 100, np.uint8)
  for t, (y, x) in enumerate(positions):
    video[0, t, y:y + cell, x:x + cell] = 255
  return video


def test_moving_cells_marks_where_the_square_is_away_from_its_median():
  # The square visits cell (0, 0) at t=0 and cell (1, 1) at t=1 and t=2:
  # the median is the square at (1, 1), so only (0, 0) at t=0 and (1, 1)
  # at t=0 differ from it.
  video = _square_video([(0, 0), (4, 4), (4, 4)])
  moving = probe.moving_cells(video, cell=4)
  assert moving.shape == (1, 3, 2, 2)
  expected = np.zeros((1, 3, 2, 2), bool)
  expected[0, 0, 0, 0] = expected[0, 0, 1, 1] = True
  np.testing.assert_array_equal(moving, expected)
  # Time pooled in pairs: any moving frame of the pair marks the cell.
  pooled = probe.moving_cells(video[:, :2], cell=4, frames_per_cell=2)
  np.testing.assert_array_equal(pooled[0, 0], [[True, False], [False, True]])
  with pytest.raises(ValueError, match='do not split into code cells'):
    probe.moving_cells(video, cell=3)


def test_cell_features_shapes_and_change_of_a_static_grid_is_zero():
  embedded = np.random.default_rng(0).normal(size=(2, 3, 4, 5, 6))
  features = probe.cell_features(embedded)
  assert features['cell'].shape == (2 * 3 * 4 * 5, 6)
  assert features['neighbourhood'].shape == (120, 27 * 6)
  assert features['change'].shape == (120, 12)
  # The centre of the 3x3x3 neighbourhood (offset index 13) is the cell.
  np.testing.assert_array_equal(features['neighbourhood'][:, 13 * 6:14 * 6],
                                features['cell'])
  static = np.repeat(embedded[:, :1], 3, axis=1)
  assert not probe.cell_features(static)['change'].any()


def test_balanced_accuracy_weighs_both_classes_equally():
  targets = np.array([True, False, False, False])
  # All negative: 3/4 right, but balanced accuracy is chance.
  assert probe.balanced_accuracy(targets, np.zeros(4, bool)) == 0.5
  assert probe.balanced_accuracy(
      targets, np.array([True, True, False, False])) == pytest.approx(
          0.5 * (1 + 2 / 3))
  with pytest.raises(ValueError, match='both classes'):
    probe.balanced_accuracy(np.zeros(4, bool), np.zeros(4, bool))


def _synthetic(content_says_moving: bool, seed=0):
  """Codes whose content, or only whose change, marks the moving cells."""
  rng = np.random.default_rng(seed)
  b, t, h, w, c = 8, 6, 6, 6, 4
  moving = rng.random((b, t, h, w)) < 0.1
  embedded = rng.normal(size=(b, t, h, w, c))
  if content_says_moving:
    embedded[..., 0] += 4.0 * moving
  else:
    # A static background whose embedding is redrawn where something moves:
    # no channel's value tells moving from still, only that it changed.
    still = np.repeat(rng.normal(size=(b, 1, h, w, c)), t, axis=1)
    embedded = np.where(moving[..., None], embedded, still)
  return embedded, moving


def test_probe_reads_content_when_codes_carry_it():
  scores = probe.probe(*_synthetic(content_says_moving=True))
  assert set(scores) == set(probe.FEATURES)
  assert scores['cell'] > 0.9
  assert scores['neighbourhood'] > 0.85


def test_probe_finds_only_change_when_content_is_uninformative():
  scores = probe.probe(*_synthetic(content_says_moving=False))
  assert scores['cell'] < 0.6
  assert scores['change'] > 0.8


def test_probe_refuses_mismatched_or_too_few_videos():
  embedded, moving = _synthetic(True)
  with pytest.raises(ValueError, match='differ'):
    probe.probe(embedded, moving[:, :-1])
  with pytest.raises(ValueError, match='at least 2 videos'):
    probe.probe(embedded[:1], moving[:1])


def test_pixel_cells_hold_each_cells_pixels():
  video = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(1, 2, 4, 4, 3)
  cells = probe.pixel_cells(video, cell=2)
  assert cells.shape == (1, 2, 2, 2, 12)
  # Cell (t=1, y=0, x=1): rows 0-1, columns 2-3 of frame 1.
  np.testing.assert_array_equal(
      cells[0, 1, 0, 1], video[0, 1, 0:2, 2:4].reshape(-1))
  assert probe.pixel_cells(video, cell=2, frames_per_cell=2).shape == (
      1, 1, 2, 2, 24)
  # A square on a grey frame: its pixels say where it is.
  square = _square_video([(0, 0), (4, 4), (4, 4), (0, 4)] * 2)
  moving = probe.moving_cells(square, cell=4)
  scores = probe.probe(probe.pixel_cells(square, 4)[0].reshape(2, 4, 2, 2, -1),
                       moving.reshape(2, 4, 2, 2), features=('cell',))
  assert set(scores) == {'cell'}
