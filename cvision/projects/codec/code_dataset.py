"""Writes a video dataset as a TFDS dataset of integer codes, once.

The output is an ordinary TFDS directory (array_record shards,
`dataset_info.json`, `features.json`, `metadata.json`) that
`tfds.builder_from_directory` and the input pipeline read like any other.
Every feature of the source except the video is carried over unchanged
(labels, per-frame labels, ids); the video becomes `codes`
`[T_c, H_c, W_c, N]` in the smallest unsigned dtype that holds K, stored
zlib-compressed (`code_storage='raw'`) or entropy-coded over time
(`'entropy'`, `code_storage.py`); readers get the same indices either way.
`metadata.json` records the bytes on disk per video pixel and the stored
compression rate they give.

Writing is resumable and never leaves a dataset that looks complete when it
is not:
* each shard is written to `<shard>.tmp` and renamed when whole, so a shard
  file that exists is complete, and a second run skips it;
* `dataset_info.json` is written last, after every shard of every split;
* `encode_manifest.json`, written first, records what is being encoded (the
  codec checkpoint, the source, the code shape); a rerun with other settings
  into the same directory is refused rather than mixing codes.
Multi-host: process p writes the shards `i` with `i % process_count == p`;
process 0 writes the metadata once all shards exist.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from absl import logging
import jax
import numpy as np

from cvision.projects.codec import host_prefetch

CODES_KEY = 'codes'
VIDEO_KEY = 'video'
MANIFEST = 'encode_manifest.json'
DATASET_NAME = 'codes'
EncodeFn = Callable[[np.ndarray], np.ndarray]


def encode_in_time_chunks(video: np.ndarray, encode: EncodeFn,
                          chunk_frames: int) -> np.ndarray:
  """Encodes `[B, T, H, W, 3]` in pieces of `chunk_frames` along time.

  Device memory is bounded by one chunk, whatever T is. Each chunk is padded
  by reflection inside the encoder, like a whole clip.
  """
  if chunk_frames <= 0 or video.shape[1] <= chunk_frames:
    return encode(video)
  pieces = [encode(video[:, t:t + chunk_frames])
            for t in range(0, video.shape[1], chunk_frames)]
  return np.concatenate(pieces, axis=1)


def encode_stream(chunks: Iterable[np.ndarray],
                  encode: EncodeFn) -> Iterator[np.ndarray]:
  """Encodes a stream of `[T_i, H, W, 3]` chunks of one long video.

  Yields `[T_ci, H_c, W_c, N]` codes per chunk: with a chunked reader
  (`data_pipelines.video_io.iter_video_chunks`) an hour of video never sits
  in memory as pixels.
  """
  # The next chunk is read (decoded from the file) while this one encodes.
  for chunk in host_prefetch.prefetch(chunks):
    yield encode(chunk[None])[0]


def _read_batches(source, indices: Sequence[int], batch_size: int):
  """(examples, stacked videos) of `indices`, `batch_size` at a time."""
  for first in range(0, len(indices), batch_size):
    examples = [source[i] for i in indices[first:first + batch_size]]
    yield examples, np.stack([e[VIDEO_KEY] for e in examples])


def _entropy_prior(source_builder, split: str, encode: EncodeFn, *,
                   count: int, batch_size: int, chunk_frames: int,
                   code_dtype, codebook_size: int, path: str):
  """An `entropy_coding.Prior` fitted on the first `count` clips of `split`.

  Saved at `path` when fitted, and read back by a resumed run, so every
  shard is coded with the same prior.
  """
  from cvision.projects.codec import entropy_coding  # pylint: disable=g-import-not-at-top
  if os.path.exists(path):
    return entropy_coding.Prior.load(path)
  source = source_builder.as_data_source(split=split)
  clips = []
  for first in range(0, min(count, len(source)), batch_size):
    indices = range(first, min(first + batch_size, count, len(source)))
    videos = np.stack([source[i][VIDEO_KEY] for i in indices])
    clips.extend(encode_in_time_chunks(videos, encode, chunk_frames).astype(
        code_dtype))
  prior = entropy_coding.fit_prior(clips, codebook_size)
  if jax.process_index() == 0:
    prior.save(path + '.tmp')
    os.replace(path + '.tmp', path)
  return prior


def _features(source_features, code_shape: Sequence[int], code_dtype,
              storage: str, prior=None):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from cvision.projects.codec import code_storage  # pylint: disable=g-import-not-at-top
  carried = {k: v for k, v in source_features.items() if k != VIDEO_KEY}
  if VIDEO_KEY not in source_features:
    raise ValueError(f'The source dataset has no {VIDEO_KEY!r} feature; it '
                     f'has {sorted(source_features)}.')
  return tfds.features.FeaturesDict({
      CODES_KEY: code_storage.codes_feature(storage, code_shape, code_dtype,
                                            prior),
      **carried,
  })


def _template(output_dir: str, split: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.core.ShardedFileTemplate(
      data_dir=output_dir,
      template='{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}',
      dataset_name=DATASET_NAME, split=split, filetype_suffix='array_record')


def _check_manifest(output_dir: str, manifest: Mapping[str, Any]) -> None:
  path = os.path.join(output_dir, MANIFEST)
  if os.path.exists(path):
    with open(path) as f:
      existing = json.load(f)
    differing = sorted(k for k in set(existing) | set(manifest)
                       if existing.get(k) != manifest.get(k))
    if differing:
      details = '; '.join(f'{k}: was {existing.get(k)!r}, now '
                          f'{manifest.get(k)!r}' for k in differing)
      raise ValueError(
          f'{output_dir} already holds codes written with other settings '
          f'({details}). Choose another output directory or delete it.')
  elif jax.process_index() == 0:
    os.makedirs(output_dir, exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
      json.dump(manifest, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def write_code_dataset(*, source_builder, splits: Sequence[str],
                       output_dir: str, encode: EncodeFn,
                       code_shape: Sequence[int], code_dtype,
                       metadata: Mapping[str, Any], batch_size: int,
                       examples_per_shard: int = 256,
                       chunk_frames: int = 0,
                       code_storage: str = 'raw',
                       entropy_prior_clips: int = 0) -> dict[str, int]:
  """Encodes `splits` of `source_builder` into a TFDS dataset of codes.

  Args:
    source_builder: a prepared TFDS builder with a `video` feature
      `[T, H, W, 3] uint8`.
    splits: the splits to encode (each becomes a split of the output).
    output_dir: the output dataset directory.
    encode: `[B, T, H, W, 3] uint8 -> [B, T_c, H_c, W_c, N]` integer codes.
    code_shape: `(T_c, H_c, W_c, N)` of one example's codes.
    code_dtype: the storage dtype (see `compression_rate.code_dtype`).
    metadata: stored in the dataset's `metadata.json` and in the manifest
      (codec checkpoint, compression rate, K, N, ...); must be JSON-able.
    batch_size: examples encoded per call of `encode`.
    examples_per_shard: examples per array_record file.
    chunk_frames: encode long clips in time chunks of this many frames
      (0 = whole clips).
    code_storage: 'raw' (zlib) or 'entropy' (`entropy_coding`).
    entropy_prior_clips: with 'entropy', fit an `entropy_coding.Prior` on
      this many first clips of `splits[0]` and code every clip with it
      (`metadata['codebook_size']` gives K; 0 = no prior).

  Returns:
    `{split: number of shards written by this call}` (0 when all existed).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  # Storage keys only when not the default: manifests of datasets written
  # before them still match.
  storage = ({'code_storage': code_storage} if code_storage != 'raw' else {})
  if entropy_prior_clips:
    storage['entropy_prior_clips'] = entropy_prior_clips
  manifest = {
      **storage,
      'source': source_builder.info.full_name,
      'source_dir': str(source_builder.data_dir),
      'splits': list(splits),
      'code_shape': list(code_shape),
      'code_dtype': np.dtype(code_dtype).name,
      'examples_per_shard': examples_per_shard,
      **json.loads(json.dumps(dict(metadata))),
  }
  _check_manifest(output_dir, manifest)
  # Every process writes shards here, not only process 0 (which makes it
  # in `_check_manifest`): the others may get there first.
  os.makedirs(output_dir, exist_ok=True)
  if os.path.exists(os.path.join(output_dir, 'dataset_info.json')):
    logging.info('%s is complete; nothing to encode.', output_dir)
    return {split: 0 for split in splits}
  prior = None
  if entropy_prior_clips:
    if code_storage != 'entropy' or 'codebook_size' not in metadata:
      raise ValueError('entropy_prior_clips needs code_storage=\'entropy\' '
                       'and metadata[\'codebook_size\'].')
    prior = _entropy_prior(
        source_builder, splits[0], encode, count=entropy_prior_clips,
        batch_size=batch_size, chunk_frames=chunk_frames,
        code_dtype=code_dtype, codebook_size=metadata['codebook_size'],
        path=os.path.join(output_dir, f'{CODES_KEY}.entropy_prior.npz'))
  features = _features(source_builder.info.features, code_shape, code_dtype,
                       code_storage, prior)

  written, split_infos = {}, []
  for split in splits:
    if split not in source_builder.info.splits:
      raise ValueError(f'Split {split!r} not in {source_builder.info.full_name}'
                       f'; it has {sorted(source_builder.info.splits)}.')
    source = source_builder.as_data_source(split=split)
    num_examples = len(source)
    num_shards = max(1, math.ceil(num_examples / examples_per_shard))
    template = _template(output_dir, split)
    lengths = [min(examples_per_shard, num_examples - s * examples_per_shard)
               for s in range(num_shards)]
    written[split] = 0
    for shard in range(jax.process_index(), num_shards, jax.process_count()):
      path = str(template.sharded_filepath(shard_index=shard,
                                           num_shards=num_shards))
      if os.path.exists(path):
        continue  # Renamed into place only when complete.
      start = shard * examples_per_shard
      indices = range(start, start + lengths[shard])
      tmp = path + '.tmp'
      writer = array_record_module.ArrayRecordWriter(tmp, 'group_size:1')
      # The next batch is read while this one encodes.
      batches = host_prefetch.prefetch(
          _read_batches(source, indices, batch_size))
      try:
        for examples, videos in batches:
          codes = encode_in_time_chunks(videos, encode, chunk_frames)
          if tuple(codes.shape[1:]) != tuple(code_shape):
            raise ValueError(f'The encoder gave codes of shape '
                             f'{codes.shape[1:]}, expected {tuple(code_shape)}.')
          for example, example_codes in zip(examples, codes):
            record = {k: v for k, v in example.items() if k != VIDEO_KEY}
            record[CODES_KEY] = example_codes.astype(code_dtype)
            writer.write(features.serialize_example(record))
      finally:
        batches.close()
        writer.close()
      os.replace(tmp, path)
      written[split] += 1
      logging.info('Encoded %s shard %d/%d (%d examples).', split, shard + 1,
                   num_shards, lengths[shard])
    split_infos.append(tfds.core.SplitInfo(
        name=split, shard_lengths=lengths, num_bytes=0,
        filename_template=template))

  finish_dataset(output_dir, features, split_infos, manifest,
                 description=f'Neural codes of {manifest["source"]}.')
  return written


def finish_dataset(output_dir, features, split_infos, manifest, *,
                   description: str) -> None:
  """Once every process has written its shards: TFDS metadata (process 0).

  Shared by every writer of code datasets (e.g. long videos).
  """
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f'{output_dir} shards written')
  if jax.process_index() != 0:
    return
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  split_infos = [dataclasses.replace(info, num_bytes=sum(
      os.path.getsize(str(info.filename_template.sharded_filepath(
          shard_index=s, num_shards=info.num_shards)))
      for s in range(info.num_shards))) for info in split_infos]
  paths = [str(info.filename_template.sharded_filepath(
      shard_index=s, num_shards=info.num_shards))
            for info in split_infos for s in range(info.num_shards)]
  manifest = {**manifest, **stored_rates(
      sum(info.num_bytes for info in split_infos), record_bytes(paths),
      sum(sum(info.shard_lengths) for info in split_infos), manifest)}
  # check_data=False: TFDS's check reads through tf.data, which we do not
  # install; the shard lengths come from what was written.
  tfds.folder_dataset.write_metadata(
      data_dir=output_dir, features=features, split_infos=split_infos,
      filename_template=split_infos[0].filename_template, check_data=False,
      description=description, metadata=tfds.core.MetadataDict(manifest))


def record_bytes(paths: Sequence[str]) -> int:
  """Bytes of the serialized examples in array_record files.

  The files hold more: array_record pads each file to 64 KiB blocks and
  puts its index in a last block of its own, up to ~128 KiB a shard, which
  outweighs a small shard of entropy-coded codes.
  """
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  total = 0
  for path in paths:
    reader = array_record_module.ArrayRecordReader(path)
    try:
      total += sum(len(r) for r in reader.read_all())
    finally:
      reader.close()
  return total


def stored_rates(file_bytes: int, example_bytes: int, num_examples: int,
                 manifest: Mapping[str, Any]) -> dict[str, float]:
  """What the codes cost on disk, labels and example framing included.

  `stored_*` count the files' bytes (what `du` shows), `record_*` the
  serialized examples alone (the files less array_record's block padding,
  what a large shard tends to). Bytes per pixel count one per RGB pixel of
  input video (`input_shape` [T, H, W] or [T, H, W, C] in `manifest`); a
  compression rate is raw video bytes over stored bytes, the measure
  H.264's CR uses. Both need fixed-size clips.
  """
  rates = {'stored_bytes': int(file_bytes), 'record_bytes': int(example_bytes)}
  code_shape, input_shape = manifest.get('code_shape'), manifest.get(
      'input_shape')
  for name, num_bytes in (('stored', file_bytes), ('record', example_bytes)):
    if code_shape and num_examples:
      rates[f'{name}_bits_per_index'] = 8 * num_bytes / (
          num_examples * math.prod(code_shape))
    if input_shape and num_examples:
      pixels = num_examples * math.prod(input_shape[:3])
      channels = input_shape[3] if len(input_shape) == 4 else 3
      rates[f'{name}_bytes_per_pixel'] = num_bytes / pixels
      rates[f'{name}_compression_rate'] = pixels * channels / max(num_bytes,
                                                                   1)
  return rates


def storage_bytes(dataset_dir: str) -> int:
  """Bytes on disk of a dataset's data files (what the codes really cost)."""
  return sum(os.path.getsize(os.path.join(dataset_dir, name))
             for name in os.listdir(dataset_dir) if '.array_record' in name
             and not name.endswith('.tmp'))
