"""Random-access examples to batches to sharded global `jax.Array`s on the mesh.

One way of reading, for every dataset: TFDS builders write `array_record`
files, read back as random-access data sources
(`data_pipelines.sources.load_source`) and batched here with grain. We
chose grain over tf.data because it needs no TensorFlow (1.4 GB and 4.5 s of
import saved), and because random access makes the data order a pure
function of (seed, step): batch `s` of a run is `dataset[s]`, so a resumed run
reads exactly the batches an uninterrupted one would, with no iterator state
to checkpoint.

Multi-host: each process reads its own slice of the examples
(`[process_index::process_count]`), batches `global_batch / process_count` of
them, and the local batches are assembled into global arrays sharded over the
`data` mesh axis with `jax.make_array_from_process_local_data`.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding

Example = Mapping[str, Any]
VALID_KEY = '_valid'  # Marks real examples (True) against eval padding.


def _select(keys: Sequence[str]) -> Callable[[Example], dict[str, np.ndarray]]:
  def select(example: Example) -> dict[str, np.ndarray]:
    missing = [k for k in keys if k not in example]
    if missing:
      raise KeyError(f'The dataset has no {missing}; it has '
                     f'{sorted(example)}.')
    return {k: np.asarray(example[k]) for k in keys}
  return select


def _host_slice(dataset: grain.MapDataset) -> grain.MapDataset:
  return dataset[jax.process_index()::jax.process_count()]


def _local_batch_size(global_batch_size: int) -> int:
  if global_batch_size % jax.process_count():
    raise ValueError(f'Batch size {global_batch_size} is not divisible by the '
                     f'{jax.process_count()} processes.')
  return global_batch_size // jax.process_count()


def train_dataset(source, *, global_batch_size: int, seed: int,
                  keys: Sequence[str],
                  preprocess: Callable[[dict, np.random.Generator], dict]
                  | None = None) -> grain.MapDataset:
  """An endless, shuffled dataset of local batches; item `s` is step `s`.

  Args:
    source: random-access examples.
    global_batch_size: examples per step over all processes.
    seed: data order (and random preprocessing) is a function of it.
    keys: entries kept (the rest never leave the host).
    preprocess: optional `(example, np_rng) -> example`, seeded per example,
      so random augmentation is reproducible too.
  """
  if len(source) == 0:
    raise ValueError('The training split is empty.')
  dataset = _host_slice(grain.MapDataset.source(source))
  local_batch = _local_batch_size(global_batch_size)
  if len(dataset) < local_batch:
    raise ValueError(f'The training split has {len(dataset)} examples on this '
                     f'host, fewer than the batch size {local_batch}.')
  dataset = dataset.shuffle(seed=seed).repeat(reseed_each_epoch=True)
  dataset = dataset.map(_select(keys))
  if preprocess is not None:
    dataset = dataset.random_map(preprocess, seed=seed)
  return dataset.batch(local_batch, drop_remainder=True)


def random_temporal_crop(num_frames: int, keys: Sequence[str]):
  """`(example, rng) -> example` keeping `num_frames` consecutive frames.

  Every entry in `keys` is cut along its first (time) axis at the same
  offset, so per-frame labels stay aligned with the frames.
  """
  def crop(example: dict, rng: np.random.Generator) -> dict:
    length = len(example[keys[0]])
    if length < num_frames:
      raise ValueError(f'Clips of {length} frames are shorter than the '
                       f'requested crop of {num_frames}.')
    start = int(rng.integers(0, length - num_frames + 1))
    return {k: (v[start:start + num_frames] if k in keys else v)
            for k, v in example.items()}
  return crop


def center_temporal_crop(num_frames: int, keys: Sequence[str]):
  """`example -> example` keeping the middle `num_frames` frames.

  The deterministic counterpart of `random_temporal_crop`, for evaluation;
  with an odd surplus the extra frame is dropped from the end.
  """
  def crop(example: dict) -> dict:
    length = len(example[keys[0]])
    if length < num_frames:
      raise ValueError(f'Clips of {length} frames are shorter than the '
                       f'requested crop of {num_frames}.')
    start = (length - num_frames) // 2
    return {k: (v[start:start + num_frames] if k in keys else v)
            for k, v in example.items()}
  return crop


def to_global(batch: Mapping[str, np.ndarray],
              sharding: NamedSharding) -> dict[str, jax.Array]:
  """Assembles each process's local batch into global sharded arrays."""
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in batch.items()}


def _prefetch_to_device(batches: Iterable[Mapping[str, np.ndarray]],
                        sharding: NamedSharding,
                        size: int) -> Iterator[dict[str, jax.Array]]:
  # Transfers are asynchronous: keeping `size` batches in flight overlaps
  # host-to-device copies with the running step.
  queue = collections.deque()
  for batch in batches:
    queue.append(to_global(batch, sharding))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


def train_iterator(dataset: grain.MapDataset, *, start_step: int,
                   sharding: NamedSharding, num_threads: int = 4,
                   host_prefetch: int = 8,
                   device_prefetch: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Global batches for steps `start_step, start_step + 1, ...`."""
  read_options = grain.ReadOptions(num_threads=num_threads,
                                   prefetch_buffer_size=host_prefetch)
  local = dataset[start_step:].to_iter_dataset(read_options)
  return _prefetch_to_device(local, sharding, device_prefetch)


def eval_batches(source, *, global_batch_size: int, keys: Sequence[str],
                 sharding: NamedSharding,
                 max_batches: int | None = None,
                 preprocess: Callable[[dict], dict] | None = None
                 ) -> Iterator[dict[str, jax.Array]]:
  """One ordered pass over a split, padded to whole batches.

  Every batch carries `VALID_KEY` (`[B] bool`), False on padding; all
  processes yield the same number of batches. `preprocess` (deterministic,
  e.g. `center_temporal_crop`) applies to every example.
  """
  local_batch = _local_batch_size(global_batch_size)
  num_examples = len(source)
  if num_examples == 0:
    raise ValueError('The evaluation split is empty.')
  per_host = math.ceil(num_examples / jax.process_count())
  num_batches = math.ceil(per_host / local_batch)
  if max_batches is not None:
    num_batches = min(num_batches, max_batches)
  dataset = _host_slice(grain.MapDataset.source(source)).map(_select(keys))
  if preprocess is not None:
    dataset = dataset.map(preprocess)
  filler = dataset[0] if len(dataset) else _select(keys)(source[0])

  def local_batches():
    for b in range(num_batches):
      indices = range(b * local_batch, min((b + 1) * local_batch,
                                           len(dataset)))
      examples = [dataset[i] for i in indices]
      valid = [True] * len(examples) + [False] * (local_batch - len(examples))
      examples += [filler] * (local_batch - len(examples))
      batch = {k: np.stack([e[k] for e in examples]) for k in keys}
      batch[VALID_KEY] = np.asarray(valid)
      yield batch

  return _prefetch_to_device(local_batches(), sharding, 2)


def batch_spec(source, *, global_batch_size: int,
               keys: Sequence[str]) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes and dtypes of a global batch, read off the first example."""
  example = _select(keys)(source[0])
  return {k: jax.ShapeDtypeStruct((global_batch_size,) + v.shape, v.dtype)
          for k, v in example.items()}
