r"""Pixels, neural codes or the MPEG stream: one table of the three routes.

  python experiments/three_routes.py --out=runs/three_routes \
      --runs=runs/s3d_rgb,runs/s3d_codes,runs/s3d_codes_motion,runs/mpeg \
      [--eval_split=test] [--measure_input_batches=20]

Gathers, for each run directory given (an S3D, collaborative-memory or MPEG
model run of `experiments/main.py`), what its own files recorded:

| column              | read from                                          |
|---------------------|----------------------------------------------------|
| top-1, 1 / 4 clips  | `eval/s3d_<split>.json` rows (S3D `--mode=eval`);  |
|                     | `eval/collab_memory_<split>.json` (its eval clips); |
|                     | `eval/mpeg_stm_<split>.json` (whole GOP sequence, |
|                     | shown as 1 clip)                                   |
| bytes / video       | the files of the dataset the run read (its         |
|                     | `config.json`'s `data`), over every split's videos;|
|                     | and its payload (the records' own bytes), without  |
|                     | array_record's block padding                       |
| input examples/s    | `eval/input_rate.json`, written here by            |
|                     | `--measure_input_batches` (the run's training      |
|                     | input pipeline to the device, no model)            |
| train step (ms)     | `metrics.jsonl`: the loop's median steps/s after   |
|                     | its first logged interval (compile), input waits   |
|                     | included                                           |
| energy / video (uJ) | `eval/mpeg_stm_<split>.json` (MPEG route only)     |
| one-off build (s)   | codes: the codec run's training loop time, from    |
|                     | its `metrics.jsonl`, plus `--mode=encode`'s time   |
|                     | (`encode_summary.json`); MPEG: the dataset build   |
|                     | (`build_seconds` in its `metadata.json`)           |

A cell whose source is missing shows '-' and the row's notes say why. Writes
`OUT/three_routes_<split>.{md,json,png}`: the table and a plot of top-1
against bytes per video and against train-step time.
"""
from __future__ import annotations

import glob
import json
import os
import statistics
import sys
import time
from typing import Any, Mapping, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # pylint: disable=g-import-not-at-top

from experiments import user_errors

ROUTES = {'rgb': 'pixels', 'codes': 'neural codes',
          'reconstructions': 'decoded codes', 'mpeg': 'MPEG stream'}
MODELS = {'s3d_classification': 'S3D', 'collab_memory': 'S3D + CM',
          'mpeg_stm': 'STM'}
INPUT_RATE_FILE = 'input_rate.json'
TABLE_CLIPS = (1, 4)


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def run_config(workdir: str) -> dict[str, Any]:
  """The run's `config.json` (written when its training started)."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found: {workdir!r} is not a trained '
                            'cvision run.')
  config = _read_json(path)
  if config.get('task') not in MODELS:
    raise ValueError(f'{workdir} is a {config.get("task")!r} run; the routes '
                     f'table reads runs of {sorted(MODELS)}.')
  return config


def route_of(config: Mapping[str, Any]) -> str:
  """'rgb', 'codes', 'reconstructions' or 'mpeg'."""
  if config['task'] == 'mpeg_stm':
    return 'mpeg'
  return config.get('input', 'rgb')


# ---------------------------------------------------------------------------
# Bytes on disk.


def dataset_directory(data: Mapping[str, Any]) -> str:
  """The TFDS directory `config.data` names, without building anything."""
  if data.get('dataset_dir'):
    return data['dataset_dir']
  variant = dict(data.get('builder_kwargs') or {}).get('config', '')
  pattern = os.path.join(data.get('data_dir', ''), data.get('name', ''),
                         variant, '*', 'dataset_info.json')
  # TFDS keeps one folder per version; the newest is what a build reads.
  found = sorted(glob.glob(pattern),
                 key=lambda p: [int(v) if v.isdigit() else v for v in
                                os.path.basename(os.path.dirname(p))
                                .split('.')])
  if not found:
    raise FileNotFoundError(f'No dataset at {pattern}.')
  return os.path.dirname(found[-1])


def bytes_per_video(dataset_dir: str) -> dict[str, Any]:
  """Bytes of every split's files on disk, per example, and the counts.

  The data files are `<name>-<split>.*` (TFDS); the metadata files are left
  out. Sizes are the files' own, array_record padding included: what the
  dataset costs on disk. The payload beside it is the serialised examples'
  own bytes, read back from the files (TFDS `numBytes` cannot serve: the
  code datasets record their file sizes there).
  """
  info = _read_json(os.path.join(dataset_dir, 'dataset_info.json'))
  total_bytes, payload, total_videos = 0, 0, 0
  for split in info.get('splits', []):
    files = glob.glob(os.path.join(
        dataset_dir, f'{info["name"]}-{split["name"]}.*'))
    total_bytes += sum(os.path.getsize(f) for f in files)
    payload += sum(_record_bytes(f) for f in files)
    total_videos += sum(int(n) for n in split.get('shardLengths', []))
  if not total_videos:
    raise ValueError(f'{dataset_dir}: dataset_info.json records no examples.')
  return {'bytes_per_video': total_bytes / total_videos,
          # array_record pads its files to whole blocks, which dominates
          # small shards (the tiny code dataset's 8 videos per shard): the
          # records themselves tell the encodings apart where files cannot.
          'payload_bytes_per_video': payload / total_videos,
          'dataset_bytes': total_bytes, 'num_videos': total_videos}


def _record_bytes(path: str) -> int:
  """The summed lengths of the records of one array_record file."""
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  reader = array_record_module.ArrayRecordReader(path)
  try:
    return sum(len(r) for r in reader.read_all())
  finally:
    reader.close()


# ---------------------------------------------------------------------------
# Times.


def train_step_seconds(workdir: str) -> tuple[float | None, str]:
  """The median seconds per step of the run's loop, and a note."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.isfile(path):
    return None, 'no metrics.jsonl'
  with open(path) as f:
    rates = [r['steps_per_sec'] for r in map(json.loads, f)
             if r.get('split') == 'train' and r.get('steps_per_sec')]
  if not rates:
    return None, 'no steps/s logged'
  if len(rates) == 1:
    return 1.0 / rates[0], 'one logged interval: compile included'
  return 1.0 / statistics.median(rates[1:]), ''


def loop_seconds(workdir: str) -> float | None:
  """Seconds a run's training loop took, summed from its logged rates."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.isfile(path):
    return None
  # Each logged rate covers the steps since the row before (the first one
  # since step 0, compile included). Rows of a run resumed from an earlier
  # checkpoint, which repeat steps, start a new count without their first
  # interval, whose start is not logged.
  seconds, last = 0.0, 0
  with open(path) as f:
    for r in map(json.loads, f):
      if r.get('split') != 'train' or not r.get('steps_per_sec'):
        continue
      if r['step'] > last:
        seconds += (r['step'] - last) / r['steps_per_sec']
      last = r['step']
  return seconds or None


def codec_workdir(config: Mapping[str, Any]) -> str:
  """The codec run whose codes a run read ('' if none is named)."""
  workdir = dict(config.get('codec') or {}).get('workdir', '')
  if workdir:
    return workdir
  metadata = os.path.join(config['data'].get('dataset_dir', ''),
                          'metadata.json')
  if os.path.isfile(metadata):
    return _read_json(metadata).get('codec_workdir', '')
  return ''


def measure_input_rate(workdir: str, num_batches: int) -> dict[str, Any]:
  """Examples/s of the run's training input pipeline onto the devices.

  Builds the run's task (for its input keys; codes read the frozen codec's
  metadata only through it) and its training batches exactly as the trainer
  does, and times `num_batches` after the first. Writes
  `WORKDIR/eval/input_rate.json`.
  """
  # pylint: disable=g-import-not-at-top
  import jax
  import ml_collections
  import numpy as np
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  from cvision import projects
  from cvision.core import input_pipeline
  from data_pipelines import sources
  # pylint: enable=g-import-not-at-top
  config = ml_collections.ConfigDict(run_config(workdir))
  task = projects.build_task(config)
  frames = config.data.train_clip_frames
  dataset = input_pipeline.train_dataset(
      sources.load_source(config.data, config.data.train_split),
      global_batch_size=config.data.batch_size, seed=config.seed,
      keys=task.input_keys,
      preprocess=(input_pipeline.random_temporal_crop(frames, task.time_keys)
                  if frames else None))
  sharding = NamedSharding(Mesh(np.asarray(jax.devices()), ('data',)),
                           P('data'))
  batches = input_pipeline.train_iterator(
      dataset, start_step=0, sharding=sharding,
      num_threads=config.data.num_threads)
  jax.block_until_ready(next(batches))  # Threads and buffers start here.
  start = time.perf_counter()
  for _ in range(num_batches):
    jax.block_until_ready(next(batches))
  seconds = time.perf_counter() - start
  rate = {'examples_per_s': num_batches * config.data.batch_size / seconds,
          'num_batches': num_batches, 'batch_size': config.data.batch_size,
          'device': f'{jax.device_count()} {jax.default_backend()}'}
  out_dir = os.path.join(workdir, 'eval')
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, INPUT_RATE_FILE), 'w') as f:
    json.dump(rate, f, indent=2)
  return rate


# ---------------------------------------------------------------------------
# One run's row.


def _accuracy(workdir: str, task: str, split: str
              ) -> tuple[dict[int, float], dict[str, Any], list[str]]:
  """Top-1 by number of clips, the eval file's contents, notes."""
  name = {'s3d_classification': 's3d', 'collab_memory': 'collab_memory',
          'mpeg_stm': 'mpeg_stm'}[task]
  path = os.path.join(workdir, 'eval', f'{name}_{split}.json')
  if not os.path.isfile(path):
    return {}, {}, [f'not evaluated on {split} (no eval/{name}_{split}.json)']
  result = _read_json(path)
  if task == 's3d_classification':
    return ({int(r['num_clips']): r['top1'] for r in result['rows']
             if 'top1' in r}, result, [])
  if task == 'collab_memory':
    clips = int(result.get('eval_clips', 0))
    if not clips:
      return {}, result, ['CM eval row without its number of clips']
    return {clips: result['top1']}, result, [f'CM evaluated on {clips} clips']
  return {1: result['top1']}, result, ['MPEG: the whole GOP sequence']


def _recorded_seconds(path: str, key: str) -> float | None:
  if not os.path.isfile(path):
    return None
  return _read_json(path).get(key)


def build_seconds(config: Mapping[str, Any], route: str,
                  dataset_dir: str | None) -> tuple[float | None, str]:
  """The one-off cost of the run's dataset, and a note on what it holds.

  Codes: the codec's training loop plus `--mode=encode` (its
  `encode_summary.json`). MPEG: the `mpeg_gops` build (encoding to MPEG-4
  and extraction; `build_seconds` in the dataset's `metadata.json`).
  Pixels: none (the frames are the source).
  """
  if route == 'mpeg':
    seconds = dataset_dir and _recorded_seconds(
        os.path.join(dataset_dir, 'metadata.json'), 'build_seconds')
    return (seconds, 'build: MPEG-4 encoding and extraction') if seconds else (
        None, 'MPEG build time not recorded (built before it was)')
  if route not in ('codes', 'reconstructions'):
    return None, ''
  codec = codec_workdir(config)
  training = loop_seconds(codec) if codec else None
  if not training:
    return None, 'codec training time unknown'
  encoding = dataset_dir and _recorded_seconds(
      os.path.join(dataset_dir, 'encode_summary.json'), 'encode_seconds')
  if not encoding:
    return training, 'build: codec training only, encoding not recorded'
  return training + encoding, (f'build: codec training {training:.0f} s + '
                               f'encoding {encoding:.0f} s')


def gather_run(workdir: str, split: str) -> dict[str, Any]:
  """The table row of one run (values in base units, None if unknown)."""
  config = run_config(workdir)
  route = route_of(config)
  top1, result, notes = _accuracy(workdir, config['task'], split)
  row = {'run': os.path.basename(os.path.normpath(workdir)),
         'workdir': workdir, 'route': route, 'model': MODELS[config['task']],
         'top1': {str(k): v for k, v in sorted(top1.items())},
         'bytes_per_video': None, 'payload_bytes_per_video': None,
         'input_examples_per_s': None,
         'train_step_s': None, 'energy_j': result.get('energy_j'),
         'build_s': None}
  try:
    row['dataset_dir'] = dataset_directory(config['data'])
    row.update(bytes_per_video(row['dataset_dir']))
  except (FileNotFoundError, ValueError, KeyError) as e:
    notes.append(f'dataset bytes unknown ({e})')
  rate_path = os.path.join(workdir, 'eval', INPUT_RATE_FILE)
  if os.path.isfile(rate_path):
    row['input_examples_per_s'] = _read_json(rate_path)['examples_per_s']
  else:
    notes.append('input rate not measured')
  row['train_step_s'], step_note = train_step_seconds(workdir)
  if step_note:
    notes.append(step_note)
  row['build_s'], build_note = build_seconds(config, route,
                                             row.get('dataset_dir'))
  if build_note:
    notes.append(build_note)
  row['notes'] = notes
  return row


# ---------------------------------------------------------------------------
# The table and the plot.


def _cell(value: float | None, fmt: str, scale: float = 1.0) -> str:
  return '-' if value is None else format(value * scale, fmt)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
  lines = ['| run | route | model | '
           + ' | '.join(f'top-1 {n} clip{"s" * (n > 1)} (%)'
                        for n in TABLE_CLIPS)
           + ' | bytes / video on disk | payload bytes / video | '
           'input examples/s | train step (ms) | energy / video (uJ) | '
           'one-off build (s) | notes |',
           '|---|---|---|' + '---:|' * (len(TABLE_CLIPS) + 6) + '---|']
  for r in rows:
    accuracy = [_cell(r['top1'].get(str(n)), '.1f', 100) for n in TABLE_CLIPS]
    lines.append(
        f"| {r['run']} | {ROUTES[r['route']]} | {r['model']} | "
        + ' | '.join(accuracy) + ' | '
        f"{_cell(r['bytes_per_video'], ',.0f')} | "
        f"{_cell(r['payload_bytes_per_video'], ',.0f')} | "
        f"{_cell(r['input_examples_per_s'], '.1f')} | "
        f"{_cell(r['train_step_s'], '.1f', 1e3)} | "
        f"{_cell(r['energy_j'], '.1f', 1e6)} | "
        f"{_cell(r['build_s'], '.0f')} | {'; '.join(r['notes'])} |")
  return '\n'.join(lines)


def best_top1(row: Mapping[str, Any]) -> float | None:
  """The plotted accuracy: 1 clip, else the run's only figure."""
  top1 = row['top1']
  return top1.get('1', next(iter(top1.values()), None))


def plot(rows: Sequence[Mapping[str, Any]], path: str, title: str) -> None:
  """Top-1 against bytes per video and against train-step time."""
  # A Figure, not pyplot: no display needed, and the caller's backend is
  # left as it was.
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  fig = figure.Figure(figsize=(10, 5))
  axes = fig.subplots(1, 2)
  for ax, key, scale, label in (
      (axes[0], 'bytes_per_video', 1.0, 'bytes on disk per video'),
      (axes[1], 'train_step_s', 1e3, 'train step (ms)')):
    for r in rows:
      y = best_top1(r)
      if r[key] is None or y is None:
        continue
      ax.scatter(r[key] * scale, 100 * y,
                 label=f"{r['run']} ({ROUTES[r['route']]})")
    ax.set_xscale('log')
    ax.set_xlabel(label)
    ax.set_ylabel('top-1, 1 clip (%)')
    ax.grid(True, alpha=0.3)
  handles, labels = axes[0].get_legend_handles_labels()
  if handles:
    fig.legend(handles, labels, loc='lower center', ncol=3, fontsize=7)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout(rect=(0, 0.15, 1, 1))
  fig.savefig(path, dpi=120)


def gather(workdirs: Sequence[str], out_dir: str,
           split: str = 'test') -> dict[str, Any]:
  """Rows of every run in `workdirs`; writes the table, JSON and plot."""
  if not workdirs:
    raise ValueError('--runs is empty: name the run directories to compare.')
  rows = [gather_run(w, split) for w in workdirs]
  table = format_table(rows)
  os.makedirs(out_dir, exist_ok=True)
  base = os.path.join(out_dir, f'three_routes_{split}')
  with open(base + '.md', 'w') as f:
    f.write(table + '\n')
  with open(base + '.json', 'w') as f:
    json.dump({'split': split, 'rows': rows}, f, indent=2)
  plot(rows, base + '.png', f'Three routes on {split}')
  return {'rows': rows, 'table': table, 'plot': base + '.png'}


_RUNS = flags.DEFINE_list('runs', [], 'Run directories to compare.')
_OUT = flags.DEFINE_string('out', None, 'Where the table and plot go.')
_SPLIT = flags.DEFINE_string('eval_split', 'test', 'The evaluated split.')
_MEASURE = flags.DEFINE_integer(
    'measure_input_batches', 0, '> 0: first time this many batches of each '
    "run's training input pipeline (eval/input_rate.json).")


def main(argv):
  del argv
  for workdir in _RUNS.value:
    if _MEASURE.value > 0:
      measure_input_rate(workdir, _MEASURE.value)
  result = gather(_RUNS.value, _OUT.value, _SPLIT.value)
  print(result['table'])
  print(f"Plot: {result['plot']}")


if __name__ == '__main__':
  flags.mark_flag_as_required('out')
  user_errors.run(main)
