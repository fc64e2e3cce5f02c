"""The clip probe of experiments/probe_code_motion.py: correlations, fit."""
import os
import subprocess
import sys

import numpy as np
import pytest

from cvision.projects.codec import probe
from tests.conftest import REPO_ROOT

PROBE = os.path.join(REPO_ROOT, 'experiments', 'probe_code_motion.py')
# One codebook, K=2 entries: a background code and a distinct one.
BOOKS = np.array([[[1.0, 0.0], [0.0, 1.0]]], np.float32)


def _moving_dot(dx, steps=4, size=6):
  """`[T, H, W, 1]` codes: code 1 on a background of 0, dx cells a step."""
  codes = np.zeros((steps, size, size, 1), np.int32)
  for t in range(steps):
    codes[t, 2, 1 + dx * t if dx > 0 else 4 + dx * t] = 1
  return codes


def test_mean_correlations_point_along_the_motion():
  codes = np.stack([_moving_dot(1), _moving_dot(-1)])
  feats = probe.clip_correlations(BOOKS, codes, 4, 1)
  assert feats.shape == (2, 9)
  # Channel (dy + 1) * 3 + (dx + 1): dx=+1 is 5, dx=-1 is 3. Each mean is
  # over 3 steps x 36 cells; the dot's cell adds 1 in its own direction and
  # takes 1 from the background matches it lands on.
  right, left = feats
  assert right[5] > right[3] and left[3] > left[5]
  np.testing.assert_allclose(right[5] - right[3], left[3] - left[5])
  with pytest.raises(ValueError, match='clip_frames=5'):
    probe.clip_correlations(BOOKS, codes, 5, 1)


def test_probe_separates_directions_it_is_given():
  rng = np.random.default_rng(0)
  codes = np.stack([_moving_dot(dx) for dx in (1, -1) * 8])
  labels = np.array([0, 1] * 8)
  feats = probe.clip_correlations(BOOKS, codes, 4, 1)
  feats = feats + 0.01 * rng.standard_normal(feats.shape)
  assert probe.fit_and_score(feats[:8], labels[:8], feats[8:],
                             labels[8:]) == 1.0


def test_missing_dataset_is_named(tmp_path):
  proc = subprocess.run(
      [sys.executable, PROBE, f'--codec_workdir={tmp_path}',
       f'--dataset_dir={tmp_path}/no_codes'], capture_output=True, text=True,
      timeout=120)
  assert proc.returncode != 0
  assert 'no_codes' in proc.stderr and '--mode=encode' in proc.stderr
