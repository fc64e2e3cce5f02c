"""Joining a multi-process (multi-host) run: `jax.distributed.initialize`.

Every process of a run calls `initialize` before anything touches a device.
Where the three settings come from, first found wins:

1. the arguments (`experiments/main.py`'s `--coordinator_address`,
   `--num_processes`, `--process_id`);
2. the environment `cvision.core.local_cluster` sets for the processes it
   starts on one machine (`CVISION_COORDINATOR_ADDRESS`,
   `CVISION_NUM_PROCESSES`, `CVISION_PROCESS_ID`);
3. JAX's own detection of TPU pod slices, SLURM, Open MPI and Kubernetes
   (all three left None).
"""
from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import Callable

import jax

COORDINATOR_ENV = 'CVISION_COORDINATOR_ADDRESS'
NUM_PROCESSES_ENV = 'CVISION_NUM_PROCESSES'
PROCESS_ID_ENV = 'CVISION_PROCESS_ID'


def _from_env(name: str) -> int | None:
  value = os.environ.get(name)
  if value is None or value == '':
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f'${name}={value!r} is not an integer.') from None


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None) -> None:
  """Joins this process to the run (see the module docstring)."""
  coordinator_address = (coordinator_address
                         or os.environ.get(COORDINATOR_ENV) or None)
  if num_processes is None:
    num_processes = _from_env(NUM_PROCESSES_ENV)
  if process_id is None:
    process_id = _from_env(PROCESS_ID_ENV)
  # Processes of CPU devices reduce across each other through gloo (JAX's
  # default today; older versions had none and failed at the first
  # cross-process collective). It changes nothing on GPUs and TPUs.
  if not jax.config.jax_cpu_collectives_implementation:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)


def _print_traceback(error: BaseException) -> None:
  traceback.print_exception(error)


@contextlib.contextmanager
def exit_at_once_on_error(
    report: Callable[[BaseException], None] = _print_traceback):
  """In a multi-process run, an error ends this process now, exit code 1.

  A Python exit waits in `jax.distributed.shutdown` for every other process
  (minutes), and they wait in their next collective for this one: a launcher
  or scheduler would see no exit code until the heartbeat timeout. Exiting
  at once lets it stop the run.

  Args:
    report: prints the error before the exit (default: its traceback; the
      binary passes its one-line user messages). With one process the error
      is raised as usual and `report` is not called.
  """
  try:
    yield
  except (Exception, KeyboardInterrupt) as error:  # pylint: disable=broad-except
    if jax.process_count() == 1:
      raise
    report(error)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)  # pylint: disable=protected-access
