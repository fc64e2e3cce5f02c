"""Interleaved timing rounds and compiled-program figures for benchmarks.

On a shared machine the load changes while a benchmark runs, so a ratio of
two figures timed minutes apart says little. `interleaved` calls every
candidate once per round, in turn, for several rounds; a change of load hits
all candidates alike, and the median over rounds (with the spread, min to
max) is what the tables print, beside the load average read at the start and
end (`load`).

Compiled figures come from the program XLA already built for the call:
`memory_mib` (arguments + outputs + temporaries) and `gflop` (XLA's count of
floating-point operations), which do not depend on the load.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any, Callable, Mapping, NamedTuple

import jax


class Timing(NamedTuple):
  """Seconds of each round of one candidate."""
  seconds: tuple[float, ...]

  @property
  def median(self) -> float:
    return statistics.median(self.seconds)

  @property
  def spread(self) -> str:
    return f'{min(self.seconds):.3g}-{max(self.seconds):.3g}'


def load() -> str:
  """The 1, 5 and 15 minute load averages, as the tables print them."""
  return '/'.join(f'{x:.2f}' for x in os.getloadavg())


def interleaved(calls: Mapping[str, Callable[[], Any]], rounds: int,
                warmup: int = 1) -> dict[str, Timing]:
  """Times each call once per round, in turn, `rounds` times.

  Args:
    calls: name -> a call with no arguments; its result is waited for with
      `jax.block_until_ready`, so device work is counted.
    rounds: timed rounds (>= 1).
    warmup: untimed calls of each first (compilation, caches).

  Returns:
    name -> `Timing` of the `rounds` calls.
  """
  if rounds < 1:
    raise ValueError(f'rounds must be >= 1, got {rounds}.')
  for call in calls.values():
    for _ in range(warmup):
      jax.block_until_ready(call())
  seconds = {name: [] for name in calls}
  for _ in range(rounds):
    for name, call in calls.items():
      start = time.perf_counter()
      jax.block_until_ready(call())
      seconds[name].append(time.perf_counter() - start)
  return {name: Timing(tuple(s)) for name, s in seconds.items()}


def compiled(jitted, *args, **kwargs):
  """The XLA executable of a jitted function for these arguments."""
  return jitted.lower(*args, **kwargs).compile()


def memory_mib(executable) -> float:
  """Arguments + outputs + temporaries of a compiled program, in MiB."""
  analysis = executable.memory_analysis()
  if analysis is None:
    return float('nan')
  return (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
          + analysis.temp_size_in_bytes) / 2**20


def gflop(executable) -> float:
  """XLA's count of floating-point operations of one call, in GFLOP."""
  cost = executable.cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per program.
    cost = cost[0] if cost else {}
  return float((cost or {}).get('flops', float('nan'))) / 1e9


def loop_steps_per_s(workdir: str) -> float:
  """Median steps/s of a run's log intervals after the first (compiles)."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  rates = [r['steps_per_sec'] for r in rows if r['split'] == 'train'][1:]
  return statistics.median(rates)
