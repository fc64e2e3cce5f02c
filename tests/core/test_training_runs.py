"""Whole runs of the binary: 8 devices against 1, kill and resume, SIGTERM,
and a restore into the wrong model.
"""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.conftest import REPO_ROOT, main_args, run_main

AE_TINY = 'experiments/configs/autoencoder.py:tiny'
EIGHT_DEVICES = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}


def _train_losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  return {r['step']: r['loss'] for r in rows if r['split'] == 'train'}


def _params(workdir, step):
  """The checkpoint's parameters, restored onto this process's one device."""
  path = os.path.join(workdir, 'checkpoints', str(step), 'state')
  checkpointer = ocp.StandardCheckpointer()
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
      checkpointer.metadata(path).item_metadata.tree)
  return checkpointer.restore(path, target)['params']


def _assert_trees_close(a, b, **tol):
  flat_a = {k: np.asarray(v) for k, v in _flatten(a)}
  flat_b = {k: np.asarray(v) for k, v in _flatten(b)}
  assert flat_a.keys() == flat_b.keys()
  for k in flat_a:
    np.testing.assert_allclose(flat_a[k], flat_b[k], err_msg=k, **tol)


def _flatten(tree, prefix=''):
  for k, v in tree.items():
    if isinstance(v, dict):
      yield from _flatten(v, f'{prefix}{k}/')
    else:
      yield f'{prefix}{k}', v


def test_eight_devices_give_the_losses_of_one(tmp_path, data_dir):
  one = str(tmp_path / 'one')
  eight = str(tmp_path / 'eight')
  run_main(main_args(AE_TINY, one, data_dir, '--config.train.log_every=1'))
  # Batch over 4-way `data`, conv output channels over 2-way `model`.
  run_main(main_args(AE_TINY, eight, data_dir, '--config.train.log_every=1',
                     '--config.mesh.shape=(4,2)',
                     "--config.sharding.logical_axis_rules=(('conv_out','model'),)"),
           env=EIGHT_DEVICES)
  losses_one, losses_eight = _train_losses(one), _train_losses(eight)
  assert sorted(losses_one) == list(range(1, 7))
  assert losses_one.keys() == losses_eight.keys()
  for step in losses_one:
    np.testing.assert_allclose(losses_eight[step], losses_one[step], rtol=1e-5)
  _assert_trees_close(_params(one, 6), _params(eight, 6), rtol=1e-4,
                      atol=1e-6)


def _start(workdir, data_dir, *extra):
  return subprocess.Popen(
      [sys.executable, 'experiments/main.py',
       *main_args(AE_TINY, workdir, data_dir, *extra)],
      cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
      text=True)


def _wait_for_checkpoint(workdir, step, proc, timeout=180):
  path = os.path.join(workdir, 'checkpoints', str(step))
  deadline = time.time() + timeout
  while not os.path.isdir(path):
    if proc.poll() is not None:
      raise AssertionError(f'run ended early: {proc.stderr.read()[-3000:]}')
    if time.time() > deadline:
      raise AssertionError(f'no checkpoint {path} after {timeout}s')
    time.sleep(0.02)


# Enough steps that the run is still going when its first checkpoint lands.
LONG = ('--config.train.steps=40', '--config.train.checkpoint_every=2',
        '--config.train.keep_checkpoints=50', '--config.train.eval_batches=1')


def test_killed_and_resumed_run_reaches_the_uninterrupted_parameters(
    tmp_path, data_dir):
  straight = str(tmp_path / 'straight')
  resumed = str(tmp_path / 'resumed')
  run_main(main_args(AE_TINY, straight, data_dir, *LONG))

  proc = _start(resumed, data_dir, *LONG)
  _wait_for_checkpoint(resumed, 2, proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = max(int(d) for d in os.listdir(os.path.join(resumed,
                                                          'checkpoints'))
                  if d.isdigit())
  assert killed_at < 40, 'the run finished before it could be killed'

  run_main(main_args(AE_TINY, resumed, data_dir, *LONG))
  # Bitwise: same batches, same rngs, same compiled step.
  _assert_trees_close(_params(straight, 40), _params(resumed, 40), rtol=0,
                      atol=0)


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path, data_dir):
  workdir = str(tmp_path / 'run')
  proc = _start(workdir, data_dir, '--config.train.steps=100000',
                '--config.train.checkpoint_every=2',
                '--config.train.log_every=1000')
  _wait_for_checkpoint(workdir, 2, proc)
  time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == 143
  with open(os.path.join(workdir, 'train_result.json')) as f:
    result = json.load(f)
  assert result['preempted'] is True
  assert os.path.isdir(os.path.join(workdir, 'checkpoints',
                                    str(result['step'])))


def test_restoring_into_a_different_model_fails_naming_the_difference(
    tmp_path, data_dir):
  workdir = str(tmp_path / 'run')
  run_main(main_args(AE_TINY, workdir, data_dir))
  with open(os.path.join(workdir, 'config.json')) as f:
    config_before = f.read()
  proc = run_main(main_args(AE_TINY, workdir, data_dir,
                            '--config.model.channels=(4,16)',
                            '--config.train.steps=8'), check=False)
  assert proc.returncode != 0
  assert 'CheckpointMismatchError' in proc.stderr
  # Refused before anything in the workdir changed.
  with open(os.path.join(workdir, 'config.json')) as f:
    assert f.read() == config_before
  assert "['Conv_1']['kernel']" in proc.stderr
  assert '[3, 4, 4, 4, 8]' in proc.stderr and '[3, 4, 4, 4, 16]' in proc.stderr
  # The checkpoint is untouched: the original config still resumes.
  run_main(main_args(AE_TINY, workdir, data_dir, '--config.train.steps=8'))


def test_restoring_a_checkpoint_of_another_task_names_both(tmp_path, data_dir):
  from cvision.core import checkpointing
  saved = {'task': 'codec', 'leaves': {'.params': [[1], 'float32']}}
  current = {'task': 'autoencoder', 'leaves': {'.params': [[1], 'float32']}}
  problems = checkpointing.describe_differences(saved, current)
  assert problems == ["it was written by task 'codec', this run is task "
                      "'autoencoder'"]
