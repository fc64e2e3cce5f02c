"""S3D's `--mode=eval`: accuracy over 1, 2, 4, ... clips per video (Tables 2-4).

The core's evaluation loop does the work (`evaluation.multi_clip`, one
variant per entry of `eval.num_clips`); this writes the table.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from cvision.core import evaluation
from cvision.core import metric_logging
from cvision.projects.codec import frozen
from cvision.projects.s3d import task as s3d_task
from data_pipelines import sources

_COLUMNS = {'top1': 'top-1', 'top5': 'top-5',
            'frame_accuracy': 'frame top-1', 'frame_top5': 'frame top-5'}


def _format_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                  with_std: bool) -> str:
  lines = ['| clips | ' + ' | '.join(_COLUMNS[k] for k in metrics) + ' |',
           '|---' * (len(metrics) + 1) + '|']
  for r in rows:
    cells = [f'{100 * r[k]:.1f} ± {100 * r[k + "_std"]:.1f}' if with_std
             else f'{100 * r[k]:.1f}' for k in metrics]
    lines.append(f'| {r["num_clips"]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def _class_names(config: ml_collections.ConfigDict, label_key: str,
                 num_classes: int) -> list[str]:
  """The dataset's names for its classes, or their ids if it has none."""
  feature = sources.load_builder(config.data).info.features[label_key]
  names = list(getattr(feature, 'names', None) or [])
  return names if len(names) == num_classes else [
      str(i) for i in range(num_classes)]


def _format_confusion(counts: np.ndarray, names: Sequence[str]) -> str:
  lines = ['| true \\ predicted | ' + ' | '.join(names) + ' |',
           '|---' * (len(names) + 1) + '|']
  for name, row in zip(names, counts):
    lines.append(f'| {name} | ' + ' | '.join(str(int(v)) for v in row) + ' |')
  return '\n'.join(lines)


def _row(num_clips: int, metrics: evaluation.SplitMetrics) -> dict[str, Any]:
  row = {'num_clips': int(num_clips), 'num_videos': metrics.count}
  for k in sorted(metrics.mean):
    if k == 'confusion':
      # Means of one-hot (true, predicted) pairs, back to counts.
      row[k] = np.rint(np.asarray(metrics.mean[k]) * metrics.count).astype(
          int).tolist()
    else:
      row[k], row[k + '_std'] = metrics.mean[k], metrics.std[k]
  return row


def evaluate_clips(config: ml_collections.ConfigDict,
                   workdir: str) -> dict[str, Any]:
  """`--mode=eval`: accuracy over `eval.num_clips` temporal clips per video.

  Restores the latest checkpoint in `workdir` and evaluates `eval.split`
  once per entry of `eval.num_clips`, averaging logits over that many
  uniformly spaced clips of `eval.clip_frames` frames (0: the training clip
  length `data.train_clip_frames`, or whole videos). Reports top-1 / top-5
  (video head, with the confusion matrix of the first entry) or per-frame
  accuracy, mean and std over videos (frame head, as the paper's Table 3),
  in percent in the table and as fractions in JSON.

  Writes `WORKDIR/eval/s3d_<split>.json` and `WORKDIR/eval/s3d_<split>.md`.
  """
  if not config.eval.num_clips:
    raise ValueError('config.eval.num_clips is empty; e.g. (1, 2, 4).')
  model = s3d_task.build(config)
  split = config.eval.split
  source = sources.load_source(config.data, split)
  num_frames = int(np.shape(source[0][model.input_key])[0])
  clip_frames = (config.eval.clip_frames or config.data.train_clip_frames
                 or num_frames)
  variants = {str(n): evaluation.multi_clip(model.task, n, clip_frames)
              for n in config.eval.num_clips}

  def report(result: evaluation.Evaluation) -> dict[str, Any]:
    rows = [_row(n, result.results[str(n)]) for n in config.eval.num_clips]
    frame_head = model.frame_head
    shown = ['frame_accuracy', 'frame_top5'] if frame_head else ['top1',
                                                                 'top5']
    table = _format_table(rows, shown, with_std=frame_head)
    if 'confusion' in rows[0]:
      names = _class_names(config, model.label_key,
                           len(rows[0]['confusion']))
      table += (f'\n\nConfusion matrix, {rows[0]["num_clips"]} clip(s): '
                'rows are the true class, columns the top-1 class.\n\n'
                + _format_confusion(np.asarray(rows[0]['confusion']), names))
    head = 'frame' if frame_head else 'video'
    title = (f'S3D ({config.input}, {head} head) on {split} @ step '
             f'{result.step}: {rows[0]["num_videos"]} videos, clips of '
             f'{clip_frames} of {num_frames} frames, accuracy in %'
             + (' (mean ± std over videos).' if frame_head else '.'))
    out = {'input': config.input, 'head': head, 'clip_frames': clip_frames,
           'num_frames': num_frames, 'num_videos': rows[0]['num_videos'],
           'rows': rows, 'table': table}
    augmentation = model.augmentation
    if augmentation.active:
      out['code_augment'] = {
          'train': augmentation.train_mode, 'eval': augmentation.eval_mode,
          'eval_views': augmentation.eval_views,
          'augmenter': (augmentation.augmenter.workdir
                        if augmentation.augmenter else '')}
      title += (f' Code augmentation: train {augmentation.train_mode}, test '
                f'{augmentation.eval_mode} x{augmentation.eval_views} views.')
    if model.codec is not None:
      cr = frozen.code_dataset_metadata(config.data.dataset_dir).get(
          'compression_rate')
      out['codec'] = {'workdir': model.codec.workdir,
                      'step': model.codec.step, 'compression_rate': cr}
      title += f' Codes of {model.codec.workdir} @ step {model.codec.step}' + (
          f', CR {cr:.1f}.' if cr else '.')
    out_dir = os.path.join(workdir, 'eval')
    metric_logging.write_json(os.path.join(out_dir, f's3d_{split}.json'),
                              dict(out, step=result.step, split=split))
    if jax.process_index() == 0:
      with open(os.path.join(out_dir, f's3d_{split}.md'), 'w') as f:
        f.write(f'{title}\n\n{table}\n')
    logging.info('%s\n%s', title, table)
    return out

  return evaluation.evaluate(model.task, config, workdir, variants=variants,
                             report=report)


MODES = {'eval': evaluate_clips}
