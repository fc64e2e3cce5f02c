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

  Its workdir is what downstream models read (`cvision.projects.codec.frozen`).
  """
  # pylint: disable=g-import-not-at-top
  from cvision import projects
  from experiments.configs import codec as codec_configs
  workdir = str(tmp_path_factory.mktemp('codec'))
  config = codec_configs.get_config('tiny')
  config.data.data_dir = data_dir
  config.train.steps = 1
  projects.train(config, workdir)
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


@pytest.fixture(scope='session')
def mpeg_data_dir(tmp_path_factory):
  """A data dir holding `mpeg_gops/tiny` (1 GOP of 32x32, 16/8/8 videos)."""
  from data_pipelines.builders import mpeg_gops  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp('mpeg_datasets'))
  mpeg_gops.build(path, 'tiny')
  return path


TINY_CHUNK_FRAMES = 4  # experiments/configs/past_future.py:tiny
TINY_CHUNKS = 6


def _write_long_codes(codec_workdir, output_dir, videos_per_split):
  # pylint: disable=g-import-not-at-top
  from cvision.projects.codec import frozen
  from cvision.projects.codec import long_video_codes as lvc
  from data_pipelines.generated import long_world
  codec = frozen.load_frozen_codec(codec_workdir, with_params=True)
  metadata, grid = lvc.codec_metadata(codec, (32, 32))
  frames = TINY_CHUNK_FRAMES * TINY_CHUNKS
  splits = {s: lvc.generated_sources(long_world.TINY, s, n, frames, 8)
            for s, n in videos_per_split.items()}
  lvc.write_long_video_codes(
      output_dir=output_dir, splits=splits, encode=lvc.codec_encoder(codec),
      code_grid=grid, num_codebooks=metadata['num_codebooks'],
      codebook_size=metadata['codebook_size'],
      metadata={**metadata, 'fps': 25})
  return output_dir


@pytest.fixture(scope='session')
def tiny_long_codes(tiny_codec_run, tmp_path_factory):
  """Generated 32x32 walks of 6 chunks of 4 frames, as tiny-codec codes.

  2 train videos and 1 test video; codes `[24, 8, 8, 2]` uint8 (K=32).
  """
  return _write_long_codes(tiny_codec_run,
                           str(tmp_path_factory.mktemp('long_codes')),
                           {'train': 2, 'test': 1})


@pytest.fixture(scope='session')
def tiny_long_codes_test_only(tiny_codec_run, tmp_path_factory):
  """The same test video as `tiny_long_codes`, in a dataset with no train
  split (a held-out set a user evaluates on)."""
  return _write_long_codes(tiny_codec_run,
                           str(tmp_path_factory.mktemp('long_codes_test')),
                           {'test': 1})
