r"""Long videos as a TFDS dataset of codes, written chunk by chunk.

  # Generated 30-minute walks (data_pipelines/generated/long_world.py):
  python -m cvision.projects.codec.long_video_codes --codec_workdir=runs/codec \
      --output_dir=runs/pf/codes_30min --minutes=30 --train_videos=6 \
      --test_videos=3
  # Your own long videos (resized to the codec's frame size, cut to the
  # shortest one's length in whole task chunks):
  python -m cvision.projects.codec.long_video_codes --codec_workdir=runs/codec \
      --output_dir=runs/pf/codes_mine --video_files=a.mp4,b.mp4 --split=test

Pixels only ever exist one chunk at a time: each chunk of frames (from the
generator or from `video_io.iter_video_chunks`) goes through the frozen
codec's encoder (`cvision.projects.codec.code_dataset.encode_stream`) and only its
codes are kept. An hour at 25 fps of 64x64 frames is 1.1 GB of RGB and
11.5 MB of codes (CR 96), so a whole video's codes make one record, and
training reads one video per example like any other dataset.

Layout: an ordinary TFDS directory (`tfds.builder_from_directory`), one
array_record file per video (`codes-<split>.array_record-<i>-of-<n>`), each
holding `codes` `[T, H_c, W_c, N]` (uint8 for K <= 256, zlib-compressed) and
`video_index` (the generator seed, or the file's position in
`--video_files`). Writing is resumable video by video: a file exists only
when complete (written to `.tmp`, then renamed), and a rerun with other
settings into the same directory is refused.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from cvision.projects.codec import code_dataset
from cvision.projects.codec import compression_rate as cr_lib
from cvision.projects.codec import frozen
from data_pipelines import video_io
from data_pipelines.generated import long_world

CODES_KEY = 'codes'
VIDEO_INDEX_KEY = 'video_index'
MANIFEST = 'long_video_manifest.json'
DATASET_NAME = 'codes'
# Generated videos of different splits never share a seed.
SPLIT_SEED_OFFSETS = {'train': 0, 'validation': 1_000_000, 'test': 2_000_000}


@dataclasses.dataclass(frozen=True)
class VideoSource:
  """One long video to encode.

  Attributes:
    index: stored as `video_index` (generator seed or file position).
    num_frames: frames to encode; the stream must hold at least this many.
    chunks: returns a fresh iterator of `[c, H, W, 3] uint8` chunks.
    name: for messages (file path or 'long_world seed S').
  """
  index: int
  num_frames: int
  chunks: Callable[[], Iterator[np.ndarray]]
  name: str


def generated_sources(config: long_world.LongWorldConfig, split: str,
                      num_videos: int, num_frames: int,
                      chunk_frames: int) -> list[VideoSource]:
  """`num_videos` generated walks of `num_frames` for `split`."""
  if split not in SPLIT_SEED_OFFSETS:
    raise ValueError(f'split must be one of {sorted(SPLIT_SEED_OFFSETS)}, '
                     f'got {split!r}.')
  seeds = [SPLIT_SEED_OFFSETS[split] + i for i in range(num_videos)]
  return [VideoSource(
      index=seed, num_frames=num_frames, name=f'long_world seed {seed}',
      chunks=lambda seed=seed: long_world.generate_long_world_chunks(
          config, seed, num_frames, chunk_frames)) for seed in seeds]


def file_sources(paths: Sequence[str], *, size: tuple[int, int],
                 chunk_frames: int, multiple_of: int,
                 max_frames: int | None = None) -> list[VideoSource]:
  """Video files cut to one common length, a multiple of `multiple_of`.

  The length is the shortest file's frame count (from its header), capped by
  `max_frames`, rounded down to whole multiples (task chunks).

  Raises:
    video_io.VideoReadError: a file cannot be opened.
    ValueError: the common length is under one multiple.
  """
  counts = [video_io.probe_video(p).num_frames for p in paths]
  length = min(counts + ([max_frames] if max_frames else []))
  length -= length % multiple_of
  if length <= 0:
    shortest = paths[int(np.argmin(counts))]
    raise ValueError(f'{shortest} has {min(counts)} frames, fewer than one '
                     f'chunk of {multiple_of}.')
  return [VideoSource(
      index=i, num_frames=length, name=path,
      chunks=lambda path=path: video_io.iter_video_chunks(
          path, chunk_frames, size=size, max_frames=length))
          for i, path in enumerate(paths)]


def encode_video(source: VideoSource, encode: code_dataset.EncodeFn,
                 code_dtype) -> np.ndarray:
  """A whole video's codes `[T_c, H_c, W_c, N]`, from streamed chunks.

  Raises:
    ValueError: the stream ended before `source.num_frames` frames.
  """
  pieces = []
  chunks = _counted(source.chunks(), source)
  for codes in code_dataset.encode_stream(chunks, encode):
    pieces.append(np.asarray(codes).astype(code_dtype))
  frames = sum(len(p) for p in pieces)
  codes = np.concatenate(pieces) if pieces else None
  if codes is None or frames < source.num_frames:
    raise ValueError(f'{source.name} gave {frames} frames of codes, '
                     f'{source.num_frames} expected (a header over-counting '
                     'frames? pass a smaller --max_minutes).')
  return codes[:source.num_frames]


def _counted(chunks: Iterable[np.ndarray],
             source: VideoSource) -> Iterator[np.ndarray]:
  """Stops at `source.num_frames`, logging progress every few minutes."""
  seen = 0
  for chunk in chunks:
    chunk = chunk[:source.num_frames - seen]
    if not len(chunk):
      return
    seen += len(chunk)
    if seen // 7500 != (seen - len(chunk)) // 7500:
      logging.info('%s: %d / %d frames encoded.', source.name, seen,
                   source.num_frames)
    yield chunk


def _features(code_shape: Sequence[int], code_dtype):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.features.FeaturesDict({
      CODES_KEY: tfds.features.Tensor(shape=tuple(code_shape),
                                      dtype=np.dtype(code_dtype),
                                      encoding='zlib'),
      VIDEO_INDEX_KEY: np.int64,
  })


def _template(output_dir: str, split: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.core.ShardedFileTemplate(
      data_dir=output_dir,
      template='{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}',
      dataset_name=DATASET_NAME, split=split, filetype_suffix='array_record')


def _check_manifest(output_dir: str, manifest: Mapping[str, Any]) -> None:
  """Refuses to add videos written with other settings."""
  path = os.path.join(output_dir, MANIFEST)
  if os.path.exists(path):
    with open(path) as f:
      existing = json.load(f)
    differing = sorted(k for k in set(existing) | set(manifest)
                       if existing.get(k) != manifest.get(k))
    if differing:
      raise ValueError(
          f'{output_dir} already holds long-video codes written with other '
          f'settings ({", ".join(differing)} differ). Choose another '
          '--output_dir or delete it.')
    return
  os.makedirs(output_dir, exist_ok=True)
  with open(path + '.tmp', 'w') as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
  os.replace(path + '.tmp', path)


def write_long_video_codes(*, output_dir: str,
                           splits: Mapping[str, Sequence[VideoSource]],
                           encode: code_dataset.EncodeFn,
                           code_grid: Sequence[int], num_codebooks: int,
                           codebook_size: int,
                           metadata: Mapping[str, Any]) -> dict[str, int]:
  """Encodes every split's videos, one array_record file per video.

  Args:
    output_dir: the dataset directory.
    splits: split name -> its videos, all of one length.
    encode: `[1, c, H, W, 3] uint8 -> [1, c_c, H_c, W_c, N]` codes (the
      frozen codec's encoder, jitted).
    code_grid: `(H_c, W_c)` of one frame's codes.
    num_codebooks: N.
    codebook_size: K (picks the storage dtype).
    metadata: JSON-able, stored in `metadata.json` and the manifest.

  Returns:
    `{split: videos encoded by this call}` (0 for those already there).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  dtype = cr_lib.code_dtype(codebook_size)
  lengths = {v.num_frames for videos in splits.values() for v in videos}
  if len(lengths) != 1:
    # One feature shape per dataset (and one per batch): write videos of
    # another length to another directory.
    raise ValueError(f'Videos of lengths {sorted(lengths)} frames; one '
                     'dataset holds videos of one length.')
  num_frames = lengths.pop()
  manifest = {
      'splits': {s: [v.index for v in videos] for s, videos in splits.items()},
      'frames': num_frames,
      'code_grid': list(code_grid), 'num_codebooks': num_codebooks,
      'codebook_size': codebook_size,
      **json.loads(json.dumps(dict(metadata))),
  }
  _check_manifest(output_dir, manifest)
  written, split_infos = {}, []
  features = _features((num_frames, *code_grid, num_codebooks), dtype)
  for split, videos in splits.items():
    template = _template(output_dir, split)
    written[split] = 0
    for i in range(jax.process_index(), len(videos), jax.process_count()):
      path = str(template.sharded_filepath(shard_index=i,
                                           num_shards=len(videos)))
      if os.path.exists(path):
        continue
      codes = encode_video(videos[i], encode, dtype)
      writer = array_record_module.ArrayRecordWriter(path + '.tmp',
                                                     'group_size:1')
      try:
        writer.write(features.serialize_example(
            {CODES_KEY: codes, VIDEO_INDEX_KEY: videos[i].index}))
      finally:
        writer.close()
      os.replace(path + '.tmp', path)
      written[split] += 1
      logging.info('Wrote %s video %d/%d (%s): codes %s, %d bytes.', split,
                   i + 1, len(videos), videos[i].name, codes.shape,
                   os.path.getsize(path))
    split_infos.append(tfds.core.SplitInfo(
        name=split, shard_lengths=[1] * len(videos), num_bytes=0,
        filename_template=template))
  code_dataset.finish_dataset(
      output_dir, features, split_infos, manifest,
      description='Neural codes of long continuous videos.')
  return written


def codec_encoder(codec) -> code_dataset.EncodeFn:
  """`[1, c, H, W, 3] uint8 -> [1, c, H_c, W_c, N]` numpy, jitted once."""
  encode = jax.jit(codec.encode)
  return lambda video: np.asarray(encode(video))


def codec_metadata(codec, frame_shape: Sequence[int]
                   ) -> tuple[dict[str, Any], tuple[int, int]]:
  """What a downstream task checks (codec, step, CR), and `(H_c, W_c)`."""
  m = codec.model_config
  grid = cr_lib.code_grid_shape((1, *frame_shape[:2]), m)
  return {
      'codec_workdir': codec.workdir,
      'codec_checkpoint_step': codec.step,
      'num_codebooks': m.num_codebooks,
      'codebook_size': m.codebook_size,
      'frame_shape': list(frame_shape[:2]),
      'compression_rate': cr_lib.compression_rate(
          (1, *frame_shape[:2]), grid, m.num_codebooks, m.codebook_size),
  }, tuple(grid[1:])


def encode_generated(codec, output_dir: str, *, minutes: float,
                     videos: Mapping[str, int],
                     world: long_world.LongWorldConfig = long_world.DEFAULT,
                     encode_chunk_frames: int = 125) -> dict[str, int]:
  """Generated walks of `minutes`, `videos[split]` per split, as codes."""
  metadata, grid = codec_metadata(codec, (world.height, world.width))
  frames = world.frames(minutes)
  splits = {s: generated_sources(world, s, n, frames, encode_chunk_frames)
            for s, n in videos.items() if n > 0}
  metadata.update(source='long_world', long_world=dataclasses.asdict(world),
                  fps=world.fps)
  return write_long_video_codes(
      output_dir=output_dir, splits=splits, encode=codec_encoder(codec),
      code_grid=grid, num_codebooks=metadata['num_codebooks'],
      codebook_size=metadata['codebook_size'], metadata=metadata)


def main(argv):
  del argv
  f = flags.FLAGS
  codec = frozen.load_frozen_codec(f.codec_workdir, with_params=True)
  if f.video_files:
    frame_shape = (f.height, f.width)
    metadata, grid = codec_metadata(codec, frame_shape)
    paths = [p for p in f.video_files.split(',') if p]
    max_frames = int(f.max_minutes * 60 * f.fps) if f.max_minutes else None
    splits = {f.split: file_sources(
        paths, size=frame_shape, chunk_frames=f.encode_chunk_frames,
        multiple_of=f.multiple_of, max_frames=max_frames)}
    metadata.update(source='video_files', fps=f.fps)
    written = write_long_video_codes(
        output_dir=f.output_dir, splits=splits, encode=codec_encoder(codec),
        code_grid=grid, num_codebooks=metadata['num_codebooks'],
        codebook_size=metadata['codebook_size'], metadata=metadata)
  else:
    world = dataclasses.replace(long_world.DEFAULT, height=f.height,
                                width=f.width, fps=f.fps)
    written = encode_generated(
        codec, f.output_dir, minutes=f.minutes, world=world,
        videos={'train': f.train_videos, 'test': f.test_videos},
        encode_chunk_frames=f.encode_chunk_frames)
  logging.info('Done: %s; %d bytes of codes in %s.', written,
               code_dataset.storage_bytes(f.output_dir), f.output_dir)


def _define_flags():
  flags.DEFINE_string('codec_workdir', None, 'A trained codec run.')
  flags.DEFINE_string('output_dir', None, 'The dataset directory to write.')
  flags.DEFINE_float('minutes', 30.0, 'Generated videos: length.')
  flags.DEFINE_integer('train_videos', 6, 'Generated videos: train split.')
  flags.DEFINE_integer('test_videos', 3, 'Generated videos: test split.')
  flags.DEFINE_integer('fps', 25, 'Frames per second: of generated videos; '
                       'of video files, as stored in the metadata (frames '
                       'are not resampled).')
  flags.DEFINE_integer('height', 64, 'Frame height (the codec\'s).')
  flags.DEFINE_integer('width', 64, 'Frame width (the codec\'s).')
  flags.DEFINE_string('video_files', '', 'Comma-separated video files to '
                      'encode instead of generated videos.')
  flags.DEFINE_string('split', 'test', 'Video files: the split they form.')
  flags.DEFINE_float('max_minutes', 0.0, 'Video files: cap on the length '
                     '(0 = the shortest file).')
  flags.DEFINE_integer('multiple_of', 125, 'Video files: length rounded down '
                       'to whole task chunks of this many frames.')
  flags.DEFINE_integer('encode_chunk_frames', 125, 'Frames per encoder call '
                       '(the pixels in memory at once).')
  flags.mark_flags_as_required(['codec_workdir', 'output_dir'])


if __name__ == '__main__':
  _define_flags()
  app.run(main)
