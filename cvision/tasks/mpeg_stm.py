r"""Action recognition on MPEG-4 GOPs with Spiking Temporal Modulators.

The task of `cvision.models.stm` (Das Biswas et al.). The dataset is
`mpeg_gops` (`data_pipelines/builders/mpeg_gops.py`): with `data.name =
'mpeg_gops'` it is built on first use under `data.data_dir` (the config
points `data.dataset_dir` at it); any other prepared dataset with the same
features can be named by `data.dataset_dir`.

`config.model.modalities` picks the inputs (I-frames always; motion vectors
'mv' and residuals 'r' optional) and `config.model.accumulated` whether the
P-frames are traced back to the I-frame (Eq. 1-2) or raw:

| model input | batch entry (accumulated / raw)                         |
|-------------|---------------------------------------------------------|
| i           | `i_frames` `[B, G, H, W, 3]` uint8                       |
| mv          | `accumulated_motion_vectors` / `motion_vectors`          |
|             | `[B, G, P, H, W, 2]`, pixels                             |
| r           | `accumulated_residuals` / `residuals` `[B, G, P, H, W, 3]` |

Each is scaled to about unit range by fixed factors (`model.*_scale`).
Metrics: loss (cross-entropy), top1, and in `--mode=eval` the cost per
video: MACs, ACs (spike rate x synaptic operations, measured on the split),
energy at 4.6 pJ/MAC and 0.9 pJ/AC, and videos per second.
`--mode=table --workdir=ROOT` gathers the evaluations of the runs under
ROOT into one table; `--mode=extract` builds the dataset alone.
"""
from __future__ import annotations

import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from cvision.core import config_utils
from cvision.core import precision
from cvision.core import run_tables
from cvision.core import sharding
from cvision.core import task as task_lib
from cvision.core import trainer
from cvision.metrics import energy
from cvision.models.stm import model as stm_model
from data_pipelines import input_pipeline

NAME = 'mpeg_stm'
LABEL_KEY = 'label'
I_FRAMES_KEY = 'i_frames'
# modality -> (accumulated key, raw key).
P_FRAME_KEYS = {
    'mv': ('accumulated_motion_vectors', 'motion_vectors'),
    'r': ('accumulated_residuals', 'residuals'),
}
DATASET_NAME = 'mpeg_gops'


def default_model_config() -> ml_collections.ConfigDict:
  """Model hyper-parameters; `config.model` overrides any of them."""
  return ml_collections.ConfigDict({
      'num_classes': 8,
      'modalities': ('i', 'mv', 'r'),
      'accumulated': True,  # False: raw P-frames (the ablation).
      'embed_dim': 64,
      'patch_size': 16,
      'stm_features': (16, 16),
      'stm_strides': (4, 2),
      'temporal_cell': 'lif',  # lif (STM) | lstm (ConvLSTM ablation)
      'common_stm': False,  # One STM over mv and r concatenated.
      'learn_dynamics': True,  # False: fixed v_th and lambda.
      'v_th_init': 1.0,
      'leak_init': 0.9,
      'surrogate_alpha': 2.0,
      'p_time_slots': 3,  # STM outputs averaged into this many per GOP.
      'depth': 2,
      'num_heads': 4,
      'mlp_ratio': 2,
      'encoder': 'unified',  # unified | separate | cross
      'mixer_growth': 16,
      'rrdb_blocks': 2,
      # Input scales, to about unit range (pixels for motion, 0-255 levels
      # for residuals); accumulated values grow with the GOP.
      'mv_scale': 4.0,
      'accumulated_mv_scale': 16.0,
      'residual_scale': 32.0,
      'accumulated_residual_scale': 64.0,
  })


_NOT_MODULE_FIELDS = ('accumulated', 'mv_scale', 'accumulated_mv_scale',
                      'residual_scale', 'accumulated_residual_scale')


def resolve_model_config(model_config: Any) -> ml_collections.ConfigDict:
  """Defaults overridden by `model_config`; unknown fields raise ValueError."""
  m = config_utils.with_defaults(default_model_config(), model_config,
                                 'mpeg_stm model')
  modalities = tuple(m.modalities)
  if 'i' not in modalities or set(modalities) - set(stm_model.MODALITIES):
    raise ValueError(f'config.model.modalities={modalities}: expected i plus '
                     'any of mv, r.')
  return m


def build_model(m: ml_collections.ConfigDict) -> stm_model.CompressedVideoSTM:
  kwargs = {k: v for k, v in m.items() if k not in _NOT_MODULE_FIELDS}
  for k in ('modalities', 'stm_features', 'stm_strides'):
    kwargs[k] = tuple(kwargs[k])
  return stm_model.CompressedVideoSTM(**kwargs)


def input_keys_for(m: ml_collections.ConfigDict) -> tuple[str, ...]:
  keys = [I_FRAMES_KEY]
  for modality in ('mv', 'r'):
    if modality in m.modalities:
      keys.append(P_FRAME_KEYS[modality][0 if m.accumulated else 1])
  return tuple(keys) + (LABEL_KEY,)


def ensure_dataset(data: ml_collections.ConfigDict) -> None:
  """Builds `mpeg_gops` when `data.name` asks for it (a no-op once built)."""
  if data.get('name') != DATASET_NAME:
    return
  from data_pipelines.builders import mpeg_gops  # pylint: disable=g-import-not-at-top
  builder = mpeg_gops.build(data.data_dir,
                            data.get('builder_kwargs', {}).get('config',
                                                               'small'))
  dataset_dir = data.get('dataset_dir')
  if not dataset_dir:
    raise ValueError(
        f'data.name=mpeg_gops needs data.dataset_dir={builder.data_dir} (the '
        'dataset it builds); experiments/configs/mpeg_stm.py sets it.')
  if os.path.abspath(dataset_dir) != os.path.abspath(
      os.fspath(builder.data_dir)):
    raise ValueError(
        f'data.name=mpeg_gops builds {builder.data_dir}, but '
        f'data.dataset_dir={dataset_dir!r}; set data.name to another name to '
        'read a dataset of your own from data.dataset_dir.')


def network_inputs(m: ml_collections.ConfigDict, batch, dtype
                   ) -> dict[str, jax.Array]:
  """Batch entries -> the model's `{'i', 'mv', 'r'}` inputs, about unit range."""
  inputs = {'i': batch[I_FRAMES_KEY].astype(dtype) / 255.0 - 0.5}
  scales = {
      'mv': m.accumulated_mv_scale if m.accumulated else m.mv_scale,
      'r': (m.accumulated_residual_scale if m.accumulated
            else m.residual_scale),
  }
  for modality in ('mv', 'r'):
    if modality in m.modalities:
      key = P_FRAME_KEYS[modality][0 if m.accumulated else 1]
      inputs[modality] = batch[key].astype(dtype) / scales[modality]
  return inputs


def per_example_metrics(logits: jax.Array, labels: jax.Array
                        ) -> dict[str, jax.Array]:
  logits = logits.astype(jnp.float32)
  labels = labels.astype(jnp.int32)
  return {
      'loss': optax.softmax_cross_entropy_with_integer_labels(logits, labels),
      'top1': (jnp.argmax(logits, -1) == labels).astype(jnp.float32),
  }


def _rbg_key(rng: jax.Array) -> jax.Array:
  """The same 64 bits as an 'rbg' key: initialising this model's ~100
  parameters from threefry keys takes XLA about 3x longer to compile on CPU.
  """
  if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)
  data = jnp.ravel(rng).astype(jnp.uint32)[:2]
  return jax.random.wrap_key_data(jnp.concatenate([data, data]), impl='rbg')


def build_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  """The task of `config.model` (see `default_model_config`).

  Extras: 'logits_and_costs(params, batch) -> (logits, costs, spike_rate)'
  with `costs = {'macs': [B], 'acs': [B]}`; 'model'; 'model_config'.
  """
  m = resolve_model_config(config.get('model', None))
  ensure_dataset(config.data)
  model = build_model(m)

  def apply(params, batch, mutable=False):
    x = network_inputs(m, batch, precision.floating_dtype(params))
    return model.apply({'params': params}, x, mutable=mutable)

  def init(rng, batch):
    x = network_inputs(m, batch, jnp.float32)
    variables = model.init(_rbg_key(rng), x)
    # Cost counts and spike rates are outputs, not state.
    return {'params': variables['params']}

  def loss(params, collections, batch, rng):
    del rng  # Nothing random in the model.
    per_example = per_example_metrics(apply(params, batch), batch[LABEL_KEY])
    metrics = {k: jnp.mean(v) for k, v in per_example.items()}
    return metrics['loss'], (metrics, collections)

  def evaluate(params, collections, batch):
    del collections
    return per_example_metrics(apply(params, batch), batch[LABEL_KEY])

  def logits_and_costs(params, batch):
    logits, state = apply(params, batch, mutable=['costs', 'intermediates'])
    rates = jax.tree.leaves(state.get('intermediates', {}))
    rate = jnp.mean(jnp.stack(rates)) if rates else jnp.zeros(())
    return logits, energy.totals(state['costs']), rate

  return task_lib.Task(
      name=NAME, init=init, loss=loss, evaluate=evaluate,
      input_keys=input_keys_for(m),
      extras={'logits_and_costs': logits_and_costs, 'model': lambda: model,
              'model_config': m})


# ---------------------------------------------------------------------------
# --mode=eval: accuracy beside cost and speed.


def evaluate_with_costs(config: ml_collections.ConfigDict,
                        workdir: str) -> dict[str, Any]:
  """`--mode=eval`: top-1, MACs, ACs, energy and videos/s on `eval.split`.

  Restores the latest checkpoint in `workdir`. Costs are per video, averaged
  over the split (spike rates measured on it); videos/s times the jitted
  forward pass on `data.batch_size` videos after a warm-up batch, not the
  reading of the data. Writes `WORKDIR/eval/mpeg_stm_<split>.{json,md}`.
  """
  run = trainer.restore_trained(config, workdir,
                                shapes_split=config.eval.split)
  task, split = run.task, config.eval.split
  params = precision.cast_floating(
      run.state.params, precision.compute_dtype(config.train.compute_dtype))
  forward = jax.jit(task.extras['logits_and_costs'])
  keys = tuple(k for k in task.input_keys)
  sums: dict[str, float] = {}
  count, timed_videos, timed_seconds = 0.0, 0, 0.0
  try:
    batches = input_pipeline.eval_batches(
        run.source(split), global_batch_size=config.data.batch_size,
        keys=keys, sharding=sharding.batch_sharding(run.mesh),
        max_batches=config.eval.get('num_batches', 0) or None)
    for index, batch in enumerate(batches):
      valid = np.asarray(batch.pop(input_pipeline.VALID_KEY))
      start = time.perf_counter()
      logits, costs, rate = jax.block_until_ready(forward(params, batch))
      if index > 0:  # The first call compiles.
        timed_seconds += time.perf_counter() - start
        timed_videos += len(valid)
      metrics = per_example_metrics(logits, batch[LABEL_KEY])
      per_video = {
          'top1': metrics['top1'], 'loss': metrics['loss'],
          'macs': costs['macs'], 'acs': costs['acs'],
          'energy_j': energy.energy_joules(costs['macs'], costs['acs']),
      }
      for k, v in per_video.items():
        sums[k] = sums.get(k, 0.0) + float(np.sum(np.asarray(v) * valid))
      sums['spike_rate'] = (sums.get('spike_rate', 0.0)
                            + float(rate) * valid.sum())
      count += float(valid.sum())
  finally:
    run.checkpointer.close()
  means = {k: v / count for k, v in sums.items()}
  num_params = int(sum(np.size(x) for x in jax.tree.leaves(run.state.params)))
  result = {
      'step': int(jax.device_get(run.state.step)),
      'split': split,
      'num_videos': int(count),
      'experiment': config.get('experiment', ''),
      'modalities': list(task.extras['model_config'].modalities),
      'accumulated': bool(task.extras['model_config'].accumulated),
      'params': num_params,
      'videos_per_s': (timed_videos / timed_seconds if timed_seconds
                       else float('nan')),
      'device': f'{jax.device_count()} {jax.default_backend()}',
      **means,
  }
  table = run_tables.write_row(workdir, NAME, split, result, format_table)
  logging.info('%s @ step %d on %s:\n%s', NAME, result['step'], split, table)
  return result


def format_table(rows: list[dict[str, Any]]) -> str:
  """Markdown: experiment, top-1, energy, MACs, ACs, spike rate, speed."""
  lines = ['| experiment | inputs | top-1 (%) | energy / video (uJ) | '
           'MACs (M) | ACs (M) | STM spike rate | videos/s | params |',
           '|---|---|---:|---:|---:|---:|---:|---:|---:|']
  for r in rows:
    inputs = '+'.join(x.upper() for x in r['modalities'])
    if len(r['modalities']) > 1:
      inputs += ' (accumulated)' if r['accumulated'] else ' (raw)'
    lines.append(
        f'| {r.get("experiment") or "-"} | {inputs} | {100 * r["top1"]:.1f} '
        f'| {1e6 * r["energy_j"]:.1f} | {r["macs"] / 1e6:.1f} | '
        f'{r["acs"] / 1e6:.2f} | {r["spike_rate"]:.3f} | '
        f'{r["videos_per_s"]:.0f} | {r["params"] / 1e3:.0f}k |')
  return '\n'.join(lines)


def gather_table(config: ml_collections.ConfigDict,
                 workdir: str) -> dict[str, Any]:
  """`--mode=table`: one table of every `WORKDIR/*/eval/mpeg_stm_<split>.json`.

  Writes `WORKDIR/mpeg_stm_<split>.md` and returns the rows.
  """
  return run_tables.gather(workdir, NAME, config.eval.split, format_table)


def extract_dataset(config: ml_collections.ConfigDict,
                    workdir: str) -> dict[str, Any]:
  """`--mode=extract`: builds the `mpeg_gops` dataset of `config.data` now.

  Training builds it on first use too; `workdir` is not used.
  """
  del workdir
  ensure_dataset(config.data)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder_from_directory(config.data.dataset_dir)
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  print(f'{config.data.dataset_dir}: {splits}')
  return {'dataset_dir': config.data.dataset_dir, 'splits': splits}


# `--mode`s beyond train (see `cvision.tasks.modes`).
MODES = {'eval': evaluate_with_costs, 'table': gather_table,
         'extract': extract_dataset}
