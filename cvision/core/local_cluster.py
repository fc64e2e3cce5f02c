"""K processes of M fake CPU devices on one machine: a multi-host run, locally.

Each process runs the same command, as every host of a TPU pod slice or a
SLURM job does, with JAX's own multi-controller runtime: the environment
tells `cvision.core.distributed.initialize` the coordinator (a free local
port), the process count and this process's id, and XLA gives it M CPU
devices. Collectives between the processes go through gloo.

  result = local_cluster.launch(
      ['python', 'experiments/main.py', '--jax_distributed', ...],
      num_processes=2, devices_per_process=4)
  assert result.exit_codes == [0, 0]

Output lines are prefixed `[p<id>]`. When a process fails the others are
stopped (a collective would otherwise wait for it until JAX's heartbeat
timeout, minutes later).
"""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Mapping, Sequence, TextIO

from cvision.core import distributed

_DEVICE_COUNT_FLAG = '--xla_force_host_platform_device_count'
_POLL_S = 0.05


@dataclasses.dataclass(frozen=True)
class LocalRun:
  """What the processes did.

  Attributes:
    exit_codes: per process id; negative: killed by that signal (the
      launcher stops the others after the first failure or the timeout).
    logs: per process id, its stdout and stderr interleaved.
    timed_out: the launcher stopped them at `timeout`.
  """
  exit_codes: list[int]
  logs: list[str]
  timed_out: bool = False

  @property
  def ok(self) -> bool:
    return not self.timed_out and all(c == 0 for c in self.exit_codes)


def free_port() -> int:
  """A TCP port nothing listens on now (for the coordinator)."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def process_env(process_id: int, num_processes: int, coordinator: str,
                devices_per_process: int,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
  """The environment of process `process_id`: its id, the run, its devices."""
  env = dict(os.environ if base is None else base)
  xla_flags = re.sub(_DEVICE_COUNT_FLAG + r'=\S*', '',
                     env.get('XLA_FLAGS', '')).split()
  env['XLA_FLAGS'] = ' '.join(
      xla_flags + [f'{_DEVICE_COUNT_FLAG}={devices_per_process}'])
  env['JAX_PLATFORMS'] = 'cpu'
  env[distributed.COORDINATOR_ENV] = coordinator
  env[distributed.NUM_PROCESSES_ENV] = str(num_processes)
  env[distributed.PROCESS_ID_ENV] = str(process_id)
  env['PYTHONUNBUFFERED'] = '1'  # Lines arrive as they are printed.
  return env


def _pump(process_id: int, stream, lines: list[str], out: TextIO | None,
          lock: threading.Lock) -> None:
  for line in stream:
    lines.append(line)
    if out is not None:
      with lock:
        out.write(f'[p{process_id}] {line}')
        out.flush()


def _stop(procs: Sequence[subprocess.Popen], grace_s: float) -> None:
  """SIGTERM (a checkpoint, see the trainer), then SIGKILL after `grace_s`."""
  for p in procs:
    if p.poll() is None:
      p.send_signal(signal.SIGTERM)
  deadline = time.monotonic() + grace_s
  for p in procs:
    try:
      p.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      p.kill()
      p.wait()


def launch(command: Sequence[str], *, num_processes: int,
           devices_per_process: int, env: Mapping[str, str] | None = None,
           cwd: str | None = None, timeout: float | None = None,
           output: TextIO | None = sys.stderr,
           grace_s: float = 10.0) -> LocalRun:
  """Runs `command` as `num_processes` processes of one JAX run; waits.

  Args:
    command: the program and its arguments, the same for every process
      (`experiments/main.py` needs `--jax_distributed`).
    num_processes: processes to start (K).
    devices_per_process: fake CPU devices each one gets (M).
    env: base environment (default: this process's).
    cwd: working directory of the processes.
    timeout: seconds before all are stopped (None: no limit).
    output: where prefixed lines go as they come (None: only kept).
    grace_s: seconds between SIGTERM and SIGKILL when stopping them.

  Returns:
    A `LocalRun`; stops every process once one exits non-zero.
  """
  if num_processes < 1 or devices_per_process < 1:
    raise ValueError(f'num_processes={num_processes} and devices_per_process='
                     f'{devices_per_process} must both be >= 1.')
  coordinator = f'127.0.0.1:{free_port()}'
  procs, pumps, logs = [], [], [[] for _ in range(num_processes)]
  lock = threading.Lock()
  try:
    for i in range(num_processes):
      procs.append(subprocess.Popen(
          list(command), cwd=cwd, text=True, stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
          env=process_env(i, num_processes, coordinator, devices_per_process,
                          env)))
      pumps.append(threading.Thread(
          target=_pump, args=(i, procs[i].stdout, logs[i], output, lock),
          daemon=True))
      pumps[-1].start()
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    while any(p.poll() is None for p in procs):
      if any(p.poll() not in (None, 0) for p in procs):
        break
      if deadline is not None and time.monotonic() > deadline:
        timed_out = True
        break
      time.sleep(_POLL_S)
  finally:
    # Also on KeyboardInterrupt: no process outlives the launcher.
    _stop(procs, grace_s)
  for t in pumps:
    t.join(timeout=5)
  return LocalRun([p.returncode for p in procs], [''.join(l) for l in logs],
                  timed_out)
