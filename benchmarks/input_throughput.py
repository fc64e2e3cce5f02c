r"""Input pipeline: clips/s delivered to the device from mp4, raw RGB or codes.

  nice -n 10 python benchmarks/input_throughput.py                # 16x64x64
  nice -n 10 python benchmarks/input_throughput.py --size=paper   # 32x256x256
  python benchmarks/input_throughput.py \
      --codes_dir=runs/demo/codec/codes/moving_digits_small  # trained codes

Sources of the same moving-digits clips, each read by the project's input
pipeline (`cvision.core.input_pipeline`: grain shuffle + batch, `--threads`
reader threads, its host and device prefetch, sharded arrays on the device):

  mp4           one H.264 file (crf 18) per clip at the clip's size, decoded
                with PyAV in the reader threads (`data_pipelines.decode_timing.
                decode_clip`: the project's reader, one reused single-threaded
                converter);
  mp4+resize    the same clips stored at 1.25x the side (80 px for 64, 320
                for 256) and resized while decoding to the clip's size, as a
                Kinetics user decodes 320 px files to 256;
  rgb           the TFDS array_record dataset of uint8 frames;
  codes         a code dataset (`--mode=encode`'s format) of the grid and
                dtype of `codec.py:cpu` (64 px) or `codec.py:cr256` (256 px),
                zlib-compressed (`encode.code_storage='raw'`);
  codes (entropy)  the same codes entropy-coded (`code_storage='entropy'`),
                decoded in the reader threads.

Timing: per round, each source in turn gets a fresh iterator, a warm-up
batch, then `host + device prefetch` batches drained (what its buffers held
before the clock starts), then batches for a fixed `--seconds`; clips/s is
clips over that time; the table prints the median over `--rounds`, with the
spread. The iterator is closed before the next source runs. Without
--codes_dir the codes are random integers of the codec's grid and dtype
(written by `code_dataset.write_code_dataset`): reading speed depends on
their shape and dtype, not on what they say (random codes do not shrink
under entropy coding, so their bytes/clip is an upper bound; a trained
codec's are in docs/results/codec.md). Bytes: on disk per clip, and
per clip as an array on the device (what its input bus carries), times the
measured clips/s.
"""
import gc
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import ml_collections
import numpy as np

from benchmarks import rounds as rounds_lib
from cvision.core import input_pipeline
from cvision.core import sharding
from cvision.projects.codec import code_dataset
from cvision.projects.codec import compression_rate
from data_pipelines import build
from data_pipelines import decode_timing
from data_pipelines import sources
from data_pipelines import video_io
from data_pipelines.builders import moving_digits as md_builder
from data_pipelines.generated import moving_digits as md
from experiments.configs import codec as codec_configs

_SIZE = flags.DEFINE_enum('size', 'cpu', ['cpu', 'paper'], 'Clip size.')
_CLIPS = flags.DEFINE_integer('clips', 0, 'Clips (files) per source (0: 256 '
                              'at 64 px, 32 at 256 px).')
_BATCH = flags.DEFINE_integer('batch', 2, 'Global batch size.')
_SECONDS = flags.DEFINE_float('seconds', 8.0, 'Timed seconds per source and '
                              'round.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Timed rounds.')
_THREADS = flags.DEFINE_integer('threads', 2, 'grain reader threads.')
_HOST_PREFETCH = flags.DEFINE_integer('host_prefetch', 8, 'grain prefetch.')
_DEVICE_PREFETCH = flags.DEFINE_integer('device_prefetch', 2, 'Batches in '
                                        'flight to the device.')
_REAL_VIDEO = flags.DEFINE_string(
    'real_video', '', 'A real video file (e.g. opencv-doc\'s vtest.avi, '
    'see docs/benchmarks.md) cut into clips for the `mp4 real` row: camera '
    'footage costs H.264 more bits, hence more decoding, than the '
    'generated digits.')
_WORKDIR = flags.DEFINE_string(
    'workdir', '', 'Where datasets and mp4 files are made (default: a '
    'temporary folder, removed afterwards).')
_CODES_DIR = flags.DEFINE_string(
    'codes_dir', '', 'An existing code dataset (a codec --mode=encode '
    'output) to read instead of random codes.')
_ENTROPY_CODES_DIR = flags.DEFINE_string(
    'entropy_codes_dir', '', 'The same codes written with '
    '--config.encode.code_storage=entropy (default: random codes, '
    'entropy-coded).')

# size: (moving_digits builder config, codec preset of the codes, clips)
SIZES = {
    'cpu': ('small', 'cpu', 256),
    # The `paper` config's 32x256x256 videos with fewer of them: building
    # 512 clips of 6.3 MB is not needed to time reading.
    'paper': (md_builder.MovingDigitsBuilderConfig(
        name='paper_benchmark', description='32 frames of 256x256, few.',
        generator=md.MovingDigitsConfig(num_frames=32, height=256, width=256),
        splits=(('train', 32, 1), ('validation', 1, 2), ('test', 1, 3))),
              'cr256', 32),
}


class Mp4Clips:
  """Random access to video files, decoded (and resized) on every read."""

  def __init__(self, paths, labels, size=None):
    self._paths, self._labels, self._size = list(paths), list(labels), size

  def __len__(self):
    return len(self._paths)

  def __getitem__(self, index):
    video = decode_timing.decode_clip(self._paths[index], 1 << 30, self._size)
    return {'video': video, 'label': np.int64(self._labels[index])}

  def bytes_per_clip(self) -> float:
    return sum(os.path.getsize(p) for p in self._paths) / len(self._paths)


class FirstExamples:
  """The first `count` examples of a random-access source."""

  def __init__(self, source, count):
    self._source, self._count = source, min(count, len(source))

  def __len__(self):
    return self._count

  def __getitem__(self, index):
    if not 0 <= index < self._count:
      raise IndexError(index)
    return self._source[index]


def _bytes_per_clip(dataset_dir: str) -> float:
  """Data-file bytes on disk per example, over all of a TFDS dataset."""
  info = sources.load_builder(
      ml_collections.ConfigDict({'dataset_dir': dataset_dir})).info
  examples = sum(split.num_examples for split in info.splits.values())
  return code_dataset.storage_bytes(dataset_dir) / examples


def _resize(video: np.ndarray, side: int) -> np.ndarray:
  """Frames resized to `side` (PyAV's scaler, as the files are written)."""
  import av  # pylint: disable=g-import-not-at-top
  return np.stack([av.VideoFrame.from_ndarray(f, format='rgb24').reformat(
      width=side, height=side, interpolation='BICUBIC').to_ndarray()
                   for f in video])


def write_mp4s(source, folder: str, side: int | None,
               read_size=None) -> Mp4Clips:
  """One crf-18 H.264 file per clip, at `side` (None: the clip's size)."""
  os.makedirs(folder, exist_ok=True)
  paths, labels = [], []
  for i in range(len(source)):
    example = source[i]
    path = os.path.join(folder, f'clip_{i:05d}.mp4')
    if not os.path.exists(path):
      video = example['video']
      if side is not None:
        video = _resize(video, side)
      # crf 18: visually lossless H.264, what a curated dataset ships.
      video_io.write_video(path, video, crf=18)
    paths.append(path)
    labels.append(int(example['label']))
  return Mp4Clips(paths, labels, read_size)


class RealClips:
  """Consecutive `frames`-frame clips of a real video, looping over it."""

  def __init__(self, path: str, frames: int, count: int, labels, side: int):
    # Read at the files' size: the whole video stays in memory.
    self._video = video_io.read_video(path, size=(side, side))
    self._frames, self._count, self._labels = frames, count, labels

  def __len__(self):
    return self._count

  def __getitem__(self, index):
    starts = len(self._video) - self._frames + 1
    start = (index * self._frames) % starts
    return {'video': self._video[start:start + self._frames],
            'label': self._labels[index]['label']}


def write_random_codes(builder, preset: str, output_dir: str,
                       clips: int, code_storage: str = 'raw') -> str:
  """A code dataset of the first `clips` train clips: random codes."""
  if os.path.exists(os.path.join(output_dir, 'dataset_info.json')):
    return output_dir
  model_config = codec_configs.get_config(preset).model
  shape = builder.info.features['video'].shape
  code_shape = (*compression_rate.code_grid_shape(shape, model_config),
                model_config.num_codebooks)
  dtype = compression_rate.code_dtype(model_config.codebook_size)
  rng = np.random.default_rng(0)

  class Subset:  # write_code_dataset reads `info` and `as_data_source`.
    info = builder.info
    data_dir = builder.data_dir

    @staticmethod
    def as_data_source(split):
      return FirstExamples(builder.as_data_source(split=split), clips)

  code_dataset.write_code_dataset(
      source_builder=Subset, splits=['train'], output_dir=output_dir,
      encode=lambda v: rng.integers(0, model_config.codebook_size,
                                    (len(v), *code_shape)).astype(dtype),
      code_shape=code_shape, code_dtype=dtype,
      metadata={'random_codes_of_preset': preset}, batch_size=8,
      code_storage=code_storage)
  return output_dir


def clips_per_second(source, key: str, mesh) -> float:
  """Clips/s over `--seconds` after a warm-up and a drain; closes the pipe."""
  dataset = input_pipeline.train_dataset(
      source, global_batch_size=_BATCH.value, seed=0, keys=(key, 'label'))
  batches = input_pipeline.train_iterator(
      dataset, start_step=0, sharding=sharding.batch_sharding(mesh),
      num_threads=_THREADS.value, host_prefetch=_HOST_PREFETCH.value,
      device_prefetch=_DEVICE_PREFETCH.value)
  try:
    jax.block_until_ready(next(batches))  # Threads start, first reads.
    # What the buffers hold was read before the clock started: drain it.
    for _ in range(_HOST_PREFETCH.value + _DEVICE_PREFETCH.value):
      jax.block_until_ready(next(batches))
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < _SECONDS.value:
      jax.block_until_ready(next(batches))
      count += 1
    return count * _BATCH.value / (time.perf_counter() - start)
  finally:
    batches.close()
    del batches
    gc.collect()


def run(workdir: str):
  dataset_config, codec_preset, default_clips = SIZES[_SIZE.value]
  clips = _CLIPS.value or default_clips
  builder = build.build_dataset('moving_digits', os.path.join(
      workdir, 'datasets'), config=dataset_config)
  rgb = FirstExamples(builder.as_data_source(split='train'), clips)
  t, side = rgb[0]['video'].shape[:2]
  name = getattr(dataset_config, 'name', dataset_config)
  mp4 = write_mp4s(rgb, os.path.join(workdir, 'mp4', name), None)
  large = side * 5 // 4
  mp4_resize = write_mp4s(rgb, os.path.join(workdir, f'mp4_{large}', name),
                          large, read_size=(side, side))
  real = {}
  if _REAL_VIDEO.value:
    clips_of_real = RealClips(_REAL_VIDEO.value, t, len(rgb), rgb, large)
    real[f'mp4 real {large}->{side} px'] = write_mp4s(
        clips_of_real, os.path.join(workdir, f'mp4_real_{large}', name),
        None, read_size=(side, side))
  codes_dir = _CODES_DIR.value or write_random_codes(
      builder, codec_preset, os.path.join(workdir, 'codes', name), clips)
  entropy_dir = _ENTROPY_CODES_DIR.value or write_random_codes(
      builder, codec_preset, os.path.join(workdir, 'entropy_codes', name),
      clips, code_storage='entropy')
  codes, entropy_codes = (FirstExamples(sources.load_source(
      ml_collections.ConfigDict({'dataset_dir': d}), 'train'), clips)
                          for d in (codes_dir, entropy_dir))

  # The fix in numbers: one clip, the project's reader against a per-frame
  # conversion, interleaved (data_pipelines.decode_timing).
  decoders = rounds_lib.interleaved({
      'per-frame to_ndarray': lambda: decode_timing.decode_per_frame(
          mp4_resize._paths[0], t, (side, side)),  # pylint: disable=protected-access
      'decode_clip (fixed)': lambda: decode_timing.decode_clip(
          mp4_resize._paths[0], t, (side, side))},  # pylint: disable=protected-access
                                    _ROUNDS.value * 2)

  mesh = sharding.make_mesh(ml_collections.ConfigDict(
      {'shape': (-1, 1), 'axes': ('data', 'model')}))
  table = {
      'mp4': (mp4, 'video', mp4.bytes_per_clip()),
      f'mp4 {large}->{side} px': (mp4_resize, 'video',
                                  mp4_resize.bytes_per_clip()),
      **{n: (m, 'video', m.bytes_per_clip()) for n, m in real.items()},
      'rgb (TFDS)': (rgb, 'video', _bytes_per_clip(str(builder.data_dir))),
      'codes': (codes, 'codes', _bytes_per_clip(codes_dir)),
      'codes (entropy)': (entropy_codes, 'codes',
                          _bytes_per_clip(entropy_dir))}
  rates = {name: [] for name in table}
  for _ in range(_ROUNDS.value):
    for name, (source, key, _) in table.items():
      rates[name].append(clips_per_second(source, key, mesh))
  rows = []
  for name, (source, key, disk) in table.items():
    array = source[0][key]
    rows.append({'source': name, 'shape': tuple(array.shape),
                 'dtype': str(array.dtype), 'disk': disk,
                 'device_bytes': array.nbytes + 8,  # + the int64 label.
                 'rate': float(np.median(rates[name])),
                 'spread': f'{min(rates[name]):.3g}-{max(rates[name]):.3g}'})
  return rows, decoders, clips


def main(argv):
  del argv
  print(f'device: {jax.devices()[0].device_kind} ({jax.default_backend()}); '
        f'{os.cpu_count()} CPUs, {_THREADS.value} reader threads, batch '
        f'{_BATCH.value}, {_SECONDS.value:g} s per source and round, '
        f'{_ROUNDS.value} rounds; load {rounds_lib.load()}')
  if _WORKDIR.value:
    rows, decoders, clips = run(_WORKDIR.value)
  else:
    with tempfile.TemporaryDirectory() as workdir:
      rows, decoders, clips = run(workdir)
  print(f'{clips} clips per source')
  print('| one clip, decode + resize | s (median) | spread s |')
  print('|---|---:|---:|')
  for name, timing in decoders.items():
    print(f'| {name} | {timing.median:.4f} | {timing.spread} |')
  # The Kinetics user's decode + resize: real footage where given.
  base = next((r for r in rows if r['source'].startswith('mp4 real')),
              rows[1])
  baseline = base['rate']
  print('| source | clip shape | dtype | bytes/clip on disk | bytes/clip on '
        'device | clips/s (median) | spread | device MB/s at that rate | '
        f'over {base["source"]} |')
  print('|---|---|---|---:|---:|---:|---:|---:|---:|')
  for r in rows:
    print(f"| {r['source']} | {r['shape']} | {r['dtype']} | {r['disk']:,.0f} "
          f"| {r['device_bytes']:,} | {r['rate']:.1f} | {r['spread']} | "
          f"{r['rate'] * r['device_bytes'] / 1e6:.1f} | "
          f"{r['rate'] / baseline:.1f}x |")
  print(f'goal (paper size): codes >= 50x {base["source"]}; load at the '
        f'end {rounds_lib.load()}')


if __name__ == '__main__':
  app.run(main)
