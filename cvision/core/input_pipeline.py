"""Random-access examples to batches to sharded global `jax.Array`s on the mesh.

One way of reading, for every dataset: TFDS builders write `array_record`
files, read back as random-access data sources
(`data_pipelines.sources.load_source`) and batched here with grain. We
chose grain over tf.data because it needs no TensorFlow (1.4 GB and 4.5 s of
import saved), and because random access makes the data order a pure
function of (seed, step): batch `s` of a run is `dataset[s]`, so a resumed run
reads exactly the batches an uninterrupted one would, with no iterator state
to checkpoint.

Multi-host: batch `s` is the same examples whatever the number of processes
(positions `[s * B, (s + 1) * B)` of the one shuffled stream, B the global
batch); process `p` of `P` reads only its part of it, positions
`[s * B + p * b, s * B + (p + 1) * b)` with `b = B / P`, and the local
batches are assembled into global arrays sharded over the `data` mesh axis
with `jax.make_array_from_process_local_data`. So 2 processes of 4 devices
train on the batches 1 process of 8 devices does.
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
  local_batch = _local_batch_size(global_batch_size)
  if len(source) < global_batch_size:
    raise ValueError(f'The training split has {len(source)} examples, fewer '
                     f'than the batch size {global_batch_size}.')
  # Shuffled, repeated and augmented as one stream, indexed by its position:
  # the order and the per-example rng do not depend on the process count.
  # Every step is lazy, so a process reads only the examples it batches.
  dataset = grain.MapDataset.source(source).shuffle(seed=seed)
  dataset = dataset.repeat(reseed_each_epoch=True).map(_select(keys))
  if preprocess is not None:
    dataset = dataset.random_map(preprocess, seed=seed)
  # Local batch k holds positions [k * b, (k + 1) * b): step s is local
  # batches s * P ... s * P + P - 1, and process p takes the p-th of them.
  dataset = dataset.batch(local_batch, drop_remainder=True)
  return dataset[jax.process_index()::jax.process_count()]


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

  Global batch `k` is examples `[k * B, (k + 1) * B)` whatever the number of
  processes; process `p` reads only its part `[k * B + p * b, ...)` (see the
  module docstring), so the last batch's padding may fall on any process.
  Every batch carries `VALID_KEY` (`[B] bool`), False on padding; all
  processes yield the same number of batches. `preprocess` (deterministic,
  e.g. `center_temporal_crop`) applies to every example.
  """
  local_batch = _local_batch_size(global_batch_size)
  num_examples = len(source)
  if num_examples == 0:
    raise ValueError('The evaluation split is empty.')
  num_batches = math.ceil(num_examples / global_batch_size)
  if max_batches is not None:
    num_batches = min(num_batches, max_batches)
  dataset = grain.MapDataset.source(source).map(_select(keys))
  if preprocess is not None:
    dataset = dataset.map(preprocess)
  offset = jax.process_index() * local_batch

  def local_batches():
    filler, first = None, None
    for b in range(num_batches):
      start = b * global_batch_size + offset
      indices = range(start, min(start + local_batch, num_examples))
      examples = [dataset[i] for i in indices]
      if examples and first is None:
        first = examples[0]
      if len(examples) < local_batch and filler is None:
        # Padding rows are masked out: zeros shaped like an example this
        # process read already (only one that read none reads another's).
        template = first if first is not None else dataset[0]
        filler = {k: np.zeros_like(v) for k, v in template.items()}
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
