"""Run by tests/core/test_multi_process.py in each process of a local cluster.

Feeds the input pipeline a source of numbered examples and writes to
`OUT_DIR/reads_<process>.json` which example ids this process read (the
source records every access) for each train step and eval batch, and the
global batches that were assembled from all processes' parts.

  python tests/core/multi_process_probe.py OUT_DIR GLOBAL_BATCH TRAIN_N EVAL_N
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

# pylint: disable=g-import-not-at-top
from cvision.core import distributed

distributed.initialize()

import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from cvision.core import input_pipeline
from cvision.core import sharding

TRAIN_STEPS = 4
SEED = 3


class RecordingSource:
  """Examples `{'id': i}`; remembers which were read."""

  def __init__(self, size):
    self.size, self.reads = size, []

  def __len__(self):
    return self.size

  def __getitem__(self, index):
    self.reads.append(int(index))
    return {'id': np.int32(index)}


def _gathered(batch):
  return {k: multihost_utils.process_allgather(v, tiled=True).tolist()
          for k, v in batch.items()}


def main(out_dir, global_batch, train_n, eval_n):
  mesh = sharding.make_mesh(ml_collections.ConfigDict(
      {'shape': (-1, 1), 'axes': ('data', 'model')}))
  batch_sharding = sharding.batch_sharding(mesh)
  report = {'process': jax.process_index(), 'train_reads': [],
            'train_local': [], 'train_global': [], 'eval_global': []}

  # Reads per step, through the dataset's random access (no read-ahead).
  source = RecordingSource(train_n)
  dataset = input_pipeline.train_dataset(
      source, global_batch_size=global_batch, seed=SEED, keys=('id',))
  for step in range(TRAIN_STEPS):
    source.reads.clear()
    local = dataset[step]
    report['train_reads'].append(sorted(source.reads))
    report['train_local'].append(local['id'].tolist())
  # The global batches the train loop gets, from step 1 on (a resume).
  batches = input_pipeline.train_iterator(
      dataset, start_step=1, sharding=batch_sharding, num_threads=2)
  for _ in range(TRAIN_STEPS - 1):
    report['train_global'].append(_gathered(next(batches))['id'])

  # Batches are read ahead of the one yielded: the reads of the whole pass.
  source = RecordingSource(eval_n)
  for batch in input_pipeline.eval_batches(
      source, global_batch_size=global_batch, keys=('id',),
      sharding=batch_sharding):
    report['eval_global'].append(_gathered(batch))
  report['eval_reads'] = sorted(source.reads)
  with open(os.path.join(out_dir, f'reads_{jax.process_index()}.json'),
            'w') as f:
    json.dump(report, f)


if __name__ == '__main__':
  main(sys.argv[1], *map(int, sys.argv[2:5]))
