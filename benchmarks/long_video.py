r"""An hour of video at 25 fps on one small machine: the past-future task.

  python benchmarks/long_video.py --codec_workdir=runs/codec \
      --workdir=runs/pf/bench_1h

1. Encodes one generated 1-hour walk (90,000 frames of 64x64 at 25 fps) into
   codes, chunk by chunk (`cvision/projects/codec/long_video_codes.py`; skipped when
   `--workdir` already holds it), in a child process.
2. For each memory (slot, lstm, none), in a child process of its own: builds
   the run as `experiments/main.py` does (`cvision.core.run_setup.setup`, the
   core's train and eval steps, the grain input pipeline reading the codes
   from disk), then times `--train_steps` updates on the whole video (the
   first, which compiles, apart) and two evaluations of it.

Per phase it reports: wall time per video (train step, evaluation), peak
host RSS of the child process (its whole life: imports, compilation, input
pipeline), the compiled step's memory as XLA plans it (arguments + outputs +
temporaries; on a GPU also the device's peak bytes in use), and the bytes of
codes a step reads (the video's record on disk) against its raw RGB size.
Random weights: speed and memory do not depend on training.

On a 2-core machine with 24 GiB (the CI size) the figures in
docs/benchmarks.md came from this command.
"""
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

_CODEC = flags.DEFINE_string('codec_workdir', '', 'The trained codec run '
                             '(needed to encode the video).')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Codes and runs go here.')
_MINUTES = flags.DEFINE_float('minutes', 60.0, 'Video length.')
_MEMORIES = flags.DEFINE_list('memories', ['slot', 'lstm', 'none'],
                              'Memories to measure.')
_TRAIN_STEPS = flags.DEFINE_integer('train_steps', 2, 'Timed updates after '
                                    'the first (compiling) one.')
_PHASE = flags.DEFINE_string('phase', '', 'Internal: run one child phase.')
flags.mark_flag_as_required('workdir')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FPS = 25
SPLIT = 'test'  # The one video is the only split; it is trained on too.


def _codes_dir() -> str:
  return os.path.join(_WORKDIR.value, 'codes')


def _peak_rss_gib() -> float:
  """This process's peak resident memory so far (Linux: KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _run_child(phase: str) -> dict:
  """Runs this script for one phase; returns the JSON it prints last."""
  args = [sys.executable, os.path.abspath(__file__), f'--phase={phase}',
          f'--workdir={_WORKDIR.value}', f'--minutes={_MINUTES.value}',
          f'--train_steps={_TRAIN_STEPS.value}',
          f'--codec_workdir={_CODEC.value}']
  proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True,
                        check=False)
  if proc.returncode:
    raise RuntimeError(f'Phase {phase} failed ({proc.returncode}):\n'
                       f'{proc.stderr[-3000:]}')
  return json.loads([l for l in proc.stdout.splitlines()
                     if l.startswith('{')][-1])


def _encode() -> dict:
  """Phase 1, in the child: the video as codes (resumable)."""
  # pylint: disable=g-import-not-at-top
  from cvision.projects.codec import frozen
  from cvision.projects.codec import long_video_codes
  if not _CODEC.value:
    raise app.UsageError('--codec_workdir is needed to encode the video.')
  start = time.time()
  codec = frozen.load_frozen_codec(_CODEC.value, with_params=True)
  long_video_codes.encode_generated(codec, _codes_dir(),
                                    minutes=_MINUTES.value,
                                    videos={SPLIT: 1})
  return {'wall_s': time.time() - start, 'peak_rss_gib': _peak_rss_gib()}


def _measure(memory: str) -> dict:
  """Phase 2, in the child: train and eval steps of one memory."""
  # pylint: disable=g-import-not-at-top
  import jax
  import numpy as np
  from cvision.core import sharding
  from cvision.core import train_step as train_step_lib
  from cvision import projects
  from cvision.core import evaluation
  from cvision.core import input_pipeline
  from cvision.core import run_setup
  from experiments.configs import past_future as configs

  config = configs.get_config(memory)
  config.past_future.video_frames = int(_MINUTES.value * 60 * FPS)
  config.data.dataset_dir = _codes_dir()
  config.data.train_split = config.data.eval_split = SPLIT
  config.train.steps = _TRAIN_STEPS.value + 1
  workdir = os.path.join(_WORKDIR.value, f'run_{memory}')
  task = projects.build_task(config)
  run = run_setup.setup(task, config, workdir, restore=False)
  step_fn = train_step_lib.make_train_step(
      run.task, run.tx, state_shardings=run.state_shardings, mesh=run.mesh)
  eval_fn = train_step_lib.make_eval_step(
      run.task.evaluate, state_shardings=run.state_shardings, mesh=run.mesh)
  batches = input_pipeline.train_iterator(
      input_pipeline.train_dataset(
          run.train_source, global_batch_size=1, seed=0,
          keys=run.task.input_keys),
      start_step=0, sharding=sharding.batch_sharding(run.mesh),
      num_threads=1, host_prefetch=1, device_prefetch=1)

  def timed_step():
    start = time.time()
    batch = next(batches)  # Read from disk and decoded, as in training.
    run.state, metrics = step_fn(run.state, batch)
    jax.block_until_ready(metrics)
    return time.time() - start, batch

  first_s, batch = timed_step()
  compiled = step_fn.lower(run.state, batch).compile().memory_analysis()
  times = [timed_step()[0] for _ in range(_TRAIN_STEPS.value)]
  eval_times = []
  for _ in range(2):  # The first compiles.
    start = time.time()
    metrics = evaluation.evaluate_split(run, eval_fn, SPLIT)
    eval_times.append(time.time() - start)
  planned = (compiled.argument_size_in_bytes + compiled.output_size_in_bytes
             + compiled.temp_size_in_bytes) if compiled else float('nan')
  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  record = os.path.join(_codes_dir(), f'codes-{SPLIT}.array_record-00000-'
                        'of-00001')
  codes_shape = batch['codes'].shape
  return {
      'memory': memory, 'codes_shape': list(codes_shape),
      'first_step_s': first_s, 'train_step_s': float(np.median(times)),
      'eval_first_s': eval_times[0], 'eval_s': eval_times[1],
      'eval_accuracy': metrics['accuracy'],
      'planned_train_step_bytes': planned,
      'device_peak_bytes': (stats or {}).get('peak_bytes_in_use'),
      'record_bytes': os.path.getsize(record),
      'device': f'{jax.default_backend()} x{jax.device_count()}',
      'peak_rss_gib': _peak_rss_gib(),
  }


def _table(encode: dict, rows: list[dict]) -> str:
  frames = int(_MINUTES.value * 60 * FPS)
  raw = frames * 64 * 64 * 3
  lines = [
      f'Video: {frames} frames of 64x64 at {FPS} fps ({_MINUTES.value:g} '
      f'min), raw RGB {raw / 1e9:.2f} GB; codes {rows[0]["codes_shape"][1:]} '
      f'uint8, {rows[0]["record_bytes"] / 1e6:.1f} MB on disk '
      f'({raw / rows[0]["record_bytes"]:.0f}x smaller). Device: '
      f'{rows[0]["device"]}.',
      '',
      'Each step reads one whole video: its record, '
      f'{rows[0]["record_bytes"] / 1e6:.1f} MB of zlib-compressed codes, '
      f'for {raw / 1e9:.2f} GB of raw RGB.',
      '',
      '| phase | memory | wall per video (s) | first call (s) | peak host '
      'RSS (GiB) | XLA plan (MiB) |',
      '|---|---|---:|---:|---:|---:|']
  if not encode.get('skipped'):
    lines.append(f'| encode (generate + codec) | - | {encode["wall_s"]:.0f} | '
                 f'- | {encode["peak_rss_gib"]:.2f} | - |')
  for r in rows:
    device = (f' (peak {r["device_peak_bytes"] / 2**20:.0f})'
              if r['device_peak_bytes'] else '')
    lines.append(
        f'| train step | {r["memory"]} | {r["train_step_s"]:.1f} | '
        f'{r["first_step_s"]:.0f} | {r["peak_rss_gib"]:.2f} | '
        f'{r["planned_train_step_bytes"] / 2**20:.0f}{device} |')
    lines.append(f'| evaluation | {r["memory"]} | {r["eval_s"]:.1f} | '
                 f'{r["eval_first_s"]:.0f} | (same process) | - |')
  return '\n'.join(lines)


def main(argv):
  del argv
  if _PHASE.value:
    result = _encode() if _PHASE.value == 'encode' else _measure(_PHASE.value)
    print(json.dumps(result), flush=True)
    return
  os.makedirs(_WORKDIR.value, exist_ok=True)
  if os.path.exists(os.path.join(_codes_dir(), 'dataset_info.json')):
    encode = {'skipped': True}
  else:
    encode = _run_child('encode')
  rows = [_run_child(memory) for memory in _MEMORIES.value]
  table = _table(encode, rows)
  with open(os.path.join(_WORKDIR.value, 'long_video.json'), 'w') as f:
    json.dump({'encode': encode, 'rows': rows}, f, indent=2)
  with open(os.path.join(_WORKDIR.value, 'long_video.md'), 'w') as f:
    f.write(table + '\n')
  print(table)


if __name__ == '__main__':
  app.run(main)
