r"""Train steps/s with the host waiting on every step against steps in flight.

`train.max_steps_in_flight=0` makes the host wait for each step's metrics
before it dispatches the next (how a loop that reads the loss every step
runs); the default 1 and larger values let dispatch run that many steps
ahead, overlapping the input pipeline and the Python loop with compute,
with the metrics kept on device until the log step. The same run (a preset
with short steps, where the host's share matters most) each way, in
interleaved repeats; the figure is the loop's median steps/s after its
first logged interval.

  python benchmarks/steps_in_flight.py --steps=240 --repeats=3
"""
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from benchmarks import rounds

_STEPS = flags.DEFINE_integer('steps', 240, 'Train steps per run.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Runs of each, interleaved.')
_IN_FLIGHT = flags.DEFINE_list('in_flight', ['0', '1', '4'],
                               'train.max_steps_in_flight values compared.')
_CONFIG = flags.DEFINE_string(
    'config', 'experiments/configs/autoencoder.py:tiny',
    'A preset with short steps.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Holds (or gets) the tiny '
                                'moving-digits dataset; default: a temp dir.')
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(in_flight: int, workdir: str, data_dir: str) -> float:
  command = [sys.executable, os.path.join(_ROOT, 'experiments', 'main.py'),
             f'--config={_CONFIG.value}', f'--workdir={workdir}',
             f'--config.data.data_dir={data_dir}',
             f'--config.train.steps={_STEPS.value}',
             f'--config.train.log_every={max(1, _STEPS.value // 8)}',
             f'--config.train.checkpoint_every={_STEPS.value}',
             f'--config.train.max_steps_in_flight={in_flight}']
  done = subprocess.run(command, cwd=_ROOT, capture_output=True, text=True,
                        check=False)
  if done.returncode:
    raise RuntimeError(f'max_steps_in_flight={in_flight} failed:\n'
                       f'{done.stderr[-3000:]}')
  return rounds.loop_steps_per_s(workdir)


def main(argv):
  del argv
  from data_pipelines import build  # pylint: disable=g-import-not-at-top
  values = [int(v) for v in _IN_FLIGHT.value]
  with tempfile.TemporaryDirectory() as tmp:
    data_dir = _DATA_DIR.value or os.path.join(tmp, 'data')
    build.build_dataset('moving_digits', data_dir, config='tiny')
    start_load = rounds.load()
    rates = {v: [] for v in values}
    for r in range(_REPEATS.value):
      for v in values:
        rates[v].append(_run(v, os.path.join(tmp, f'{v}_{r}'), data_dir))
  base = statistics.median(rates[values[0]])
  print(f'{_CONFIG.value}, {_STEPS.value} steps, load {start_load} -> '
        f'{rounds.load()}')
  print('| train.max_steps_in_flight | steps/s (median) | runs | '
        f'over {values[0]} |')
  print('|---:|---:|---|---:|')
  for v in values:
    median = statistics.median(rates[v])
    print(f'| {v} | {median:.2f} | '
          + ', '.join(f'{x:.2f}' for x in rates[v])
          + f' | {median / base:.2f}x |')


if __name__ == '__main__':
  app.run(main)
