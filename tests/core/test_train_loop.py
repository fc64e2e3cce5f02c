"""The train loop's host/device pacing and SIGTERM handling, with stand-ins
for the run, so no model is compiled."""
import os
import signal
import types

import ml_collections
import pytest

from cvision.core import evaluation
from cvision.core import trainer


class _Metric(float):
  """A loss value that records when the loop waits for it."""

  def __new__(cls, value, step, log):
    m = super().__new__(cls, value)
    m.step, m.log = step, log
    return m

  def block_until_ready(self):
    self.log.append(('wait', self.step))
    return self


class _Checkpointer:

  def __init__(self):
    self.saved = []

  def save(self, state, force=False):
    self.saved.append((state, force))

  def latest_step(self):
    return self.saved[-1][0] if self.saved else None


def _run(steps, log_every=100):
  train = types.SimpleNamespace(steps=steps, log_every=log_every,
                                checkpoint_every=1000, eval_every=0,
                                eval_batches=0, max_steps_in_flight=1)
  config = types.SimpleNamespace(
      train=train,
      data=ml_collections.ConfigDict({'eval_split': 'validation',
                                      'train_clip_frames': 0}))
  return types.SimpleNamespace(config=config, state=0,
                               checkpointer=_Checkpointer())


def _loop(run, step_fn, log):
  logger = types.SimpleNamespace(
      log_train=lambda step, m: log.append(('log', step)),
      log_eval=lambda step, split, m: log.append(('eval', step)))
  return trainer._train_loop(run, step_fn, None, iter(range(10**6)), logger,
                             start_step=0)


def test_validation_reads_clips_of_the_training_length(monkeypatch):
  calls = []
  monkeypatch.setattr(evaluation, 'evaluate_split',
                      lambda run, fn, split, batches, **k: calls.append(
                          (split, k)) or {'loss': 0.0})
  run = _run(steps=4)
  run.config.train.eval_every = 2
  run.config.data = ml_collections.ConfigDict(
      {'eval_split': 'validation', 'train_clip_frames': 8})
  log = []
  _loop(run, lambda state, batch: (state + 1, {'loss': _Metric(
      1.0, state + 1, log)}), log)
  assert calls and all(c == ('validation', {'clip_frames': 8})
                       for c in calls)
  # Whole videos when training reads whole videos.
  calls.clear()
  run.config.data.train_clip_frames = 0
  run.state = 0
  _loop(run, lambda state, batch: (state + 1, {'loss': _Metric(
      1.0, state + 1, log)}), log)
  assert calls and calls[0] == ('validation', {'clip_frames': 0})


def test_the_host_waits_for_the_previous_step_before_dispatching_more(
    monkeypatch):
  monkeypatch.setattr(evaluation, 'evaluate_split',
                      lambda *a, **k: {'loss': 0.0})
  log = []

  def step_fn(state, batch):
    del batch
    log.append(('dispatch', state + 1))
    return state + 1, {'loss': _Metric(1.0, state + 1, log)}

  result = _loop(_run(steps=6), step_fn, log)
  assert result['step'] == 6 and not result['preempted']
  # Step k is dispatched only once step k-2 is done: one step in flight.
  for k in range(3, 7):
    assert log.index(('wait', k - 2)) < log.index(('dispatch', k))


def test_steps_in_flight_sets_how_far_dispatch_runs_ahead(monkeypatch):
  monkeypatch.setattr(evaluation, 'evaluate_split',
                      lambda *a, **k: {'loss': 0.0})
  for in_flight in (0, 3):
    log = []

    def step_fn(state, batch, log=log):
      del batch
      log.append(('dispatch', state + 1))
      return state + 1, {'loss': _Metric(1.0, state + 1, log)}

    run = _run(steps=8)
    run.config.train.max_steps_in_flight = in_flight
    assert _loop(run, step_fn, log)['step'] == 8
    for k in range(in_flight + 2, 9):
      # 0: step k-1 is done before step k is dispatched (synchronous).
      waited = log.index(('wait', k - in_flight - 1))
      assert waited < log.index(('dispatch', k)), (in_flight, k)
      if in_flight:  # ...and no earlier than needed.
        assert waited > log.index(('dispatch', k - 1)), (in_flight, k)


def test_negative_steps_in_flight_is_refused_naming_the_field():
  run = _run(steps=2)
  run.config.train.max_steps_in_flight = -1
  with pytest.raises(ValueError, match=r'train\.max_steps_in_flight'):
    _loop(run, lambda state, batch: (state + 1, {}), [])


def test_sigterm_stops_after_the_current_step_with_a_forced_checkpoint():
  log = []
  run = _run(steps=50, log_every=10)

  def step_fn(state, batch):
    del batch
    if state + 1 == 3:
      os.kill(os.getpid(), signal.SIGTERM)
    return state + 1, {'loss': _Metric(1.0, state + 1, log)}

  previous = signal.getsignal(signal.SIGTERM)
  result = _loop(run, step_fn, log)
  assert result['preempted'] is True
  assert result['step'] == 3
  assert run.checkpointer.saved == [(3, True)]
  assert signal.getsignal(signal.SIGTERM) is previous  # Handler restored.
