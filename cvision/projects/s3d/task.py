r"""S3D classification of pixels, neural codes or decoded codes (paper 4.3-4.4).

`config.input` picks what the network sees:

| input           | batch entry                      | network input          |
|-----------------|----------------------------------|------------------------|
| rgb             | `video` `[B, T, H, W, 3]` uint8  | the frames in [0, 1]   |
| codes           | `codes` `[B, T_c, H_c, W_c, N]`  | `[..., N*D]` embedded  |
| reconstructions | `codes`, as above                | decoded frames, [0, 1] |

Codes are looked up in the codebook of the codec that wrote them (App. E.1),
on device; the S3D stem drops the spatial strides the codec already applied
(`s3d.stem_for_input`), so every layer after the stem has the shapes of the
RGB network at the codec's input size. The codec is frozen: its codebook (and
for 'reconstructions' its decoder) is read once from the codec run's
checkpoint when the task is built and closed over as a constant, so it is
neither a parameter nor part of the train state.

Heads (`config.model.head`): 'video' classifies a clip from `label`
(Kinetics, Sec. 4.3); 'frame' classifies every frame from `frame_labels`
(COIN, Sec. 4.4). `--mode=eval` averages logits over 1, 2, 4, ... temporal
clips per video (Tables 2-4) and writes `WORKDIR/eval/s3d_<split>.{json,md}`.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from cvision.core import config_utils
from cvision.core import rng as rng_lib
from cvision.core import task as task_lib
from cvision.models import s3d
from cvision.models import s3d_inputs
from cvision.projects.augmenter import downstream
from cvision.projects.codec import frozen

NAME = 's3d_classification'
INPUTS = s3d_inputs.INPUTS
HEADS = ('video', 'frame')
VIDEO_KEY = 'video'
CODES_KEY = 'codes'
LABEL_KEY = 'label'
FRAME_LABELS_KEY = 'frame_labels'
TOP_K = 5
# The `config.model` fields the task reads (experiments/configs/s3d.py).
MODEL_FIELDS = s3d_inputs.MODEL_FIELDS | {'head'}


def check_model_config(m: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.model`, its fields and choices checked."""
  config_utils.check_fields(m, MODEL_FIELDS, 's3d model config', 'S3D')
  if m.head not in HEADS:
    raise ValueError(f'config.model.head={m.head!r}: expected one of '
                     f'{HEADS}.')
  if m.code_correlation_only and m.code_correlation_radius < 1:
    raise ValueError(
        'config.model.code_correlation_only=True feeds S3D the code '
        'correlations alone: set config.model.code_correlation_radius >= 1 '
        f'(got {m.code_correlation_radius}).')
  return m


def frozen_codec_for(config: ml_collections.ConfigDict) -> frozen.FrozenCodec:
  """The codec named by `config.codec`, checked against the code dataset."""
  if not config.data.dataset_dir:
    raise ValueError(
        f'config.input={config.input!r} reads a code dataset: pass '
        '--config.data.dataset_dir=<codec workdir>/codes/<dataset> (written '
        'by the codec\'s --mode=encode).')
  return frozen.codec_for_code_dataset(
      config.codec, config.data.dataset_dir,
      what=f'config.input={config.input!r}',
      with_params=config.input == 'reconstructions')


# Shared with collaborative memory (cvision.models.s3d_inputs).
code_stem = s3d_inputs.code_stem
stem_from_config = s3d_inputs.stem_from_config


# ---------------------------------------------------------------------------
# Metrics.


def _top_k_hits(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
  """1.0 where `labels` is among the `k` largest logits: `[...]`."""
  k = min(k, logits.shape[-1])
  top = jax.lax.top_k(logits, k)[1]
  return jnp.any(top == labels[..., None], axis=-1).astype(jnp.float32)


def per_example_metrics(logits: jax.Array, labels: jax.Array,
                        frame_mask: jax.Array | None = None
                        ) -> dict[str, jax.Array]:
  """Per-video metrics `[B]`.

  Args:
    logits: `[B, C]` (video head) or `[B, T', C]` (frame head) float.
    labels: `[B]` or `[B, T]` ints. Per-frame logits of another length are
      resampled to T (nearest), as the frame head does.
    frame_mask: optional `[B, T]` bool, frames to count (frame head).

  Returns:
    Video head: loss (cross-entropy), top1, top5. Frame head: loss,
    frame_accuracy and frame_top5, each the mean over the video's frames.
  """
  logits = logits.astype(jnp.float32)
  labels = labels.astype(jnp.int32)
  if labels.ndim == 1:
    return {
        'loss': optax.softmax_cross_entropy_with_integer_labels(logits,
                                                                labels),
        'top1': _top_k_hits(logits, labels, 1),
        'top5': _top_k_hits(logits, labels, TOP_K),
    }
  if logits.shape[1] != labels.shape[1]:
    logits = s3d.upsample_time(logits, labels.shape[1])
  mask = (jnp.ones(labels.shape, jnp.float32) if frame_mask is None
          else frame_mask.astype(jnp.float32))
  # Masked-out frames may hold NaN logits; keep them out of every sum.
  logits = jnp.where(mask[..., None] > 0, logits, 0.0)
  frames = jnp.maximum(jnp.sum(mask, axis=1), 1.0)
  mean = lambda v: jnp.sum(v * mask, axis=1) / frames
  return {
      'loss': mean(optax.softmax_cross_entropy_with_integer_labels(logits,
                                                                   labels)),
      'frame_accuracy': mean(_top_k_hits(logits, labels, 1)),
      'frame_top5': mean(_top_k_hits(logits, labels, TOP_K)),
  }


# ---------------------------------------------------------------------------
# The task.


def build_model(config: ml_collections.ConfigDict,
                spatial_factor: int = 1) -> s3d.S3D:
  """The S3D of `config.model` for inputs at 1/`spatial_factor` of pixels.

  1 is pixels (RGB or decoded codes); codes pass their codec's factor.
  """
  m = check_model_config(config.model)
  return s3d_inputs.s3d_for_input(
      m, config.input, spatial_factor=spatial_factor, head=m.head,
      compute_dtype=config.train.compute_dtype)


@dataclasses.dataclass(frozen=True)
class S3DClassifier:
  """The S3D task and what its modes need.

  Attributes:
    task: the core's task; `predict` gives the logits of a batch (test-time
      views of `augmentation` averaged), `score` their per-video metrics.
    input_key: 'video' (rgb) or 'codes'.
    label_key: 'label' (video head) or 'frame_labels' (frame head).
    codec: the frozen codec of codes and reconstructions (None for rgb).
    augmentation: the code augmentation (`downstream.CodeAugmentation`).
    network_input: `(params, raw batch entry) -> [B, T, H, W, C]`, what S3D
      sees.
    model: the S3D network (a Flax module).
  """
  task: task_lib.Task
  input_key: str
  label_key: str
  codec: frozen.FrozenCodec | None
  augmentation: downstream.CodeAugmentation
  network_input: Callable[[Any, jax.Array], jax.Array]
  model: Any

  @property
  def frame_head(self) -> bool:
    return self.label_key == FRAME_LABELS_KEY


def build_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return build(config).task


def build(config: ml_collections.ConfigDict) -> S3DClassifier:
  """The S3D classification of `config.input` and `config.model`.

  Metrics of `loss` (batch means): loss, top1, top5 (video head) or loss,
  frame_accuracy, frame_top5 (frame head). `evaluate` returns the same per
  video, `[B]`, and the video head a one-hot `confusion` `[B, C, C]`.
  """
  input_type = s3d_inputs.check_input(config.input)
  m = check_model_config(config.model)
  codec = frozen_codec_for(config) if input_type != 'rgb' else None
  augmentation = downstream.from_config(config.code_augment, codec=codec)
  if augmentation.active and input_type != 'codes':
    raise ValueError(
        f'config.code_augment augments codes; config.input={input_type!r}.')
  augmentation.check_num_classes(m.num_classes)
  model = build_model(config, codec.spatial_factor if codec else 1)
  input_key = VIDEO_KEY if input_type == 'rgb' else CODES_KEY
  label_key = LABEL_KEY if m.head == 'video' else FRAME_LABELS_KEY
  network_input = s3d_inputs.network_input(
      input_type, codebook=codec.codebook if codec is not None else None,
      decode=codec.decode if input_type == 'reconstructions' else None)

  def init(rng, batch):
    # Only the input's shape matters: no decoder or lookup in the init graph.
    shape = jax.eval_shape(functools.partial(network_input, {}),
                           batch[input_key])
    x = jnp.zeros(shape.shape, shape.dtype)
    return model.init({'params': rng_lib.fast_init_key(rng)}, x, train=False)

  def loss(params, collections, batch, rng):
    x = network_input(params, batch[input_key])
    labels = batch[label_key]
    if augmentation.train_mode != 'none':
      rng, augment_rng = jax.random.split(rng)
      x, flipped = augmentation.train_input(x, augment_rng)
      labels = augmentation.train_labels(labels, flipped)
    logits, new_collections = model.apply(
        {'params': params, **collections}, x, train=True,
        rngs={'dropout': rng}, mutable=list(collections.keys()))
    per_example = per_example_metrics(logits, labels)
    metrics = {k: jnp.mean(v) for k, v in per_example.items()}
    # Same structure as `collections` (plain dict), as the core expects.
    new_collections = {k: new_collections[k] for k in collections}
    return metrics['loss'], (metrics, new_collections)

  def predict(params, collections, batch):
    x = network_input(params, batch[input_key])
    # Test-time views (crops, flips) of the clip, logits averaged.
    return downstream.average_over_views(
        lambda view: model.apply({'params': params, **collections}, view,
                                 train=False),
        augmentation.eval_inputs(x), augmentation)

  def score(logits, batch):
    labels = batch[label_key]
    if logits.ndim == 3:
      # Frames no clip covered have NaN logits (multi-clip evaluation).
      return per_example_metrics(logits, labels, ~jnp.isnan(logits[..., 0]))
    metrics = per_example_metrics(logits, labels)
    metrics['confusion'] = confusion_one_hot(logits, labels)
    return metrics

  def evaluate(params, collections, batch):
    return score(predict(params, collections, batch), batch)

  time_keys = (input_key,) + ((FRAME_LABELS_KEY,) if m.head == 'frame'
                              else ())
  task = task_lib.Task(
      name=NAME, init=init, loss=loss, evaluate=evaluate,
      input_keys=(input_key, label_key), time_keys=time_keys,
      predict=predict, score=score)
  return S3DClassifier(task, input_key, label_key, codec, augmentation,
                       network_input, model)


def confusion_one_hot(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """`[B, C, C]`: 1 at (true class, top-1 class) of each video.

  Summed over a split (the core's evaluation loop) it is the confusion
  matrix; row = true class, column = predicted class.
  """
  c = logits.shape[-1]
  true = jax.nn.one_hot(labels.astype(jnp.int32), c, dtype=jnp.float32)
  predicted = jax.nn.one_hot(jnp.argmax(logits, -1), c, dtype=jnp.float32)
  return true[:, :, None] * predicted[:, None, :]
