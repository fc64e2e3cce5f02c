"""benchmarks/rounds.py: interleaving, medians, compiled figures."""
import os
import sys

import jax
import jax.numpy as jnp
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
from benchmarks import rounds  # pylint: disable=g-import-not-at-top


def test_each_round_calls_every_candidate_once_in_turn():
  order = []
  timings = rounds.interleaved(
      {'a': lambda: order.append('a'), 'b': lambda: order.append('b')},
      rounds=3, warmup=1)
  # One warm-up call each, then a, b alternating: load hits both alike.
  assert order == ['a', 'b'] + ['a', 'b'] * 3
  assert set(timings) == {'a', 'b'}
  assert all(len(t.seconds) == 3 for t in timings.values())


def test_median_and_spread():
  timing = rounds.Timing((3.0, 1.0, 2.0, 10.0))
  assert timing.median == 2.5
  assert timing.spread == '1-10'


def test_zero_rounds_is_an_error():
  with pytest.raises(ValueError, match='rounds must be >= 1, got 0'):
    rounds.interleaved({'a': lambda: None}, rounds=0)


def test_compiled_figures_of_a_matmul():
  x = jnp.ones((64, 64), jnp.float32)
  program = rounds.compiled(jax.jit(lambda a: a @ a), x)
  # 2 * 64**3 multiply-adds; arguments + output alone are 2 * 16 KiB.
  assert rounds.gflop(program) == pytest.approx(2 * 64**3 / 1e9, rel=0.05)
  assert rounds.memory_mib(program) >= 2 * 64 * 64 * 4 / 2**20


def test_load_prints_three_averages():
  assert len(rounds.load().split('/')) == 3
