"""Progress on the console and metrics as TensorBoard summaries.

Summaries go through tensorboardX, a maintained writer that needs no
TensorFlow; only process 0 writes.
"""
from __future__ import annotations

import json
import logging as std_logging
import os
import time
from typing import Mapping

import jax
import numpy as np
from absl import logging


class ProgressLogger:
  """Logs step, loss, steps/s and ETA; writes scalars to TensorBoard."""

  def __init__(self, workdir: str, total_steps: int, start_step: int = 0):
    self._total = total_steps
    self._last_time = time.time()
    self._last_step = start_step
    self._start_step = start_step
    self._start_time = self._last_time
    self._writer = None
    self._jsonl = None
    if jax.process_index() == 0:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._writer = SummaryWriter(os.path.join(workdir, 'tensorboard'))
      # The same scalars as JSON lines: easy to read back in a notebook.
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')

  def write_scalars(self, step: int, scalars: Mapping[str, float],
                    prefix: str = 'train') -> None:
    if self._writer is None:
      return
    for name, value in scalars.items():
      self._writer.add_scalar(f'{prefix}/{name}', float(value), step)
    self._writer.flush()
    self._jsonl.write(json.dumps(
        {'step': step, 'split': prefix,
         **{k: float(v) for k, v in scalars.items()}}) + '\n')
    self._jsonl.flush()

  def log_train(self, step: int, metrics: Mapping[str, float]) -> float:
    """Logs a line of progress; returns the measured steps/s."""
    now = time.time()
    steps_per_sec = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_time, self._last_step = now, step
    remaining = (self._total - step) / max(steps_per_sec, 1e-9)
    shown = ', '.join(f'{k}={float(v):.4g}' for k, v in sorted(metrics.items()))
    logging.info('step %d/%d  %s  %.2f steps/s  ETA %s', step, self._total,
                 shown, steps_per_sec, _format_seconds(remaining))
    self.write_scalars(step, {**metrics, 'steps_per_sec': steps_per_sec})
    return steps_per_sec

  def log_eval(self, step: int, split: str,
               metrics: Mapping[str, float]) -> None:
    shown = ', '.join(f'{k}={float(v):.4g}' for k, v in sorted(metrics.items()))
    logging.info('eval %s @ step %d: %s', split, step, shown)
    self.write_scalars(step, metrics, prefix=split)

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._jsonl.close()


# Warnings that state what was asked for, not a problem: Orbax warns on every
# read-only CheckpointManager, which is how every frozen model is loaded.
_EXPECTED_WARNINGS = ('Given directory is read only',)


class _DropLibraryInfo(std_logging.Filter):
  """Drops INFO, DEBUG and expected warnings logged by the named libraries."""

  def __init__(self, path_parts):
    super().__init__()
    self._parts = tuple(path_parts)

  def filter(self, record):
    if not any(part in record.pathname for part in self._parts):
      return True
    if record.levelno >= std_logging.ERROR:
      return True
    if record.levelno >= std_logging.WARNING:
      return not str(record.msg).startswith(_EXPECTED_WARNINGS)
    return False


def quiet_library_logs(libraries=('orbax', 'tensorstore', 'grain',
                                  'tensorflow_datasets')) -> None:
  """Keeps the console for our progress: libraries log only warnings up.

  Orbax logs through absl's logger like we do, so it is filtered by the
  source file's path rather than by logger name.
  """
  parts = tuple(f'/{name}/' for name in libraries)
  std_logging.getLogger('absl').addFilter(_DropLibraryInfo(parts))


def _format_seconds(seconds: float) -> str:
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f'{hours}:{minutes:02d}:{seconds:02d}'


def write_json(path: str, payload: Mapping) -> None:
  """Writes JSON atomically (temporary file, then rename); process 0 only."""
  if jax.process_index() != 0:
    return
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(payload, f, indent=2, sort_keys=True, default=_to_builtin)
  os.replace(tmp, path)


def _to_builtin(x):
  if isinstance(x, (np.generic, np.ndarray)):
    return x.tolist()
  return str(x)
