"""Collaborative memory's modes: evaluation beside the memory's cost, tables.

  --mode=eval   top-1 and NLL on `eval.split` (the core's loop) and the
                XLA-counted FLOPs of classifying a video with and without
                the memory; one table row per run
  --mode=table  one table of every evaluated run under a folder
"""
from __future__ import annotations

import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cvision.core import evaluation
from cvision.core import run_tables
from cvision.projects.collab_memory import task as cm_task
from data_pipelines import sources

NAME = cm_task.NAME
VIDEO_KEY = cm_task.VIDEO_KEY


def inference_flops(config: ml_collections.ConfigDict,
                    video_shape: tuple[int, ...],
                    video_dtype: Any = jnp.uint8) -> dict[str, float]:
  """XLA-counted FLOPs of classifying one video, with and without memory.

  'model': the whole inference (memory clips, test clips, memory, head);
  'backbone': the backbone alone on the test clips, i.e. what multi-clip
  testing without memory costs. Shapes only: no weights are read.
  `video_shape` and `video_dtype` are one example's input entry (frames, or
  codes).
  """
  model = cm_task.build(config)
  video = jax.ShapeDtypeStruct((1, *video_shape), video_dtype)
  variables = jax.eval_shape(model.task.init, jax.random.key(0),
                             {model.input_key: video})
  params = variables['params']
  collections = {k: v for k, v in variables.items() if k != 'params'}
  cm = model.cm
  num_clips = int(config.eval.num_clips)

  def backbone_only(params, collections, video):
    clips = cm_task.gather_clips(video, cm_task.uniform_clip_starts(
        video.shape[1], num_clips, model.clip_length), model.clip_length)
    clips = model.network_input(params, clips)
    return model.backbone_features(params, collections, clips, False,
                                   None)[0]

  return {
      'model': _hlo_flops(model.video_scores, params, collections,
                          video),
      'backbone': _hlo_flops(backbone_only, params, collections, video),
  }


def _hlo_flops(fn, *args) -> float:
  # The HLO cost model before compilation: the same op counts as after
  # XLA's passes for convs and dots, without paying for a compile.
  analysis = jax.jit(fn).lower(*args).cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis['flops'])


def evaluate_with_flops(config: ml_collections.ConfigDict,
                        workdir: str) -> dict[str, Any]:
  """`--mode=eval`: top-1 and NLL on `eval.split`, and FLOPs per video.

  Writes `WORKDIR/eval/collab_memory_<split>.{json,md}` (one table row).
  """
  generic = evaluation.evaluate(cm_task.build_task(config), config, workdir)
  split = config.eval.split
  input_key = cm_task.CODES_KEY if config.input == 'codes' else VIDEO_KEY
  example = np.asarray(sources.load_source(config.data, split)[0][input_key])
  flops = inference_flops(config, example.shape, example.dtype)
  cm = cm_task.check_cm_config(config.cm)
  result = {
      'experiment': os.path.basename(os.path.normpath(workdir)),
      'step': generic['step'], 'split': split, 'input': config.input,
      'eval_clips': int(config.eval.num_clips),
      'num_clips': cm.num_clips, 'memory': cm.memory,
      'infusion': cm.infusion if cm.memory != 'none' else '-',
      'freeze_backbone': cm.freeze_backbone,
      # Recorded by the training run, whatever flags evaluation is given.
      'warm_start': os.path.exists(os.path.join(workdir, 'warm_start.json')),
      'top1': generic['metrics']['top1'], 'nll': generic['metrics']['nll'],
      'gflops': flops['model'] / 1e9,
      'backbone_gflops': flops['backbone'] / 1e9,
  }
  table = run_tables.write_row(workdir, NAME, split, result, format_table)
  logging.info('%s @ step %d on %s:\n%s', NAME, result['step'], split, table)
  return result


def format_table(rows: list[dict[str, Any]]) -> str:
  """Markdown: the ablation row, top-1, FLOPs against the backbone alone."""
  lines = ['| experiment | input | train clips | memory | infusion | '
           'backbone | top-1 (%) | GFLOPs / video | extra vs backbone |',
           '|---|---|---:|---|---|---|---:|---:|---:|']
  for r in rows:
    backbone = ('frozen' if r['freeze_backbone'] else
                'stage-wise' if r.get('warm_start') else 'trained')
    extra = 100 * (r['gflops'] / r['backbone_gflops'] - 1)
    # Rows from before codes were an input are RGB runs.
    lines.append(
        f"| {r['experiment']} | {r.get('input', 'rgb')} | "
        f"{r['num_clips']} | {r['memory']} | "
        f"{r['infusion']} | {backbone} | {100 * r['top1']:.1f} | "
        f"{r['gflops']:.3f} | {extra:+.1f}% |")
  return '\n'.join(lines)


def gather_table(config: ml_collections.ConfigDict,
                 workdir: str) -> dict[str, Any]:
  """`--mode=table`: every `WORKDIR/*/eval/collab_memory_<split>.json`.

  Writes `WORKDIR/collab_memory_<split>.md` and returns the rows.
  """
  return run_tables.gather(workdir, NAME, config.eval.split, format_table)


MODES = {'eval': evaluate_with_flops, 'table': gather_table}
