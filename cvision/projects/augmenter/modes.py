"""The augmenter's modes: `--mode=eval`, the quality report of
`cvision.projects.augmenter.task`; `--mode=import`, the release's network."""
from __future__ import annotations

import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cvision.core import evaluation
from cvision.core import metric_logging
from cvision.projects.augmenter import pixel_transforms as pt
from cvision.projects.augmenter import report as report_lib
from cvision.projects.augmenter import task as augmenter_task
from cvision.projects.augmenter.release import config as release_config
from cvision.projects.augmenter.release import importer as release_importer
from data_pipelines import sources

VIDEO_KEY = augmenter_task.VIDEO_KEY


def _describe(family: str, c: ml_collections.ConfigDict) -> str:
  """The evaluated parameter ranges, in words."""
  return {
      'crop': f'box side {c.crop_min_scale:g}-{c.crop_max_scale:g} of the '
              'frame, resized back',
      'flip': 'every clip flipped',
      'brightness': f'delta in ±{c.brightness_max_delta:g}',
      'saturation': f'factor in [{c.saturation_min_factor:g}, '
                    f'{c.saturation_max_factor:g}]',
      'rotation': f'angle in ±{c.rotation_max_degrees:g}°, '
                  f'{c.rotation_fill} corners',
  }[family]


# Rows of the PNG grids: batch entry of `compare` -> label.
_GRID_ROWS = {'original': 'X', 'target': 'A(X; p)',
              'learned': 'learned', 'plain': 'plain recon.'}
_CODE_SPACE_NAMES = {'crop': 'NN code crop', 'flip': 'code-grid flip',
                     'brightness': '', 'saturation': '', 'rotation': ''}


def _save_grids(augmenter: augmenter_task.Augmenter, params, families,
                videos: np.ndarray, out_dir: str, grid_videos: int
                ) -> dict[str, str]:
  """`<family>_grid.png` of the first videos, for each family."""
  grids = {}
  for of_family in families:
    @jax.jit
    def decoded(params, raw, of_family=of_family):
      video = raw.astype(jnp.float32) / 255.0
      return augmenter.compare(params, video,
                               augmenter.eval_params(raw, of_family),
                               of_family)
    out = jax.device_get(decoded(params, videos))
    names = dict(_GRID_ROWS, code_space=_CODE_SPACE_NAMES[of_family])
    grids[of_family] = report_lib.save_rows_grid(
        os.path.join(out_dir, f'{of_family}_grid.png'),
        [(label, out[k]) for k, label in names.items() if k in out],
        max_videos=grid_videos)
  return grids


def quality_report(config: ml_collections.ConfigDict,
                   workdir: str) -> dict[str, Any]:
  """`--mode=eval`: per-family SSIM of learned against plain, and grids.

  Through the core's evaluation loop, one variant per family the network
  does: the first `eval.num_videos` videos of `eval.split` (held out from
  training; 0 = all of it). Writes `WORKDIR/eval/augmenter_<split>.json`,
  `.md` and `<family>_grid.png` (per video: original, A(X; p), learned,
  plain reconstruction, and the code-grid operation for crops and flips).
  An imported release network is evaluated as it is, with any preset.
  """
  config = release_config.run_config(config, workdir)
  augmenter = augmenter_task.build(config)
  family, split = augmenter.family, config.eval.split
  families = pt.SINGLE_FAMILIES if family == 'all' else (family,)
  num_videos = config.eval.num_videos
  evaluated = f'{split}[:{num_videos}]' if num_videos else split
  out_dir = os.path.join(workdir, 'eval')

  def report(result: evaluation.Evaluation) -> dict[str, Any]:
    rows = []
    for of_family in families:
      metrics = result.results[of_family]
      row = {'family': of_family,
             'what': _describe(of_family, augmenter.augment_config),
             'num_videos': metrics.count}
      for k in metrics.mean:
        row[k], row[k + '_std'] = metrics.mean[k], metrics.std[k]
      rows.append(row)
    source = sources.load_source(config.data, evaluated)
    first = np.stack([source[i][VIDEO_KEY] for i in range(
        min(config.data.batch_size, len(source)))])
    grids = _save_grids(augmenter, result.run.state.params, families, first,
                        out_dir, config.eval.grid_videos)
    codec = augmenter.codec
    table = report_lib.format_table(rows)
    title = (f'Augmenter ({family}) @ step {result.step} on '
             f'{rows[0]["num_videos"]} {split} videos; codec {codec.workdir} '
             f'@ step {codec.step}. SSIM (mean ± std over videos) and PSNR '
             '(dB) against the pixel augmentation A(X; p). learned: '
             'decode(a(encode(X), p)); plain: decode(encode(X)); '
             'decode+pixel aug.: A(decode(encode(X)); p); code-grid op: '
             'nearest-neighbour crop / mirror of the code grid, decoded.')
    out = {'family': family,
           'codec': {'workdir': codec.workdir, 'step': codec.step},
           'rows': rows, 'table': table, 'grids': grids}
    metric_logging.write_json(
        os.path.join(out_dir, f'augmenter_{split}.json'),
        dict(out, step=result.step, split=split))
    if jax.process_index() == 0:
      with open(os.path.join(out_dir, f'augmenter_{split}.md'), 'w') as f:
        f.write(f'{title}\n\n{table}\n')
    logging.info('%s\n%s', title, table)
    return out

  result = evaluation.evaluate(
      augmenter.task, config, workdir, split=evaluated,
      variants={f: augmenter.evaluate_family(f) for f in families},
      report=report)
  result['split'] = split
  return result


def import_release(config: ml_collections.ConfigDict,
                   workdir: str) -> dict[str, Any]:
  """`--mode=import`: the augmentation network of `config.release.pickle`
  (the paper's released flip) becomes an ordinary augmenter run in
  `workdir`, through the codec imported from the same file
  (`config.codec.workdir`; docs/release_codecs.md)."""
  if not config.release.pickle:
    raise ValueError('--mode=import needs the release file: pass '
                     '--config.release.pickle=<a compressed_vision .pkl>.')
  saved = release_importer.import_release_augmenter(config.release.pickle,
                                                    workdir, config)
  logging.info('Imported the %s network of %s into %s.', saved.augment.family,
               config.release.pickle, workdir)
  return {'workdir': workdir, 'family': saved.augment.family,
          'model': saved.model.to_dict()}


MODES = {'eval': quality_report, 'import': import_release}
