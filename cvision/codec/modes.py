"""The codec's binary modes: encode a dataset, decode codes, evaluate.

  --mode=encode  the dataset in `config.data` -> a TFDS dataset of codes
  --mode=decode  codes -> PNG grid (original / reconstruction) and mp4s
  --mode=eval    PSNR / SSIM / MAE on held-out videos, against JPEG and MPEG
                 at measured compression rates; Table 1 and an RD plot
  --mode=probe   linear probes: how directly the codes show where pixels
                 move (`cvision.codec.probe`; static-background videos)
Each restores the codec from the latest checkpoint in `--workdir`.
"""
from __future__ import annotations

import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cvision.codec import code_dataset
from cvision.codec import compression_rate as cr_lib
from cvision.core import metric_logging
from cvision.core import trainer
from data_pipelines import input_pipeline


class Codec:
  """A restored codec's encode and decode, jitted over this host's devices.

  Encoding is embarrassingly parallel, so each host works alone on its local
  devices (no cross-host collectives), batches sharded over them.
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    run = trainer.restore_trained(config, workdir)
    self.config = config
    self.workdir = workdir
    self.step = int(jax.device_get(run.state.step))
    self._mesh = Mesh(np.asarray(jax.local_devices()), ('data',))
    replicated = NamedSharding(self._mesh, P())
    # Fully replicated arrays are readable on every host.
    self.variables = jax.device_put(
        jax.device_get(run.state.variables()), replicated)
    self._batch_sharding = NamedSharding(self._mesh, P('data'))
    run.checkpointer.close()
    encode, decode = run.task.extras['encode'], run.task.extras['decode']
    # `[N, K, D]`: what downstream models embed the codes with.
    self.codebook = np.asarray(run.task.extras['codebook'](self.variables))

    def decode_to_pixels(variables, codes):
      video = decode(variables, codes.astype(jnp.int32))
      return jnp.round(jnp.clip(video, 0, 1) * 255).astype(jnp.uint8)

    self._encode = jax.jit(encode)  # uint8 pixels in, int32 codes out.
    self._decode = jax.jit(decode_to_pixels)

  def _sharded(self, fn, x: np.ndarray) -> np.ndarray:
    # Pad the batch to a multiple of the local devices; drop the padding.
    n = len(x)
    devices = self._mesh.devices.size
    padded = -n % devices
    if padded:
      x = np.concatenate([x, np.repeat(x[-1:], padded, axis=0)])
    out = fn(self.variables, jax.device_put(x, self._batch_sharding))
    return np.asarray(jax.device_get(out))[:n]

  def encode(self, video: np.ndarray) -> np.ndarray:
    """`[B, T, H, W, 3] uint8` -> `[B, T_c, H_c, W_c, N]` int32 codes."""
    return self._sharded(self._encode, np.asarray(video))

  def decode(self, codes: np.ndarray) -> np.ndarray:
    """`[B, T_c, H_c, W_c, N]` codes -> `[B, T, H, W, 3] uint8`."""
    return self._sharded(self._decode, np.asarray(codes))

  def code_shape(self, video_shape) -> tuple[int, int, int, int]:
    """`(T_c, H_c, W_c, N)` for a `(T, H, W, 3)` clip."""
    grid = cr_lib.code_grid_shape(tuple(video_shape[:3]), self.config.model)
    return (*grid, self.config.model.num_codebooks)

  def compression_rate(self, video_shape) -> float:
    m = self.config.model
    return cr_lib.compression_rate(tuple(video_shape[:3]),
                                   self.code_shape(video_shape)[:3],
                                   m.num_codebooks, m.codebook_size)

  def metadata(self, video_shape) -> dict[str, Any]:
    m = self.config.model
    return {
        'codec_workdir': os.path.abspath(self.workdir),
        'codec_checkpoint_step': self.step,
        'codec_model': m.to_dict(),
        'input_shape': list(video_shape),
        'code_grid_shape': list(self.code_shape(video_shape)[:3]),
        'num_codebooks': m.num_codebooks,
        'codebook_size': m.codebook_size,
        'compression_rate': self.compression_rate(video_shape),
    }


def default_codes_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  if config.encode.output_dir:
    return config.encode.output_dir
  name = config.data.dataset_dir or config.data.name
  variant = config.data.builder_kwargs.get('config', '')
  label = os.path.basename(os.path.normpath(name)) + (
      f'_{variant}' if variant and not config.data.dataset_dir else '')
  return os.path.join(workdir, 'codes', label)


def encode(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """`--mode=encode`: writes `config.data` as codes (resumable)."""
  codec = Codec(config, workdir)
  builder = input_pipeline.load_builder(config.data)
  video_shape = tuple(builder.info.features['video'].shape)
  output_dir = default_codes_dir(config, workdir)
  code_shape = codec.code_shape(video_shape)
  dtype = cr_lib.code_dtype(config.model.codebook_size)
  logging.info('Encoding %s splits %s into %s: codes %s %s, CR %.1f.',
               builder.info.full_name, list(config.encode.splits), output_dir,
               code_shape, np.dtype(dtype).name,
               codec.compression_rate(video_shape))
  written = code_dataset.write_code_dataset(
      source_builder=builder, splits=list(config.encode.splits),
      output_dir=output_dir, encode=codec.encode, code_shape=code_shape,
      code_dtype=dtype, metadata=codec.metadata(video_shape),
      batch_size=config.data.batch_size,
      examples_per_shard=config.encode.examples_per_shard,
      chunk_frames=config.encode.chunk_frames)
  stored = code_dataset.storage_bytes(output_dir)
  raw = sum(builder.info.splits[s].num_examples for s in config.encode.splits
            ) * int(np.prod(video_shape))
  summary = {
      'output_dir': output_dir, 'shards_written': written,
      'raw_video_bytes': raw, 'code_bytes_on_disk': stored,
      'measured_storage_ratio': raw / max(stored, 1),
      'paper_compression_rate': codec.compression_rate(video_shape),
  }
  logging.info('Codes on disk: %d bytes for %d bytes of raw video (%.1fx); '
               'paper CR %.1f.', stored, raw, summary['measured_storage_ratio'],
               summary['paper_compression_rate'])
  metric_logging.write_json(os.path.join(output_dir, 'encode_summary.json'),
                            summary)
  return summary


def decode(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """`--mode=decode`: a PNG grid and mp4s of decoded codes beside originals."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from cvision.codec import report  # pylint: disable=g-import-not-at-top
  from data_pipelines import video_io  # pylint: disable=g-import-not-at-top
  codec = Codec(config, workdir)
  codes_dir = config.decode.dataset_dir or default_codes_dir(config, workdir)
  if not os.path.isfile(os.path.join(codes_dir, 'dataset_info.json')):
    raise FileNotFoundError(f'No code dataset at {codes_dir}: run '
                            '--mode=encode first or set decode.dataset_dir.')
  split = config.decode.split
  codes_source = tfds.builder_from_directory(codes_dir).as_data_source(split)
  count = min(config.decode.num_videos, len(codes_source))
  codes = np.stack([codes_source[i][code_dataset.CODES_KEY]
                    for i in range(count)])
  decoded = codec.decode(codes)
  # The code dataset keeps the source's order, so example i is the same video.
  originals = None
  try:
    video_source = input_pipeline.load_source(config.data, split)
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
  probs = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
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


def evaluate(config: ml_collections.ConfigDict,
             workdir: str) -> dict[str, Any]:
  """`--mode=eval`: the codec against JPEG and MPEG on held-out videos.

  All codecs see the same `eval.num_videos` videos of `eval.split`. The
  neural codec's CR is the paper's formula (log2 K bits per index); JPEG's
  and MPEG's are measured from the bytes they write. Writes
  `WORKDIR/eval/codecs.{md,txt,json}` and rate-distortion plots.
  """
  from cvision.codec import baselines  # pylint: disable=g-import-not-at-top
  from cvision.codec import report  # pylint: disable=g-import-not-at-top
  from cvision.metrics import video_quality  # pylint: disable=g-import-not-at-top
  codec = Codec(config, workdir)
  m = config.model
  split = config.eval.split
  source = input_pipeline.load_source(config.data, split)
  count = min(config.eval.num_videos, len(source))
  videos = np.stack([source[i]['video'] for i in range(count)])
  video_shape = videos.shape[1:]

  metrics = {'psnr': [], 'ssim': [], 'mae': []}
  counts = np.zeros((m.num_codebooks, m.codebook_size), np.int64)
  for first in range(0, count, config.data.batch_size):
    batch = videos[first:first + config.data.batch_size]
    codes = codec.encode(batch)
    for n in range(m.num_codebooks):
      counts[n] += np.bincount(codes[..., n].ravel(),
                               minlength=m.codebook_size)
    for k, v in video_quality.all_metrics(codec.decode(codes), batch).items():
      metrics[k].extend(np.atleast_1d(v).tolist())
  grid = codec.code_shape(video_shape)
  codec_row = report.row(
      'cvision', f'grid={"x".join(map(str, grid[:3]))},N={m.num_codebooks},'
      f'K={m.codebook_size}', codec.compression_rate(video_shape),
      {k: float(np.mean(v)) for k, v in metrics.items()})
  logging.info('Codec on %d %s videos: %s', count, split, codec_row)

  rows = [codec_row] + list(baselines.sweep(
      list(videos), jpeg_qualities=tuple(config.eval.jpeg_qualities),
      mpeg4_bitrates=tuple(config.eval.mpeg4_bitrates),
      x264_crfs=tuple(config.eval.h264_crfs)))
  out_dir = os.path.join(workdir, 'eval')
  paths = report.write_report(out_dir, rows)
  result = {
      'step': codec.step, 'split': split, 'num_videos': count,
      'video_shape': list(video_shape), 'rows': rows,
      'codebooks': _codebook_usage(counts),
      'jpeg_comparison': _jpeg_comparison(codec_row, rows),
      'table': report.format_table(rows, 'markdown'), 'files': paths,
  }
  metric_logging.write_json(os.path.join(out_dir, 'codecs.json'), result)
  logging.info('Codebook usage %s, perplexity %s.',
               result['codebooks']['usage'], result['codebooks']['perplexity'])
  logging.info('\n%s', report.format_table(rows, 'text'))
  return result


def probe_codes(config: ml_collections.ConfigDict,
                workdir: str) -> dict[str, Any]:
  """`--mode=probe`: linear probes of moving pixels from the codes.

  Encodes `probe.num_videos` videos of `probe.split`, embeds the codes in
  the codebook as downstream models do, and scores each probe of
  `cvision.codec.probe` on held-out videos. Writes
  `WORKDIR/eval/code_probe_<split>.{md,json}`.
  """
  from cvision.codec import probe  # pylint: disable=g-import-not-at-top
  codec = Codec(config, workdir)
  split = config.probe.split
  source = input_pipeline.load_source(config.data, split)
  count = min(config.probe.num_videos, len(source))
  if count < 2:
    raise ValueError(f'--mode=probe needs at least 2 videos in split '
                     f'{split!r} of {config.data.name}, found {count}.')
  videos = np.stack([source[i]['video'] for i in range(count)])
  codes = np.concatenate([
      codec.encode(videos[first:first + config.data.batch_size])
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
