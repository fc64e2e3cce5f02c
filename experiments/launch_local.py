r"""Runs a command as K processes of M CPU devices each: multi-host, locally.

  python experiments/launch_local.py --num_processes=2 --devices_per_process=4 \
      -- python experiments/main.py --jax_distributed \
      --config=experiments/configs/autoencoder.py:tiny --workdir=/tmp/ae2x4

Every process gets the coordinator (a free local port), the process count
and its id through the environment (`cvision.core.local_cluster`); lines are
prefixed `[p<id>]`. Exits with the first non-zero exit code (a process that
failed, or that the launcher stopped), else 0.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from cvision.core import local_cluster

_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 2, 'Processes (K).')
_DEVICES = flags.DEFINE_integer('devices_per_process', 4,
                                'Fake CPU devices per process (M).')
_TIMEOUT = flags.DEFINE_float('timeout', None, 'Seconds before all are '
                              'stopped (default: none).')


def main(argv):
  command = argv[1:]
  if not command:
    raise app.UsageError('Give the command after `--`, e.g. `-- python '
                         'experiments/main.py --jax_distributed ...`.')
  result = local_cluster.launch(command, num_processes=_NUM_PROCESSES.value,
                                devices_per_process=_DEVICES.value,
                                timeout=_TIMEOUT.value)
  failed = [c for c in result.exit_codes if c != 0]
  if result.timed_out:
    print(f'Stopped after --timeout={_TIMEOUT.value} s.', file=sys.stderr)
  print(f'Exit codes: {result.exit_codes}', file=sys.stderr)
  # A signal's negative code becomes the shell's 128 + signal.
  sys.exit(0 if not failed else (failed[0] if failed[0] > 0
                                 else 128 - failed[0]))


if __name__ == '__main__':
  app.run(main)
