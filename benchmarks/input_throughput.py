r"""Input pipeline: clips/s delivered to the device from mp4, raw RGB or codes.

  python benchmarks/input_throughput.py                  # 16x64x64 clips
  python benchmarks/input_throughput.py --size=paper     # 32x256x256 clips
  python benchmarks/input_throughput.py \
      --codes_dir=runs/demo/codec/codes/moving_digits_small  # trained codes

Three sources of the same moving-digits clips, each read by the project's
input pipeline (`cvision.core.input_pipeline`: grain shuffle + batch,
`--threads` reader threads, then sharded global arrays on the device):

  mp4    one H.264 file per clip, decoded with PyAV in the reader threads
         (what training straight from a video folder costs);
  rgb    the TFDS array_record dataset of uint8 frames (decoded once, when
         the dataset was built: fast to read, but 1 byte per pixel);
  codes  the code dataset of the codec (`--mode=encode`), integer codes,
         zlib-compressed (`code_storage='raw'`);
  codes (entropy)  the same codes entropy-coded over time
         (`code_storage='entropy'`), decoded in the reader threads.

The figure is clips/s through `next(iterator)` with the arrays ready on the
device, after a warm-up; ratios are codes (or rgb) over mp4, in one run.
Without --codes_dir, codes come from a randomly initialised codec of the
`cpu` preset (`paper` size: `cr256`): reading speed does not depend on what
the codes say, only on their shape and dtype.
"""
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

from cvision.projects.codec import code_dataset
from cvision.projects.codec import compression_rate
from cvision.core import sharding
from cvision.projects.codec import task as codec_task
from data_pipelines import build
from cvision.core import input_pipeline
from data_pipelines import video_io
from data_pipelines import sources
from experiments.configs import codec as codec_configs

_SIZE = flags.DEFINE_enum('size', 'cpu', ['cpu', 'paper'], 'Clip size.')
_CLIPS = flags.DEFINE_integer('clips', 256, 'Clips (files) per source.')
_BATCH = flags.DEFINE_integer('batch', 16, 'Global batch size.')
_STEPS = flags.DEFINE_integer('steps', 30, 'Timed batches per source.')
_THREADS = flags.DEFINE_integer('threads', 2, 'grain reader threads.')
_WORKDIR = flags.DEFINE_string(
    'workdir', '', 'Where datasets and mp4 files are made (default: a '
    'temporary folder, removed afterwards).')
_CODES_DIR = flags.DEFINE_string(
    'codes_dir', '', 'An existing code dataset (a codec --mode=encode '
    'output) to read instead of encoding with a random codec.')
_ENTROPY_CODES_DIR = flags.DEFINE_string(
    'entropy_codes_dir', '', 'The same codes written with '
    '--config.encode.code_storage=entropy (default with a random codec: '
    'written here too).')

# size: (moving_digits builder config, codec preset for the random codes)
SIZES = {'cpu': ('small', 'cpu'), 'paper': ('paper', 'cr256')}


class Mp4Clips:
  """Random access to a list of video files, decoded on every read."""

  def __init__(self, paths, labels):
    self._paths, self._labels = list(paths), list(labels)

  def __len__(self):
    return len(self._paths)

  def __getitem__(self, index):
    return {'video': video_io.read_video(self._paths[index]),
            'label': np.int64(self._labels[index])}

  def bytes_per_clip(self) -> float:
    return sum(os.path.getsize(p) for p in self._paths) / len(self._paths)


def _bytes_per_clip(dataset_dir: str) -> float:
  """Data-file bytes on disk per example, over all of a TFDS dataset."""
  info = sources.load_builder(
      ml_collections.ConfigDict({'dataset_dir': dataset_dir})).info
  examples = sum(split.num_examples for split in info.splits.values())
  return code_dataset.storage_bytes(dataset_dir) / examples


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


def write_mp4s(source, folder: str) -> Mp4Clips:
  os.makedirs(folder, exist_ok=True)
  paths, labels = [], []
  for i in range(len(source)):
    example = source[i]
    path = os.path.join(folder, f'clip_{i:05d}.mp4')
    if not os.path.exists(path):
      # crf 18: visually lossless H.264, what a curated dataset ships.
      video_io.write_video(path, example['video'], crf=18)
    paths.append(path)
    labels.append(int(example['label']))
  return Mp4Clips(paths, labels)


def encode_random_codes(builder, preset: str, output_dir: str,
                        clips: int, code_storage: str = 'raw') -> str:
  """A code dataset of the first `clips` train clips, random codec weights."""
  if os.path.exists(os.path.join(output_dir, 'dataset_info.json')):
    return output_dir
  model_config = codec_configs.get_config(preset).model
  model = codec_task.build_model(model_config)
  shape = builder.info.features['video'].shape
  variables = jax.jit(lambda x: model.init(
      {'params': jax.random.key(0), 'vq': jax.random.key(1)}, x))(
          np.zeros((1, *shape), np.float32))
  encode = jax.jit(lambda v: model.apply(
      variables, v.astype(np.float32) / 255.0, method=model.encode))
  code_shape = (*compression_rate.code_grid_shape(shape, model_config),
                model_config.num_codebooks)
  dtype = compression_rate.code_dtype(model_config.codebook_size)

  class Subset:  # write_code_dataset reads `info` and `as_data_source`.
    info = builder.info
    data_dir = builder.data_dir

    @staticmethod
    def as_data_source(split):
      return FirstExamples(builder.as_data_source(split=split), clips)

  code_dataset.write_code_dataset(
      source_builder=Subset, splits=['train'], output_dir=output_dir,
      encode=lambda v: np.asarray(encode(v)), code_shape=code_shape,
      code_dtype=dtype, metadata={'random_codec_preset': preset},
      batch_size=8, code_storage=code_storage)
  return output_dir


def clips_per_second(source, key: str, batch_size: int, steps: int,
                     mesh) -> float:
  dataset = input_pipeline.train_dataset(
      source, global_batch_size=batch_size, seed=0, keys=(key, 'label'))
  batches = input_pipeline.train_iterator(
      dataset, start_step=0, sharding=sharding.batch_sharding(mesh),
      num_threads=_THREADS.value)
  jax.block_until_ready(next(batches))  # Warm-up: threads, first reads.
  start = time.perf_counter()
  for _ in range(steps):
    batch = next(batches)
  jax.block_until_ready(batch)
  return steps * batch_size / (time.perf_counter() - start)


def run(workdir: str) -> list[dict]:
  dataset_config, codec_preset = SIZES[_SIZE.value]
  builder = build.build_dataset('moving_digits', os.path.join(
      workdir, 'datasets'), config=dataset_config)
  rgb = FirstExamples(builder.as_data_source(split='train'), _CLIPS.value)
  mp4 = write_mp4s(rgb, os.path.join(workdir, 'mp4', dataset_config))
  codes_dir = _CODES_DIR.value or encode_random_codes(
      builder, codec_preset, os.path.join(workdir, 'codes', dataset_config),
      _CLIPS.value)
  entropy_dir = _ENTROPY_CODES_DIR.value or encode_random_codes(
      builder, codec_preset, os.path.join(
          workdir, 'entropy_codes', dataset_config), _CLIPS.value, 'entropy')
  codes, entropy_codes = (FirstExamples(sources.load_source(
      ml_collections.ConfigDict({'dataset_dir': d}), 'train'), _CLIPS.value)
                          for d in (codes_dir, entropy_dir))

  mesh = sharding.make_mesh(ml_collections.ConfigDict(
      {'shape': (-1, 1), 'axes': ('data', 'model')}))
  rows = []
  for name, source, key, per_clip in (
      ('mp4', mp4, 'video', mp4.bytes_per_clip()),
      ('rgb', rgb, 'video', _bytes_per_clip(str(builder.data_dir))),
      ('codes', codes, 'codes', _bytes_per_clip(codes_dir)),
      ('codes (entropy)', entropy_codes, 'codes',
       _bytes_per_clip(entropy_dir))):
    rate = clips_per_second(source, key, _BATCH.value, _STEPS.value, mesh)
    rows.append({'source': name, 'shape': tuple(source[0][key].shape),
                 'dtype': str(source[0][key].dtype), 'bytes': per_clip,
                 'clips_per_s': rate})
  return rows


def main(argv):
  del argv
  if _WORKDIR.value:
    rows = run(_WORKDIR.value)
  else:
    with tempfile.TemporaryDirectory() as workdir:
      rows = run(workdir)
  print(f'device: {jax.devices()[0].device_kind} ({jax.default_backend()}); '
        f'{os.cpu_count()} CPUs, {_THREADS.value} reader threads, batch '
        f'{_BATCH.value}, {_CLIPS.value} clips')
  mp4 = rows[0]['clips_per_s']
  print('source | clip shape | dtype | bytes/clip on disk | clips/s | '
        'over mp4')
  for r in rows:
    print(f"{r['source']} | {r['shape']} | {r['dtype']} | {r['bytes']:,.0f} "
          f"| {r['clips_per_s']:.1f} | {r['clips_per_s'] / mp4:.1f}x")


if __name__ == '__main__':
  app.run(main)
