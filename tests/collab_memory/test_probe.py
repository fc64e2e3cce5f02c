"""experiments/probe_clip_motion.py on a tiny collaborative-memory run."""
import os
import re
import subprocess
import sys

from tests.conftest import REPO_ROOT, main_args, run_main

PROBE = os.path.join(REPO_ROOT, 'experiments', 'probe_clip_motion.py')


def _probe(*args):
  return subprocess.run([sys.executable, PROBE, *args], capture_output=True,
                        text=True, timeout=300)


def test_probe_reads_the_backbone_of_a_cm_run(tmp_path, data_dir):
  workdir = str(tmp_path / 'cm')
  run_main(main_args('experiments/configs/collab_memory.py:tiny', workdir,
                     data_dir))
  proc = _probe(f'--workdir={workdir}', f'--data_dir={data_dir}',
                '--dataset_config=tiny', '--split=train', '--clip_frames=4',
                '--videos=32')
  assert proc.returncode == 0, proc.stderr[-2000:]
  # 16 held-out videos of 8 frames, 2 one-motion clips of 4 frames each.
  match = re.search(r'clip-motion probe accuracy (\d+\.\d)% on 32 held-out '
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
