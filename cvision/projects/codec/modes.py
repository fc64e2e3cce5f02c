"""The codec's binary modes: encode a dataset, decode codes, evaluate.

  --mode=encode  the dataset in `config.data` -> a TFDS dataset of codes
  --mode=decode  codes -> PNG grid (original / reconstruction) and mp4s
  --mode=eval    PSNR / SSIM / MAE on held-out videos, against JPEG and MPEG
                 at measured compression rates; Table 1 and an RD plot
  --mode=probe   linear probes: how directly the codes show where pixels
                 move (`cvision.projects.codec.probe`; static-background videos)
Each reads the codec from the latest checkpoint in `--workdir`
(`frozen.load_frozen_codec`, the loader every user of a codec shares).
"""
from __future__ import annotations

import copy
import json
import os
import time
from typing import Any

from absl import logging
import ml_collections
import numpy as np

from cvision.core import evaluation
from cvision.core import metric_logging
from cvision.core import trainer
from cvision.projects.codec import baselines
from cvision.projects.codec import code_dataset
from cvision.projects.codec import compression_rate as cr_lib
from cvision.projects.codec import entropy_coding
from cvision.projects.codec import frozen
from cvision.projects.codec.release import config as release_config
from cvision.projects.codec.release import importer as release_importer
from cvision.projects.codec import probe
from cvision.projects.codec import report
from cvision.projects.codec import task as codec_task
from data_pipelines import sources
from data_pipelines import video_io

# Written beside a code dataset by --mode=encode: sizes, rates, seconds.
ENCODE_SUMMARY = 'encode_summary.json'


def run_config(config: ml_collections.ConfigDict, workdir: str
               ) -> ml_collections.ConfigDict:
  """`config` with the model of the run in `workdir` where it must be so.

  An imported release codec (docs/release_codecs.md) has the release's
  architecture, which no preset describes: its saved model fields are the
  model. Any other run is checked against `config.model` when loaded.
  """
  if not os.path.isfile(os.path.join(workdir, 'config.json')):
    return config
  saved = frozen.saved_model_config(workdir)
  if not release_config.is_release(saved):
    return config
  config = copy.deepcopy(config)
  with config.unlocked():
    config.model = saved
  return config


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """`--mode=train`, with an imported release codec's own network.

  Resuming an imported run (`--workdir` of `--mode=import`) or fine-tuning
  from one (`train.init_from.workdir`) trains the release's architecture,
  whichever preset `--config` names: the imported model fields replace the
  preset's, as in every other mode. Any other run trains `config.model`.
  """
  config = run_config(config, workdir)
  source = config.train.init_from.workdir
  if source and not os.path.isfile(os.path.join(workdir, 'config.json')):
    with_source_model = run_config(config, source)
    if with_source_model is not config:
      logging.info('Fine-tuning the release codec imported in %s.', source)
      config = with_source_model
  return trainer.train_and_evaluate(codec_task.build_task(config), config,
                                    workdir)


def load_codec(config: ml_collections.ConfigDict, workdir: str
               ) -> frozen.FrozenCodec:
  """The codec run in `workdir`, checked against this mode's config."""
  return frozen.load_frozen_codec(
      workdir, with_params=True,
      model_config=run_config(config, workdir).model)


def default_codes_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  if config.encode.output_dir:
    return config.encode.output_dir
  name = config.data.dataset_dir or config.data.name
  variant = config.data.builder_kwargs.get('config', '')
  label = os.path.basename(os.path.normpath(name)) + (
      f'_{variant}' if variant and not config.data.dataset_dir else '')
  return os.path.join(workdir, 'codes', label)


def _previous_encode_seconds(output_dir: str) -> float:
  path = os.path.join(output_dir, ENCODE_SUMMARY)
  if not os.path.isfile(path):
    return 0.0
  with open(path) as f:
    return float(json.load(f).get('encode_seconds', 0.0))


def encode(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """`--mode=encode`: writes `config.data` as codes (resumable)."""
  config = run_config(config, workdir)
  codec = load_codec(config, workdir)
  builder = sources.load_builder(config.data)
  video_shape = tuple(builder.info.features['video'].shape)
  output_dir = default_codes_dir(config, workdir)
  code_shape = codec.code_shape(video_shape)
  dtype = cr_lib.code_dtype(config.model.codebook_size)
  logging.info('Encoding %s splits %s into %s: codes %s %s, CR %.1f.',
               builder.info.full_name, list(config.encode.splits), output_dir,
               code_shape, np.dtype(dtype).name,
               codec.compression_rate(video_shape))
  start = time.perf_counter()
  written = code_dataset.write_code_dataset(
      source_builder=builder, splits=list(config.encode.splits),
      output_dir=output_dir, encode=codec.encode_videos, code_shape=code_shape,
      code_dtype=dtype, metadata=codec.metadata(video_shape),
      batch_size=config.data.batch_size,
      examples_per_shard=config.encode.examples_per_shard,
      chunk_frames=config.encode.chunk_frames,
      code_storage=config.encode.code_storage,
      # K x K prior tables only up to MAX_PRIOR_CODEBOOK (K=8192 presets
      # are entropy-coded without one).
      entropy_prior_clips=(
          config.encode.entropy_prior_clips
          if config.encode.code_storage == 'entropy' and
          config.model.codebook_size <= entropy_coding.MAX_PRIOR_CODEBOOK
          else 0))
  seconds = time.perf_counter() - start
  stored = code_dataset.storage_bytes(output_dir)
  num_videos = sum(builder.info.splits[s].num_examples
                   for s in config.encode.splits)
  raw = num_videos * int(np.prod(video_shape))
  summary = {
      'output_dir': output_dir, 'shards_written': written,
      'num_videos': num_videos,
      'raw_video_bytes': raw, 'code_bytes_on_disk': stored,
      'measured_storage_ratio': raw / max(stored, 1),
      'paper_compression_rate': codec.compression_rate(video_shape),
      # The one-off cost of the codes (the three-route table reads it): a
      # resumed encode adds its time to the earlier calls'; a call that
      # found the dataset complete keeps theirs.
      'encode_seconds': _previous_encode_seconds(output_dir) + (
          seconds if any(written.values()) else 0.0),
  }
  logging.info('Codes on disk: %d bytes for %d bytes of raw video (%.1fx); '
               'paper CR %.1f.', stored, raw, summary['measured_storage_ratio'],
               summary['paper_compression_rate'])
  metric_logging.write_json(os.path.join(output_dir, ENCODE_SUMMARY), summary)
  return summary


def decode(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """`--mode=decode`: a PNG grid and mp4s of decoded codes beside originals."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  codec = load_codec(config, workdir)
  codes_dir = config.decode.dataset_dir or default_codes_dir(config, workdir)
  if not os.path.isfile(os.path.join(codes_dir, 'dataset_info.json')):
    raise FileNotFoundError(f'No code dataset at {codes_dir}: run '
                            '--mode=encode first or set decode.dataset_dir.')
  split = config.decode.split
  codes_source = tfds.builder_from_directory(codes_dir).as_data_source(split)
  count = min(config.decode.num_videos, len(codes_source))
  codes = np.stack([codes_source[i][code_dataset.CODES_KEY]
                    for i in range(count)])
  decoded = codec.decode_to_videos(codes)
  # The code dataset keeps the source's order, so example i is the same video.
  originals = None
  try:
    video_source = sources.load_source(config.data, split)
    originals = np.stack([video_source[i]['video'] for i in range(count)])
  except (FileNotFoundError, ValueError) as e:
    logging.warning('Originals unavailable (%s); showing decodes only.', e)
  out_dir = os.path.join(workdir, 'decoded')
  os.makedirs(out_dir, exist_ok=True)
  grid_path = os.path.join(out_dir, f'{split}_grid.png')
  report.save_comparison_grid(
      grid_path, originals if originals is not None else decoded, decoded)
  videos = []
  for i in range(count):
    frames = decoded[i] if originals is None else np.concatenate(
        [originals[i], decoded[i]], axis=2)  # Side by side.
    path = os.path.join(out_dir, f'{split}_{i:03d}.mp4')
    video_io.write_video(path, _even(frames), fps=8)
    videos.append(path)
  logging.info('Wrote %s and %d mp4 files to %s.', grid_path, len(videos),
               out_dir)
  return {'grid': grid_path, 'videos': videos}


def _even(frames: np.ndarray) -> np.ndarray:
  """Pads H and W to even sizes (H.264 needs them)."""
  pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
  return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode='edge')


def _codebook_usage(counts: np.ndarray) -> dict[str, list[float]]:
  """Fraction of entries used and perplexity per codebook, from `[N, K]`."""
  probs = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)
  logs = np.log(np.where(probs > 0, probs, 1.0))
  return {'usage': (counts > 0).mean(axis=1).tolist(),
          'perplexity': np.exp(-(probs * logs).sum(axis=1)).tolist()}


def _jpeg_comparison(codec_row: dict, rows: list[dict]) -> dict[str, Any]:
  """The JPEG setting of highest CR not above the codec's, and the verdict."""
  candidates = [r for r in rows if r['codec'] == 'jpeg'
                and r['cr'] <= codec_row['cr']]
  if not candidates:
    return {'jpeg_row': None, 'codec_better': None}
  jpeg = max(candidates, key=lambda r: r['cr'])
  return {'jpeg_row': jpeg,
          'codec_better': bool(codec_row['psnr'] > jpeg['psnr']
                               and codec_row['ssim'] > jpeg['ssim'])}


def _stored_rows(config, workdir, codec_row, videos) -> list[dict]:
  """The codec's row again at the bytes its codes take entropy-coded.

  Clip by clip, as `--mode=encode` with `code_storage='entropy'` stores
  them: alone, and with the prior it would fit on the first
  `encode.entropy_prior_clips` training clips.
  """
  m = config.model
  codec = load_codec(config, workdir)
  dtype = cr_lib.code_dtype(m.codebook_size)
  batch = config.data.batch_size

  def encode(clips):
    return np.concatenate([codec.encode_videos(clips[i:i + batch])
                           for i in range(0, len(clips), batch)]).astype(dtype)

  codes = list(encode(videos))
  rows = [dict(codec_row, codec='cvision (entropy-coded)',
               cr=entropy_coding.stored_compression_rate(videos.nbytes,
                                                         codes))]
  prior_clips = config.encode.entropy_prior_clips
  if prior_clips and m.codebook_size <= entropy_coding.MAX_PRIOR_CODEBOOK:
    try:
      train = sources.load_source(config.data, config.data.train_split)
    except ValueError as e:
      # A folder of a few real videos may have no training split.
      logging.warning('No entropy-coded row with a prior: %s', e)
      return rows
    train_videos = np.stack([train[i]['video']
                             for i in range(min(prior_clips, len(train)))])
    prior = entropy_coding.fit_prior(list(encode(train_videos)),
                                     m.codebook_size)
    rows.append(dict(codec_row, codec='cvision (entropy-coded, prior)',
                     cr=entropy_coding.stored_compression_rate(
                         videos.nbytes, codes, prior)))
  return rows


# Below this many videos a Table 1 says little: the mode warns.
FEW_VIDEOS = 32


def evaluate(config: ml_collections.ConfigDict,
             workdir: str) -> dict[str, Any]:
  """`--mode=eval`: the codec against JPEG and MPEG on held-out videos.

  All codecs see the same first `eval.num_videos` videos of `eval.split`.
  The neural codec goes through the core's evaluation loop (its task's
  per-video PSNR, SSIM, MAE and codebook counts); its CR is given twice:
  the paper's formula (log2 K bits per index, row `cvision`) and measured
  from the bytes of its codes entropy-coded clip by clip as a code dataset
  with `code_storage='entropy'` stores them (row `cvision (entropy-coded)`).
  JPEG's, MPEG-4's, H.264's, H.265's and AV1's are measured from the bytes
  they write. Writes `WORKDIR/eval/codecs.{md,txt,json}` and
  rate-distortion plots.
  """
  config = run_config(config, workdir)
  m = config.model
  split = config.eval.split
  source = sources.load_source(config.data, split)
  count = min(config.eval.num_videos, len(source))
  if count < FEW_VIDEOS:
    logging.warning('The codec table rests on %d %s video(s) only (fewer '
                    'than %d): set eval.num_videos or use a larger split.',
                    count, split, FEW_VIDEOS)
  videos = np.stack([source[i]['video'] for i in range(count)])
  video_shape = videos.shape[1:]

  def table(result: evaluation.Evaluation) -> dict[str, Any]:
    metrics = result.results['']
    grid = cr_lib.code_grid_shape(video_shape[:3], m)
    codec_row = report.row(
        'cvision', f'grid={"x".join(map(str, grid))},'
        f'N={m.num_codebooks},K={m.codebook_size}',
        codec_task.model_compression_rate(m, video_shape[:3]),
        {k: metrics.mean[k] for k in ('psnr', 'ssim', 'mae')})
    logging.info('Codec on %d %s videos: %s', metrics.count, split,
                 codec_row)
    # The same reconstructions at the bytes their codes take entropy-coded
    # (`entropy_coding`), measured like the baselines' bytes.
    stored_rows = _stored_rows(config, workdir, codec_row, videos)
    rows = [codec_row, *stored_rows] + list(baselines.sweep(
        list(videos), jpeg_qualities=tuple(config.eval.jpeg_qualities),
        mpeg4_bitrates=tuple(config.eval.mpeg4_bitrates),
        mpeg4_qscales=tuple(config.eval.mpeg4_qscales),
        downscales=tuple(config.eval.baseline_downscales),
        x264_crfs=tuple(config.eval.h264_crfs),
        x265_crfs=tuple(config.eval.get('h265_crfs', ())),
        av1_crfs=tuple(config.eval.get('av1_crfs', ()))))
    out_dir = os.path.join(workdir, 'eval')
    paths = report.write_report(out_dir, rows)
    usage = _codebook_usage(np.asarray(metrics.mean['code_counts']))
    out = {'num_videos': metrics.count, 'video_shape': list(video_shape),
           'rows': rows, 'codebooks': usage,
           'jpeg_comparison': _jpeg_comparison(codec_row, rows),
           'table': report.format_table(rows, 'markdown'), 'files': paths}
    metric_logging.write_json(os.path.join(out_dir, 'codecs.json'),
                              dict(out, step=result.step, split=split))
    logging.info('Codebook usage %s, perplexity %s.', usage['usage'],
                 usage['perplexity'])
    logging.info('\n%s', report.format_table(rows, 'text'))
    return out

  result = evaluation.evaluate(codec_task.build_task(config), config,
                               workdir, split=f'{split}[:{count}]',
                               report=table)
  result['split'] = split
  return result


def probe_codes(config: ml_collections.ConfigDict,
                workdir: str) -> dict[str, Any]:
  """`--mode=probe`: linear probes of moving pixels from the codes.

  Encodes `probe.num_videos` videos of `probe.split`, embeds the codes in
  the codebook as downstream models do, and scores each probe of
  `cvision.projects.codec.probe` on held-out videos. Writes
  `WORKDIR/eval/code_probe_<split>.{md,json}`.
  """
  codec = load_codec(config, workdir)
  split = config.probe.split
  source = sources.load_source(config.data, split)
  count = min(config.probe.num_videos, len(source))
  if count < 2:
    raise ValueError(f'--mode=probe needs at least 2 videos in split '
                     f'{split!r} of {config.data.name}, found {count}.')
  videos = np.stack([source[i]['video'] for i in range(count)])
  codes = np.concatenate([
      codec.encode_videos(videos[first:first + config.data.batch_size])
      for first in range(0, count, config.data.batch_size)])
  embedded = np.concatenate(
      [book[codes[..., n]] for n, book in enumerate(codec.codebook)], -1)
  cell = videos.shape[2] // codes.shape[2]
  frames_per_cell = videos.shape[1] // codes.shape[1]
  moving = probe.moving_cells(videos, cell, frames_per_cell,
                              threshold=config.probe.threshold)
  results = dict(probe.probe(embedded, moving))
  # What the same probes read from the pixels the codes replace (not the
  # 27-cell neighbourhood: 27 x the cell's pixels is slow to fit).
  pixels = dict(probe.probe(
      probe.pixel_cells(videos, cell, frames_per_cell), moving,
      features=('cell', 'change')))
  held_out = moving[count // 2:]
  table = probe.format_table(results, pixels, float(held_out.mean()),
                             held_out.size)
  title = (f'Linear probes of moving cells from the codes of {count} '
           f'{split} videos (step {codec.step}; fitted on the first half, '
           'scored on the rest).')
  out_dir = os.path.join(workdir, 'eval')
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f'code_probe_{split}.md'), 'w') as f:
    f.write(f'{title}\n\n{table}\n')
  result = {'step': codec.step, 'split': split, 'num_videos': count,
            'balanced_accuracy': results, 'pixels_balanced_accuracy': pixels,
            'moving_fraction': float(held_out.mean()), 'table': table}
  metric_logging.write_json(os.path.join(out_dir, f'code_probe_{split}.json'),
                            result)
  logging.info('%s\n%s', title, table)
  return result


def import_release(config: ml_collections.ConfigDict,
                   workdir: str) -> dict[str, Any]:
  """`--mode=import`: `config.release.pickle` (the paper's released codec)
  becomes an ordinary codec run in `workdir` (docs/release_codecs.md)."""
  if not config.release.pickle:
    raise ValueError('--mode=import needs the release file: pass '
                     '--config.release.pickle=<a compressed_vision .pkl>.')
  saved = release_importer.import_release(config.release.pickle, workdir,
                                          config)
  logging.info('Imported %s into %s: codes of N=%d codebooks of K=%d.',
               config.release.pickle, workdir, saved.model.num_codebooks,
               saved.model.codebook_size)
  return {'workdir': workdir, 'model': saved.model.to_dict()}


MODES = {'train': train, 'eval': evaluate, 'encode': encode, 'decode': decode,
         'probe': probe_codes, 'import': import_release}
