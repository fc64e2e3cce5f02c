r"""The one binary: train, evaluate, encode, decode any cvision experiment.

  python experiments/main.py --config=experiments/configs/NAME.py[:PRESET] \
      --workdir=DIR --mode=train|eval|... [--config.train.steps=100 ...]

`--mode` is `train` or `eval` for every project; a project may add its own
modes (the codec adds `encode` and `decode`). Multi-host: pass
--jax_distributed on every host (TPU pods and SLURM/GPU clusters are
auto-detected by `jax.distributed.initialize`; elsewhere give
--coordinator_address, --num_processes and --process_id). On one machine,
experiments/launch_local.py starts K such processes (docs/multi_host.md).
"""
import os
import sys

# Runs as a script from anywhere: the repository root holds the packages.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from cvision import projects
from cvision.core import distributed
from cvision.core import metric_logging
from experiments import user_errors

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, with an optional :PRESET.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, '
                               'summaries, config, results.')
_MODE = flags.DEFINE_string('mode', 'train', 'train | eval | a task mode.')
_DISTRIBUTED = flags.DEFINE_bool(
    'jax_distributed', False, 'Call jax.distributed.initialize() first '
    '(multi-host runs).')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'With --jax_distributed: HOST:PORT of '
    'process 0 (default: $CVISION_COORDINATOR_ADDRESS or auto-detected).')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', None, 'With --jax_distributed: processes in the run '
    '(default: $CVISION_NUM_PROCESSES or auto-detected).')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', None, 'With --jax_distributed: this process, 0-based '
    '(default: $CVISION_PROCESS_ID or auto-detected).')
flags.mark_flags_as_required(['config', 'workdir'])
EXIT_PREEMPTED = 143  # 128 + SIGTERM: schedulers read it as "stopped".


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _DISTRIBUTED.value:
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                           _PROCESS_ID.value)
  metric_logging.quiet_library_logs()
  config = _CONFIG.value
  modes = projects.modes(config)
  if _MODE.value not in modes:
    raise app.UsageError(f'--mode={_MODE.value} is not a mode of task '
                         f'{config.task!r}; choose from {sorted(modes)}.')
  logging.info('%s on %d %s device(s), %d process(es).', _MODE.value,
               jax.device_count(), jax.default_backend(), jax.process_count())
  with distributed.exit_at_once_on_error(user_errors.report_in_process):
    result = modes[_MODE.value](config, _WORKDIR.value)
  if isinstance(result, dict) and result.get('preempted'):
    sys.exit(EXIT_PREEMPTED)


if __name__ == '__main__':
  user_errors.run(main)
