"""`--mode=table`: one table of every evaluated run under a folder.

Tasks with an ablation grid write one JSON row per run at
`RUN/eval/<name>_<split>.json`; this gathers those rows from
`WORKDIR/*/eval/` and writes the task's table as `WORKDIR/<name>_<split>.md`.
"""
from __future__ import annotations

import glob
import json
import os
from typing import Any, Callable

import jax

from cvision.core import metric_logging


def gather(workdir: str, name: str, split: str,
           format_table: Callable[[list[dict[str, Any]]], str]
           ) -> dict[str, Any]:
  """Reads every run's row, writes and prints the table; returns both.

  A row without an 'experiment' is named after its run directory.

  Raises:
    FileNotFoundError: no run under `workdir` has been evaluated.
  """
  paths = sorted(glob.glob(os.path.join(workdir, '*', 'eval',
                                        f'{name}_{split}.json')))
  if not paths:
    raise FileNotFoundError(
        f'No {name}_{split}.json under {workdir}/*/eval: run --mode=eval in '
        f'each run directory under {workdir} first.')
  rows = []
  for path in paths:
    with open(path) as f:
      row = json.load(f)
    row['experiment'] = row.get('experiment') or os.path.basename(
        os.path.dirname(os.path.dirname(path)))
    rows.append(row)
  table = format_table(rows)
  with open(os.path.join(workdir, f'{name}_{split}.md'), 'w') as f:
    f.write(table + '\n')
  print(table)
  return {'rows': rows, 'table': table}


def write_row(workdir: str, name: str, split: str, row: dict[str, Any],
              format_table: Callable[[list[dict[str, Any]]], str]) -> str:
  """One run's row: `RUN/eval/<name>_<split>.json` and its one-row `.md`.

  Returns the table (process 0 writes; every process returns it).
  """
  out_dir = os.path.join(workdir, 'eval')
  metric_logging.write_json(os.path.join(out_dir, f'{name}_{split}.json'), row)
  table = format_table([row])
  if jax.process_index() == 0:
    with open(os.path.join(out_dir, f'{name}_{split}.md'), 'w') as f:
      f.write(table + '\n')
  return table
