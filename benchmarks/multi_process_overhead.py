r"""Train steps/s of 1 process x 8 CPU devices against 2 processes x 4.

The same run (the tiny autoencoder, the same batches and mesh) both ways;
the difference is what the cross-process collectives (gloo) and the per-host
input assembly cost. It shows the overhead of the multi-host code path on
one machine, not a speed anyone would train at.

  python benchmarks/multi_process_overhead.py --steps=60 --repeats=2
"""
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from benchmarks import rounds
from cvision.core import local_cluster

_STEPS = flags.DEFINE_integer('steps', 60, 'Train steps per run.')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Runs of each, interleaved.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Holds (or gets) the tiny '
                                'moving-digits dataset; default: a temp dir.')
_CONFIG = 'experiments/configs/autoencoder.py:tiny'
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(processes, devices, workdir, data_dir):
  command = [sys.executable, os.path.join(_ROOT, 'experiments', 'main.py'),
             f'--config={_CONFIG}', f'--workdir={workdir}',
             f'--config.data.data_dir={data_dir}',
             f'--config.train.steps={_STEPS.value}',
             f'--config.train.log_every={_STEPS.value // 6}',
             f'--config.train.checkpoint_every={_STEPS.value}',
             '--jax_distributed']
  result = local_cluster.launch(command, num_processes=processes,
                                devices_per_process=devices, cwd=_ROOT,
                                output=None)
  if not result.ok:
    raise RuntimeError(f'{processes}x{devices} failed:\n'
                       f'{result.logs[0][-3000:]}')
  return rounds.loop_steps_per_s(workdir)


def main(argv):
  del argv
  from data_pipelines import build  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    data_dir = _DATA_DIR.value or os.path.join(tmp, 'data')
    build.build_dataset('moving_digits', data_dir, config='tiny')
    rates = {'1 x 8': [], '2 x 4': []}
    for r in range(_REPEATS.value):
      for name, (k, m) in (('1 x 8', (1, 8)), ('2 x 4', (2, 4))):
        rates[name].append(_run(k, m, os.path.join(tmp, f'{k}x{m}_{r}'),
                                data_dir))
  print('| processes x devices | steps/s (median of runs) | runs |')
  print('|---|---:|---|')
  for name, values in rates.items():
    print(f'| {name} | {statistics.median(values):.2f} | '
          + ', '.join(f'{v:.2f}' for v in values) + ' |')


if __name__ == '__main__':
  app.run(main)
