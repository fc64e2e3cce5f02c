"""Shared fixtures: a tiny generated dataset, built once per test session."""
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)


def pytest_configure(config):
  config.addinivalue_line(
      'markers', 'slow: longer than a default run should take; run with '
      '`pytest -m slow` (or `-m "slow or not slow"` for everything).')


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  """A data dir holding the `tiny` moving-digits dataset."""
  path = str(tmp_path_factory.mktemp('datasets'))
  from data_pipelines import build  # pylint: disable=g-import-not-at-top
  build.build_dataset('moving_digits', path, config='tiny')
  return path


@pytest.fixture(scope='session')
def tiny_codec_run(tmp_path_factory, data_dir):
  """A tiny codec trained for 1 step: 8x32x32 -> 8x8x8 codes, N=2, K=32.

  Its workdir is what downstream models read (`cvision.codec.frozen`).
  """
  # pylint: disable=g-import-not-at-top
  from cvision.core import trainer
  from experiments.configs import codec as codec_configs
  workdir = str(tmp_path_factory.mktemp('codec'))
  config = codec_configs.get_config('tiny')
  config.data.data_dir = data_dir
  config.train.steps = 1
  trainer.train_and_evaluate(config, workdir)
  return workdir


def run_main(args, *, env=None, timeout=300, check=True):
  """Runs experiments/main.py in a fresh process; returns CompletedProcess."""
  full_env = dict(os.environ)
  full_env.update(env or {})
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, 'experiments', 'main.py')]
      + list(args), capture_output=True, text=True, env=full_env,
      timeout=timeout, cwd=REPO_ROOT)
  if check and proc.returncode != 0:
    raise AssertionError(f'main.py {args} failed ({proc.returncode}):\n'
                         f'{proc.stderr[-4000:]}')
  return proc


def main_args(config, workdir, data_dir, *extra):
  return [f'--config={config}', f'--workdir={workdir}',
          f'--config.data.data_dir={data_dir}', *extra]
