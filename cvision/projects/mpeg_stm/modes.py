"""The MPEG model's modes: evaluation beside cost and speed, tables, extraction.

  --mode=eval     top-1, MACs, ACs, energy and videos/s (the core's loop)
  --mode=table    one table of every evaluated run under a folder
  --mode=extract  builds the `mpeg_gops` dataset of `config.data` now
"""
from __future__ import annotations

from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from cvision.core import evaluation
from cvision.core import run_tables
from cvision.projects.mpeg_stm import task as mpeg_task

NAME = mpeg_task.NAME


def evaluate_with_costs(config: ml_collections.ConfigDict,
                        workdir: str) -> dict[str, Any]:
  """`--mode=eval`: top-1, MACs, ACs, energy and videos/s on `eval.split`.

  The core's evaluation loop on the latest checkpoint in `workdir`. Costs
  are per video, averaged over the split (spike rates measured on it);
  videos/s is the loop's rate after its first (compiling) batch, reading
  the data included. Writes `WORKDIR/eval/mpeg_stm_<split>.{json,md}`.
  """
  task = mpeg_task.build_task(config)
  m = config.model

  def row(result: evaluation.Evaluation) -> dict[str, Any]:
    metrics = result.results['']
    num_params = int(sum(np.size(x)
                         for x in jax.tree.leaves(result.run.state.params)))
    out = {
        'num_videos': metrics.count,
        'experiment': config.experiment,
        'modalities': list(m.modalities),
        'accumulated': bool(m.accumulated),
        'params': num_params,
        'videos_per_s': metrics.examples_per_s,
        'device': f'{jax.device_count()} {jax.default_backend()}',
        **metrics.means(),
    }
    table = run_tables.write_row(workdir, NAME, result.split,
                                 dict(out, step=result.step,
                                      split=result.split), format_table)
    logging.info('%s @ step %d on %s:\n%s', NAME, result.step, result.split,
                 table)
    return out

  result = evaluation.evaluate(task, config, workdir, report=row)
  return dict(result, **result['metrics'])


def format_table(rows: list[dict[str, Any]]) -> str:
  """Markdown: experiment, top-1, energy, MACs, ACs, spike rate, speed."""
  lines = ['| experiment | inputs | top-1 (%) | energy / video (uJ) | '
           'MACs (M) | ACs (M) | STM spike rate | videos/s | params |',
           '|---|---|---:|---:|---:|---:|---:|---:|---:|']
  for r in rows:
    inputs = '+'.join(x.upper() for x in r['modalities'])
    if len(r['modalities']) > 1:
      inputs += ' (accumulated)' if r['accumulated'] else ' (raw)'
    lines.append(
        f'| {r.get("experiment") or "-"} | {inputs} | {100 * r["top1"]:.1f} '
        f'| {1e6 * r["energy_j"]:.1f} | {r["macs"] / 1e6:.1f} | '
        f'{r["acs"] / 1e6:.2f} | {r["spike_rate"]:.3f} | '
        f'{r["videos_per_s"]:.0f} | {r["params"] / 1e3:.0f}k |')
  return '\n'.join(lines)


def gather_table(config: ml_collections.ConfigDict,
                 workdir: str) -> dict[str, Any]:
  """`--mode=table`: one table of every `WORKDIR/*/eval/mpeg_stm_<split>.json`.

  Writes `WORKDIR/mpeg_stm_<split>.md` and returns the rows.
  """
  return run_tables.gather(workdir, NAME, config.eval.split, format_table)


def extract_dataset(config: ml_collections.ConfigDict,
                    workdir: str) -> dict[str, Any]:
  """`--mode=extract`: builds the `mpeg_gops` dataset of `config.data` now.

  Training builds it on first use too; `workdir` is not used.
  """
  del workdir
  mpeg_task.ensure_dataset(config.data)
  builder = tfds.builder_from_directory(config.data.dataset_dir)
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  print(f'{config.data.dataset_dir}: {splits}')
  return {'dataset_dir': config.data.dataset_dir, 'splits': splits}


MODES = {'eval': evaluate_with_costs, 'table': gather_table,
         'extract': extract_dataset}
