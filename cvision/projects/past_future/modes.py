"""The past-future task's `--mode=eval`: the core's loop, then the table."""
from __future__ import annotations

import os
from typing import Any

from absl import logging
import jax
import ml_collections

from cvision.core import evaluation
from cvision.core import metric_logging
from cvision.projects.codec import frozen
from cvision.projects.past_future import task as pf_task


_COLUMNS = (('accuracy', 'accuracy'),
            ('accuracy_step_balanced', 'step-balanced'),
            ('accuracy_past', 'past'),
            ('accuracy_future', 'future'),
            ('accuracy_first_half', '1st half'),
            ('accuracy_second_half', '2nd half'),
            ('accuracy_near', 'near'),
            ('accuracy_far', 'far'))


def evaluate_past_future(config: ml_collections.ConfigDict,
                         workdir: str) -> dict[str, Any]:
  """`--mode=eval`: the latest checkpoint on `eval.split`, as a table.

  Writes `WORKDIR/eval_<split>.json` (the core's) and
  `WORKDIR/eval/past_future_<split>.md`.
  """
  result = evaluation.evaluate(pf_task.build_task(config), config, workdir)
  m, p = pf_task.check_configs(config)
  metrics = result['metrics']
  metadata = frozen.code_dataset_metadata(config.data.dataset_dir)
  frames, fps = int(metadata.get('frames', 0)), metadata.get('fps', 25)
  minutes = frames / fps / 60
  header = f'| memory | minutes at {fps} fps | chunks | ' + ' | '.join(
      name for _, name in _COLUMNS) + ' |'
  row = (f'| {m.memory} | {minutes:.1f} | {frames // p.chunk_frames} | '
         + ' | '.join(f'{100 * metrics[k]:.1f}' for k, _ in _COLUMNS) + ' |')
  table = '\n'.join([header, '|---' * (len(_COLUMNS) + 3) + '|', row])
  title = (f'Past-future on {config.eval.split} of {config.data.dataset_dir} '
           f'@ step {result["step"]}, {p.eval_queries_per_chunk} queries per '
           f'chunk, accuracy in %; near: at most {p.near_chunks} chunks from '
           'the current step, far: the rest.')
  out_dir = os.path.join(workdir, 'eval')
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f'past_future_{config.eval.split}.md'),
              'w') as f:
      f.write(f'{title}\n\n{table}\n')
  logging.info('%s\n%s', title, table)
  result['table'] = table
  metric_logging.write_json(
      os.path.join(workdir, f'eval_{config.eval.split}.json'), result)
  return result


MODES = {'eval': evaluate_past_future}
