"""The binary end to end: train, eval, overrides, artefacts, bad flags."""
import glob
import json
import os
import re
import sys

from tests.conftest import main_args, run_main

AE_TINY = 'experiments/configs/autoencoder.py:tiny'


def test_train_then_eval_writes_every_artefact(tmp_path, data_dir):
  workdir = str(tmp_path / 'run')
  proc = run_main(main_args(AE_TINY, workdir, data_dir,
                            '--config.train.steps=4', '--alsologtostderr'))
  assert 'step 4/4' in proc.stderr and 'steps/s' in proc.stderr
  assert 'ETA' in proc.stderr
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['train']['steps'] == 4  # The override was applied.
  assert glob.glob(os.path.join(workdir, 'tensorboard', 'events.out.*'))
  run_main(main_args(AE_TINY, workdir, data_dir, '--mode=eval'))
  with open(os.path.join(workdir, 'eval_test.json')) as f:
    result = json.load(f)
  assert result['step'] == 4 and result['split'] == 'test'
  assert 0 < result['metrics']['mae'] < 1 and result['metrics']['psnr'] > 0


def test_eval_without_a_checkpoint_says_so(tmp_path, data_dir):
  proc = run_main(main_args(AE_TINY, str(tmp_path / 'empty'), data_dir,
                            '--mode=eval'), check=False)
  assert proc.returncode != 0 and 'No checkpoint in' in proc.stderr


def test_unknown_mode_and_preset_are_named(tmp_path, data_dir):
  proc = run_main(main_args(AE_TINY, str(tmp_path / 'r'), data_dir,
                            '--mode=encode'), check=False)
  assert proc.returncode != 0
  assert '--mode=encode is not a mode of task' in proc.stderr
  proc = run_main(main_args('experiments/configs/autoencoder.py:huge',
                            str(tmp_path / 'r'), data_dir), check=False)
  assert proc.returncode != 0 and "Unknown preset(s) ['huge']" in proc.stderr


def _error_lines(proc):
  """stderr without absl's log lines ('I1207 12:00:00...') and blanks."""
  return [line for line in proc.stderr.splitlines()
          if line.strip() and not re.match(r'[IWE]\d{4} ', line)]


def test_user_errors_are_one_line_and_a_hint_without_a_traceback(tmp_path,
                                                                 data_dir):
  typo = run_main(main_args(AE_TINY, str(tmp_path / 'r'), data_dir,
                            '--config.train.stepz=5'), check=False)
  assert typo.returncode == 2
  assert 'Traceback' not in typo.stderr
  assert ('no config field \'stepz\'. Did you mean "steps" instead of '
          '"stepz"?') in typo.stderr
  assert len(_error_lines(typo)) <= 2, typo.stderr
  preset = run_main(main_args('experiments/configs/autoencoder.py:huge',
                              str(tmp_path / 'r'), data_dir), check=False)
  assert preset.returncode == 2 and 'Traceback' not in preset.stderr
  assert len(_error_lines(preset)) <= 2, preset.stderr
  missing = run_main(main_args(
      AE_TINY, str(tmp_path / 'r'), data_dir, '--config.data.name=video_folder',
      f'--config.data.video_folder.root={tmp_path}/no_such_folder'),
                     check=False)
  assert missing.returncode == 1 and 'Traceback' not in missing.stderr
  assert 'no_such_folder' in missing.stderr
  assert not os.path.exists(tmp_path / 'r' / 'config.json')  # Nothing written.
  # The traceback when asked for.
  asked = run_main(main_args(AE_TINY, str(tmp_path / 'r'), data_dir,
                             '--config.train.stepz=5', '--show_traceback'),
                   check=False)
  assert asked.returncode != 0 and 'Traceback' in asked.stderr


def test_an_error_in_a_multi_process_run_is_one_line_per_process(tmp_path,
                                                                 data_dir):
  from cvision.core import local_cluster  # pylint: disable=g-import-not-at-top
  from tests.conftest import REPO_ROOT  # pylint: disable=g-import-not-at-top
  command = [sys.executable, os.path.join(REPO_ROOT, 'experiments', 'main.py'),
             '--jax_distributed', *main_args(AE_TINY, str(tmp_path / 'empty'),
                                             data_dir, '--mode=eval')]
  result = local_cluster.launch(command, num_processes=2,
                                devices_per_process=1, timeout=120,
                                output=None, grace_s=2)
  assert not result.timed_out and result.exit_codes == [1, 1], result.logs
  for index, log in enumerate(result.logs):
    assert 'Traceback' not in log, log
    errors = [line for line in log.splitlines() if line.startswith('error')]
    assert len(errors) == 1 and 'No checkpoint in' in errors[0], log
    assert f'in process {index} of 2' in errors[0]
