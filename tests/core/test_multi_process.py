"""Several JAX processes on one machine (`cvision.core.local_cluster`) give
the batches, losses, parameters, checkpoints and evaluations of one process.

Each multi-process run is 2 processes of 4 CPU devices joined by
`jax.distributed` over gloo; the reference is 1 process of 8 devices (the
same mesh), or of 1 device where the device count must not matter either.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cvision.core import input_pipeline
from cvision.core import local_cluster
from tests.conftest import REPO_ROOT, main_args, run_main
from tests.core.test_training_runs import (AE_TINY, EIGHT_DEVICES,
                                           _assert_trees_close, _params,
                                           _train_losses,
                                           _wait_for_checkpoint)

MAIN = [sys.executable, os.path.join(REPO_ROOT, 'experiments', 'main.py')]
PROBE = os.path.join(REPO_ROOT, 'tests', 'core', 'multi_process_probe.py')
ONE_DEVICE = {'XLA_FLAGS': '--xla_force_host_platform_device_count=1'}


def _run_two_processes(args, timeout=240):
  """`args` as 2 processes x 4 devices; fails showing their logs."""
  result = local_cluster.launch(args, num_processes=2, devices_per_process=4,
                                cwd=REPO_ROOT, timeout=timeout, output=None)
  if not result.ok:
    logs = '\n'.join(f'--- process {i} (exit {c}) ---\n{log[-3000:]}'
                     for i, (c, log) in enumerate(zip(result.exit_codes,
                                                      result.logs)))
    raise AssertionError(f'{args[1:]} failed (timed out: '
                         f'{result.timed_out}):\n{logs}')
  return result


def _train_2x4(workdir, data_dir, *extra):
  return _run_two_processes(MAIN + main_args(
      AE_TINY, workdir, data_dir, '--jax_distributed',
      '--config.train.log_every=1', *extra))


def _train_1x8(workdir, data_dir, *extra):
  return run_main(main_args(AE_TINY, workdir, data_dir,
                            '--config.train.log_every=1', *extra),
                  env=EIGHT_DEVICES)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir):
  """The tiny autoencoder trained 6 steps by 1 x 8 and by 2 x 4."""
  root = tmp_path_factory.mktemp('multi_process')
  one, two = str(root / 'one_x8'), str(root / 'two_x4')
  _train_1x8(one, data_dir)
  _train_2x4(two, data_dir)
  return one, two


def test_launcher_reports_a_failure_and_stops_the_other(tmp_path):
  # Process 1 fails at once; process 0 would wait a minute, and is stopped.
  code = ('import os, sys, time\n'
          'if os.environ["CVISION_PROCESS_ID"] == "1":\n'
          '  print("boom", flush=True); sys.exit(3)\n'
          'time.sleep(60)\n')
  result = local_cluster.launch([sys.executable, '-c', code],
                                num_processes=2, devices_per_process=2,
                                timeout=30, output=None, grace_s=1)
  assert not result.ok and not result.timed_out
  assert result.exit_codes[1] == 3
  assert result.exit_codes[0] != 0  # Stopped by the launcher's SIGTERM.
  assert result.logs[1] == 'boom\n'


def test_an_error_in_one_jax_process_ends_the_run_at_once():
  # Process 0 waits in a collective for process 1, which fails: without
  # exiting at once, process 1 would wait in JAX's shutdown for process 0.
  code = (f'import sys; sys.path.insert(0, {REPO_ROOT!r})\n'
          'import time\n'
          'from cvision.core import distributed\n'
          'distributed.initialize()\n'
          'import jax\n'
          'from jax.experimental import multihost_utils\n'
          'with distributed.exit_at_once_on_error():\n'
          '  if jax.process_index() == 1:\n'
          '    raise ValueError("bad input")\n'
          '  multihost_utils.sync_global_devices("never")\n')
  start = time.monotonic()
  result = local_cluster.launch([sys.executable, '-c', code],
                                num_processes=2, devices_per_process=1,
                                timeout=90, output=None, grace_s=2)
  assert not result.timed_out and time.monotonic() - start < 20
  assert result.exit_codes[1] == 1
  assert 'ValueError: bad input' in result.logs[1]
  assert result.exit_codes[0] != 0


def test_process_env_sets_devices_and_the_run():
  env = local_cluster.process_env(
      1, 2, '127.0.0.1:1234', 4,
      base={'XLA_FLAGS': '--xla_force_host_platform_device_count=8 --foo'})
  assert env['XLA_FLAGS'] == '--foo --xla_force_host_platform_device_count=4'
  assert (env['CVISION_PROCESS_ID'], env['CVISION_NUM_PROCESSES'],
          env['CVISION_COORDINATOR_ADDRESS']) == ('1', '2', '127.0.0.1:1234')


def test_each_process_reads_only_its_part_of_every_batch(tmp_path):
  global_batch, train_n, eval_n = 8, 20, 9
  _run_two_processes([sys.executable, PROBE, str(tmp_path), str(global_batch),
                      str(train_n), str(eval_n)], timeout=120)
  reports = []
  for p in (0, 1):
    with open(tmp_path / f'reads_{p}.json') as f:
      reports.append(json.load(f))

  # The one-process batches, read here (this process is alone).
  class Ids:
    def __init__(self, n):
      self.n = n

    def __len__(self):
      return self.n

    def __getitem__(self, i):
      return {'id': np.int32(i)}

  one = input_pipeline.train_dataset(Ids(train_n), global_batch_size=8,
                                     seed=3, keys=('id',))
  steps = len(reports[0]['train_local'])
  expected = [one[s]['id'].tolist() for s in range(steps)]
  for p, report in enumerate(reports):
    for s in range(steps):
      part = expected[s][4 * p:4 * p + 4]
      assert report['train_local'][s] == part, (p, s)
      assert report['train_reads'][s] == sorted(part), (p, s)
    # Global batches from step 1 (a resumed run), assembled across processes.
    assert report['train_global'] == expected[1:]
    # Evaluation: batch 0 is examples 0-7 (process 0 reads 0-3); batch 1 is
    # example 8 (process 0) and 7 padding rows, process 1's all padding.
    assert report['eval_global'] == [
        {'id': list(range(8)), '_valid': [True] * 8},
        {'id': [8] + [0] * 7, '_valid': [True] + [False] * 7}]
  assert reports[0]['eval_reads'] == [0, 1, 2, 3, 8]
  assert reports[1]['eval_reads'] == [4, 5, 6, 7]


def test_two_processes_train_like_one(trained):
  one, two = trained
  losses_one, losses_two = _train_losses(one), _train_losses(two)
  assert sorted(losses_two) == list(range(1, 7))
  for step in losses_one:
    np.testing.assert_allclose(losses_two[step], losses_one[step], rtol=1e-5)
  # Process 0 alone wrote the logs: one line per step, not two.
  with open(os.path.join(two, 'metrics.jsonl')) as f:
    assert sum('"train"' in line for line in f) == 6
  for step in (2, 4, 6):
    _assert_trees_close(_params(one, step), _params(two, step), rtol=1e-4,
                        atol=1e-6)


def test_checkpoints_move_between_process_counts(trained, tmp_path,
                                                 data_dir):
  one, two = trained
  # 2 processes' checkpoint resumed by 1 process of 1 device, and 1
  # process's by 2 processes: both go on to step 8 alike.
  two_then_one, one_then_two = str(tmp_path / 'a'), str(tmp_path / 'b')
  shutil.copytree(two, two_then_one)
  shutil.copytree(one, one_then_two)
  run_main(main_args(AE_TINY, two_then_one, data_dir,
                     '--config.train.log_every=1', '--config.train.steps=8'),
           env=ONE_DEVICE)
  _train_2x4(one_then_two, data_dir, '--config.train.steps=8')
  losses_a, losses_b = _train_losses(two_then_one), _train_losses(one_then_two)
  for step in (7, 8):
    np.testing.assert_allclose(losses_a[step], losses_b[step], rtol=1e-5)
  _assert_trees_close(_params(two_then_one, 8), _params(one_then_two, 8),
                      rtol=1e-4, atol=1e-6)


def test_evaluation_over_two_processes_is_that_of_one(trained, data_dir):
  _, two = trained
  # 9 examples in batches of 8: the second batch is 1 example and 7 padding
  # rows, process 1's part of it all padding.
  split = '--config.eval.split=test[:9]'
  run_main(main_args(AE_TINY, two, data_dir, '--mode=eval', split),
           env=EIGHT_DEVICES)
  with open(os.path.join(two, 'eval_test_9.json')) as f:
    one_process = json.load(f)
  os.remove(os.path.join(two, 'eval_test_9.json'))
  _run_two_processes(MAIN + main_args(AE_TINY, two, data_dir, '--mode=eval',
                                      '--jax_distributed', split))
  with open(os.path.join(two, 'eval_test_9.json')) as f:
    two_processes = json.load(f)
  assert one_process['num_examples'] == two_processes['num_examples'] == 9
  assert one_process['metrics'].keys() == {'psnr', 'mae'}
  for name, value in one_process['metrics'].items():
    np.testing.assert_allclose(two_processes['metrics'][name], value,
                               rtol=1e-6, err_msg=name)


CODEC_TINY = 'experiments/configs/codec.py:tiny'


def test_encode_over_two_processes_writes_the_codes_of_one(
    tiny_codec_run, data_dir, tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
  run_main(main_args(CODEC_TINY, tiny_codec_run, data_dir, '--mode=encode',
                     f'--config.encode.output_dir={one}'))
  result = _run_two_processes(MAIN + main_args(
      CODEC_TINY, tiny_codec_run, data_dir, '--mode=encode',
      '--jax_distributed', f'--config.encode.output_dir={two}'))
  # 8 examples a shard: train's 8 shards, 4 for each process.
  for p, log in enumerate(result.logs):
    written = sorted(int(line.split('train shard ')[1].split('/')[0])
                     for line in log.splitlines() if 'Encoded train shard' in
                     line)
    assert written == [s + 1 for s in range(p, 8, 2)], (p, written)
  a, b = tfds.builder_from_directory(one), tfds.builder_from_directory(two)
  assert a.info.splits.keys() == b.info.splits.keys() == {
      'train', 'validation', 'test'}
  for split in a.info.splits:
    source_a = a.as_data_source(split=split)
    source_b = b.as_data_source(split=split)
    assert len(source_a) == len(source_b) > 0
    for i in range(len(source_a)):
      ex_a, ex_b = source_a[i], source_b[i]
      assert ex_a.keys() == ex_b.keys()
      for k in ex_a:
        np.testing.assert_array_equal(ex_a[k], ex_b[k], err_msg=(split, i, k))


# Enough steps that the run is still going when it is interrupted.
INTERRUPTED = ('--config.train.steps=20', '--config.train.checkpoint_every=2',
               '--config.train.keep_checkpoints=50')


def _start_two_processes(workdir, data_dir, log_dir, flags=INTERRUPTED):
  """2 x 4 processes of main.py, not waited for (logs in `log_dir`)."""
  coordinator = f'127.0.0.1:{local_cluster.free_port()}'
  procs = []
  for p in range(2):
    with open(os.path.join(log_dir, f'log_{p}.txt'), 'a') as log:
      procs.append(subprocess.Popen(
          MAIN + main_args(AE_TINY, workdir, data_dir, '--jax_distributed',
                           '--config.train.log_every=1', *flags),
          cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
          env=local_cluster.process_env(p, 2, coordinator, 4)))
  return procs


def _steps_saved(workdir):
  return sorted(int(d) for d in os.listdir(os.path.join(workdir,
                                                        'checkpoints'))
                if d.isdigit())


def test_sigterm_to_one_process_stops_both_after_one_saved_step(
    tmp_path, data_dir):
  job = str(tmp_path / 'job')
  procs = _start_two_processes(job, data_dir, str(tmp_path), flags=(
      '--config.train.steps=100000', '--config.train.checkpoint_every=2'))
  try:
    _wait_for_checkpoint(job, 2, procs[0])
    procs[1].send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=120) for p in procs]
  finally:
    for p in procs:  # A hung run (one process saving alone) is ended here.
      if p.poll() is None:
        p.kill()
        p.wait()
  logs = [open(tmp_path / f'log_{p}.txt').read() for p in (0, 1)]
  assert codes == [143, 143], [log[-3000:] for log in logs]
  with open(os.path.join(job, 'train_result.json')) as f:
    result = json.load(f)
  assert result['preempted'] and result['step'] >= 2
  assert _steps_saved(job)[-1] == result['step']
  # Both ran exactly the steps saved: neither went on alone.
  for log in logs:
    assert f'step {result["step"]}/100000' in log
    assert f'step {result["step"] + 1}/100000' not in log


# About 2 minutes on 2 busy cores (five runs): in the default suite, as the
# multi-host resume guarantee it checks is one users rely on.
def test_preempted_and_killed_job_resumes_to_the_uninterrupted_parameters(
    tmp_path, data_dir):
  straight, job = str(tmp_path / 'straight'), str(tmp_path / 'job')
  _train_1x8(straight, data_dir, *INTERRUPTED)

  # A scheduler's SIGTERM to one process only: both stop after one agreed
  # step, save it together and exit 143.
  procs = _start_two_processes(job, data_dir, str(tmp_path))
  _wait_for_checkpoint(job, 2, procs[0])
  procs[1].send_signal(signal.SIGTERM)
  codes = [p.wait(timeout=120) for p in procs]
  logs = [open(tmp_path / f'log_{p}.txt').read()[-3000:] for p in (0, 1)]
  assert codes == [143, 143], logs
  with open(os.path.join(job, 'train_result.json')) as f:
    preempted = json.load(f)
  assert preempted['preempted'] and 2 <= preempted['step'] < 20
  assert _steps_saved(job)[-1] == preempted['step']

  # Relaunched, then killed with SIGKILL (no checkpoint of its own), then
  # relaunched to the end.
  procs = _start_two_processes(job, data_dir, str(tmp_path))
  _wait_for_checkpoint(job, preempted['step'] + 2 - preempted['step'] % 2,
                       procs[0])
  for p in procs:
    p.kill()
  for p in procs:
    p.wait()
  assert _steps_saved(job)[-1] < 20, 'the run ended before it was killed'
  _train_2x4(job, data_dir, *INTERRUPTED)
  _assert_trees_close(_params(straight, 20), _params(job, 20), rtol=1e-4,
                      atol=1e-6)
