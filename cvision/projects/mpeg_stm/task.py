r"""Action recognition on MPEG-4 GOPs with Spiking Temporal Modulators.

The task of `cvision.projects.mpeg_stm.stm` (Das Biswas et al.). The dataset is
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

import jax
import jax.numpy as jnp
import ml_collections
import optax

from cvision.core import config_utils
from cvision.core import precision
from cvision.core import rng as rng_lib
from cvision.core import task as task_lib
from cvision.projects.mpeg_stm import energy
from cvision.projects.mpeg_stm.stm import model as stm_model
from data_pipelines.builders import mpeg_gops

NAME = 'mpeg_stm'
LABEL_KEY = 'label'
I_FRAMES_KEY = 'i_frames'
# modality -> (accumulated key, raw key).
P_FRAME_KEYS = {
    'mv': ('accumulated_motion_vectors', 'motion_vectors'),
    'r': ('accumulated_residuals', 'residuals'),
}
DATASET_NAME = 'mpeg_gops'


# Fields of `config.model` the input scaling reads, not the network.
_NOT_MODULE_FIELDS = ('accumulated', 'mv_scale', 'accumulated_mv_scale',
                      'residual_scale', 'accumulated_residual_scale')


def check_model_config(m: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.model` (fields: experiments/configs/mpeg_stm.py), checked."""
  modalities = tuple(m.modalities)
  if 'i' not in modalities or set(modalities) - set(stm_model.MODALITIES):
    raise ValueError(f'config.model.modalities={modalities}: expected i plus '
                     'any of mv, r.')
  return m


def build_model(m: ml_collections.ConfigDict) -> stm_model.CompressedVideoSTM:
  kwargs = {k: v for k, v in m.items() if k not in _NOT_MODULE_FIELDS}
  for k in ('modalities', 'stm_features', 'stm_strides'):
    kwargs[k] = tuple(kwargs[k])
  return config_utils.build_module(stm_model.CompressedVideoSTM, kwargs,
                                   'mpeg_stm model')


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


def build_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  """The task of `config.model`.

  `evaluate` gives per video: loss, top1, and what classifying it costs
  (`macs`, `acs` and `energy_j`, `cvision.projects.mpeg_stm.energy`) and the
  STM spike rate of its batch (`spike_rate`).
  """
  m = check_model_config(config.model)
  ensure_dataset(config.data)
  model = build_model(m)

  def apply(params, batch, mutable=False):
    x = network_inputs(m, batch, precision.floating_dtype(params))
    return model.apply({'params': params}, x, mutable=mutable)

  def init(rng, batch):
    x = network_inputs(m, batch, jnp.float32)
    variables = model.init(rng_lib.fast_init_key(rng), x)
    # Cost counts and spike rates are outputs, not state.
    return {'params': variables['params']}

  def loss(params, collections, batch, rng):
    del rng  # Nothing random in the model.
    per_example = per_example_metrics(apply(params, batch), batch[LABEL_KEY])
    metrics = {k: jnp.mean(v) for k, v in per_example.items()}
    return metrics['loss'], (metrics, collections)

  def evaluate(params, collections, batch):
    del collections
    logits, state = apply(params, batch, mutable=['costs', 'intermediates'])
    metrics = per_example_metrics(logits, batch[LABEL_KEY])
    costs = energy.totals(state['costs'])
    rates = jax.tree.leaves(state.get('intermediates', {}))
    rate = jnp.mean(jnp.stack(rates)) if rates else jnp.zeros(())
    batch_size = logits.shape[0]
    metrics.update(
        macs=costs['macs'], acs=costs['acs'],
        energy_j=energy.energy_joules(costs['macs'], costs['acs']),
        spike_rate=jnp.broadcast_to(rate.astype(jnp.float32), (batch_size,)))
    return metrics

  return task_lib.Task(name=NAME, init=init, loss=loss, evaluate=evaluate,
                       input_keys=input_keys_for(m))
