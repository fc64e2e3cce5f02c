"""experiments/probe_clip_motion.py on a tiny collaborative-memory run."""
import os
import re
import subprocess
import sys

import pytest

from experiments import probe_clip_motion
from data_pipelines.generated import moving_digits as md
from tests.conftest import REPO_ROOT, main_args, run_main

PROBE = os.path.join(REPO_ROOT, 'experiments', 'probe_clip_motion.py')


def _probe(*args):
  return subprocess.run([sys.executable, PROBE, *args], capture_output=True,
                        text=True, timeout=300)


@pytest.fixture(scope='module')
def tiny_cm_run(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp('cm'))
  run_main(main_args('experiments/configs/collab_memory.py:tiny', workdir,
                     data_dir))
  return workdir


@pytest.mark.slow  # Trains a CM run first: ~1.5 min on 2 cores.
def test_probe_reads_the_backbone_of_a_cm_run(tiny_cm_run, data_dir):
  workdir = tiny_cm_run
  proc = _probe(f'--workdir={workdir}', f'--data_dir={data_dir}',
                '--dataset_config=tiny', '--split=train', '--clip_frames=4',
                '--videos=32')
  assert proc.returncode == 0, proc.stderr[-2000:]
  # 16 held-out videos of 8 frames, 2 one-motion clips of 4 frames each.
  match = re.search(r'clip motion probe accuracy (\d+\.\d)% on 32 held-out '
                    r'clips \(majority class (\d+\.\d)%\)', proc.stdout)
  assert match, proc.stdout


def test_probe_names_a_missing_run(tmp_path, data_dir):
  proc = _probe(f'--workdir={tmp_path}/nothing', f'--data_dir={data_dir}',
                '--dataset_config=tiny')
  assert proc.returncode != 0
  assert 'nothing' in proc.stderr and 'checkpoints' in proc.stderr


def test_probe_names_a_run_without_an_rgb_s3d(tiny_codec_run, data_dir):
  proc = _probe(f'--workdir={tiny_codec_run}', f'--data_dir={data_dir}',
                '--dataset_config=tiny')
  assert proc.returncode != 0
  assert tiny_codec_run in proc.stderr and "'codec' run" in proc.stderr


@pytest.mark.slow  # Trains a CM run first: ~1.5 min on 2 cores.
def test_probe_names_a_clip_longer_than_the_videos(tiny_cm_run, data_dir):
  proc = _probe(f'--workdir={tiny_cm_run}', f'--data_dir={data_dir}',
                '--dataset_config=tiny', '--clip_frames=9')
  assert proc.returncode != 0
  assert '--clip_frames=9' in proc.stderr and '8 frames' in proc.stderr


def test_rotates_target_marks_exactly_the_two_rotations():
  names = md.CLASS_NAMES
  assert [probe_clip_motion.probe_target(c, 'rotates')
          for c in range(8)] == [int(n.startswith('rotate')) for n in names]
  assert probe_clip_motion.probe_target(6, 'motion') == 6
