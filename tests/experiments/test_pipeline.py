"""The README's main job, end to end, on the tiny preset."""
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def _pipeline(workdir, *extra):
  return subprocess.run(
      [sys.executable, 'experiments/pipeline.py', f'--workdir={workdir}',
       '--codec_preset=tiny', *extra], cwd=REPO_ROOT, capture_output=True,
      text=True, timeout=600)


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('pipeline') / 'demo')
  return workdir, _pipeline(workdir)


def test_pipeline_trains_compares_encodes_and_decodes(demo):
  workdir, proc = demo
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '| cvision |' in proc.stdout and '| jpeg |' in proc.stdout
  assert 'bytes on disk for' in proc.stdout
  # The point of it all: the same classifier on codes and on RGB.
  assert '| RGB frames |' in proc.stdout and '| neural codes |' in proc.stdout
  assert 'fewer bytes than the RGB frames' in proc.stdout
  for route in ('s3d_rgb', 's3d_codes'):
    assert os.path.isfile(os.path.join(workdir, route, 'eval',
                                       's3d_test.json'))
  codes = os.path.join(workdir, 'codec', 'codes', 'moving_digits_tiny')
  assert os.path.isfile(os.path.join(codes, 'dataset_info.json'))
  assert os.path.isfile(os.path.join(workdir, 'codec', 'decoded',
                                     'test_grid.png'))


@pytest.mark.slow  # Evaluates every stage again: ~2 min on 2 cores.
def test_rerunning_the_pipeline_trains_nothing_twice(demo):
  workdir, first = demo
  assert first.returncode == 0, first.stderr[-3000:]
  again = _pipeline(workdir, '--alsologtostderr')
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'Already trained to step 4' in again.stderr
