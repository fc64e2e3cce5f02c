"""A tiny augmenter run (2 steps through the tiny codec), shared by tests."""
import pytest


@pytest.fixture(scope='session')
def tiny_augmenter_run(tmp_path_factory, data_dir, tiny_codec_run):
  """Workdir of `augmenter.py:tiny,crop` trained for 2 steps via the binary."""
  # pylint: disable=g-import-not-at-top
  from tests.conftest import main_args, run_main
  workdir = str(tmp_path_factory.mktemp('augmenter'))
  run_main(main_args('experiments/configs/augmenter.py:tiny,crop', workdir,
                     data_dir, f'--config.codec.workdir={tiny_codec_run}'))
  return workdir
