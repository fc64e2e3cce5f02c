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

import functools
import os
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from cvision.augment import downstream
from cvision.core import config_utils
from cvision.core import metric_logging
from cvision.core import precision
from cvision.core import sharding
from cvision.core import task as task_lib
from cvision.core import trainer
from cvision.codec import frozen
from cvision.models import code_embedding
from cvision.models import s3d
from data_pipelines import input_pipeline

NAME = 's3d_classification'
INPUTS = ('rgb', 'codes', 'reconstructions')
HEADS = ('video', 'frame')
VIDEO_KEY = 'video'
CODES_KEY = 'codes'
LABEL_KEY = 'label'
FRAME_LABELS_KEY = 'frame_labels'
TOP_K = 5


def default_model_config() -> ml_collections.ConfigDict:
  """S3D hyper-parameters; `config.model` overrides any of them."""
  return ml_collections.ConfigDict({
      'num_classes': 8,
      'width_multiplier': 1.0,  # Scales every channel count.
      'min_channels': 8,
      'gating': False,  # True: S3D-G.
      'dropout_rate': 0.5,
      'head': 'video',  # 'video': [B, classes]; 'frame': [B, T, classes].
      # Channels of the first two convs. The paper changes them for codes
      # (App. E.1, Figs. 13-14) but states the values only in its figures.
      'stem_conv1_channels': 64,
      'stem_conv2_channels': 64,
      # False: the first conv is one full conv of `stem_conv1_kernel` instead
      # of S3D's 1x7x7 then 7x1x1 (`s3d.StemConfig.conv1_separable`).
      'stem_conv1_separable': True,
      'stem_conv1_kernel': (7, 7, 7),
      # codes only: > 0 projects the embeddings to this many channels before
      # the stem (not in the paper; cheaper for wide embeddings, see
      # `s3d.S3D.input_projection`).
      'code_projection_channels': 0,
      # codes only: > 0 adds the cosine similarity of each code cell with
      # its neighbours up to this many cells away one step later as input
      # channels (not in the paper; `code_embedding.temporal_correlation`).
      'code_correlation_radius': 0,
      # codes only: True feeds S3D the correlations alone, without the
      # embeddings (needs code_correlation_radius > 0).
      'code_correlation_only': False,
  })


def resolve_model_config(model_config: Any) -> ml_collections.ConfigDict:
  """Defaults overridden by `model_config`; unknown fields raise ValueError."""
  config = config_utils.with_defaults(default_model_config(), model_config,
                                      'S3D model')
  if config.head not in HEADS:
    raise ValueError(f'config.model.head={config.head!r}: expected one of '
                     f'{HEADS}.')
  if config.code_correlation_only and config.code_correlation_radius < 1:
    raise ValueError(
        'config.model.code_correlation_only=True feeds S3D the code '
        'correlations alone: set config.model.code_correlation_radius >= 1 '
        f'(got {config.code_correlation_radius}).')
  return config


def _frozen_codec_for(config: ml_collections.ConfigDict) -> frozen.FrozenCodec:
  """The codec named by `config.codec`, checked against the code dataset."""
  codec_config = config.get('codec', ml_collections.ConfigDict())
  workdir = codec_config.get('workdir', '')
  if not workdir:
    raise ValueError(
        f'config.input={config.input!r} needs the codec that wrote the codes: '
        'pass --config.codec.workdir=<the codec run\'s --workdir>.')
  if not config.data.get('dataset_dir'):
    raise ValueError(
        f'config.input={config.input!r} reads a code dataset: pass '
        '--config.data.dataset_dir=<codec workdir>/codes/<dataset> (written '
        'by the codec\'s --mode=encode).')
  metadata = frozen.code_dataset_metadata(config.data.dataset_dir)
  # The codebook must be the one that wrote the codes: a codec trained on
  # after encoding has moved its entries.
  step = codec_config.get('step', 0) or metadata.get('codec_checkpoint_step')
  codec = frozen.load_frozen_codec(
      workdir, preset=codec_config.get('preset', ''), step=step,
      with_params=config.input == 'reconstructions')
  stored = (metadata.get('num_codebooks'), metadata.get('codebook_size'))
  if metadata and stored != codec.codebook.shape[:2]:
    raise ValueError(
        f'{config.data.dataset_dir} holds codes of (N, K) = {stored}, the '
        f'codec in {workdir} has {codec.codebook.shape[:2]}.')
  written_by = metadata.get('codec_workdir')
  if written_by and os.path.abspath(written_by) != codec.workdir:
    logging.warning('%s was written by the codec in %s; using the one in %s.',
                    config.data.dataset_dir, written_by, codec.workdir)
  return codec


def code_stem(spatial_factor: int, conv1_channels: int = 64,
              conv2_channels: int = 64,
              conv1_separable: bool = True,
              conv1_kernel: Sequence[int] = (7, 7, 7)) -> s3d.StemConfig:
  """The stem for codes at 1/`spatial_factor` of the pixel grid."""
  # Only the ratio matters; 64 keeps the ceil divisions of the check exact.
  return s3d.stem_for_input((1, 64, 64),
                            (1, 64 * spatial_factor, 64 * spatial_factor),
                            conv1_channels, conv2_channels, conv1_separable,
                            conv1_kernel)


def stem_from_config(model_config: ml_collections.ConfigDict,
                     spatial_factor: int = 1) -> s3d.StemConfig:
  """The stem of a resolved `config.model`, for inputs at 1/`spatial_factor`.

  1 is pixels (RGB or decoded codes); codes pass their codec's factor.
  """
  return code_stem(spatial_factor, model_config.stem_conv1_channels,
                   model_config.stem_conv2_channels,
                   model_config.stem_conv1_separable,
                   model_config.stem_conv1_kernel)


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
# Multi-clip evaluation.


def clip_starts(num_frames: int, num_clips: int,
                clip_frames: int) -> list[int]:
  """First frames of `num_clips` uniformly spaced clips of `clip_frames`.

  One clip is centred; more clips span the video from its first frame to its
  last, evenly (rounded), overlapping when they must.
  """
  if num_clips < 1:
    raise ValueError(f'num_clips must be >= 1, got {num_clips}.')
  if not 1 <= clip_frames <= num_frames:
    raise ValueError(f'clip_frames={clip_frames} must be in [1, '
                     f'{num_frames}] (the frames of the example).')
  span = num_frames - clip_frames
  if num_clips == 1:
    return [span // 2]
  return [int(i * span / (num_clips - 1) + 0.5) for i in range(num_clips)]


def multi_clip_logits(apply_fn: Callable[[jax.Array], jax.Array],
                      video_or_codes: jax.Array, num_clips: int,
                      clip_frames: int) -> jax.Array:
  """Logits averaged over `num_clips` uniformly spaced temporal clips.

  Clips go through `apply_fn` one at a time, so memory is that of one clip
  whatever `num_clips` is, and a jitted `apply_fn` compiles once.

  Args:
    apply_fn: `[B, clip_frames, ...] -> [B, C]` (video logits) or
      `[B, clip_frames, C]` (per-frame logits).
    video_or_codes: `[B, T, ...]`, T >= clip_frames (pixels or codes, as
      `apply_fn` takes them).
    num_clips: clips per example (see `clip_starts`).
    clip_frames: length of a clip along axis 1.

  Returns:
    `[B, C]`: the mean of the clips' logits; or, for per-frame logits,
    `[B, T, C]`: each frame's logits averaged over the clips that hold it,
    NaN on frames that no clip holds.
  """
  x = video_or_codes
  starts = clip_starts(x.shape[1], num_clips, clip_frames)
  outs = [apply_fn(jax.lax.slice_in_dim(x, s, s + clip_frames, axis=1))
          for s in starts]
  if outs[0].ndim == 2:
    return sum(outs[1:], outs[0]) / len(outs)
  if outs[0].ndim != 3 or outs[0].shape[1] != clip_frames:
    raise ValueError(f'apply_fn gave logits of shape {outs[0].shape}; '
                     f'expected [B, C] or [B, {clip_frames}, C].')
  b, _, c = outs[0].shape
  total = jnp.zeros((b, x.shape[1], c), outs[0].dtype)
  count = np.zeros((x.shape[1],), np.float32)
  for s, out in zip(starts, outs):
    total = total.at[:, s:s + clip_frames].add(out)
    count[s:s + clip_frames] += 1
  count = jnp.asarray(count)[None, :, None]
  return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


# ---------------------------------------------------------------------------
# The task.


def _rbg_key(rng: jax.Array) -> jax.Array:
  """The same 64 bits as an 'rbg' key.

  S3D has ~120 initialisers; with threefry keys XLA spends ~30 s on a 2-core
  CPU compiling their hash chains, with 'rbg' (one RngBitGenerator op each)
  about a third of that. The values differ from threefry's and, like any
  RngBitGenerator output, may differ between backends.
  """
  if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)
  data = jnp.ravel(rng).astype(jnp.uint32)[:2]
  return jax.random.wrap_key_data(jnp.concatenate([data, data]), impl='rbg')


def build_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  """The S3D classification task of `config.input` and `config.model`.

  Metrics of `loss` (batch means): loss, top1, top5 (video head) or loss,
  frame_accuracy, frame_top5 (frame head). `evaluate` returns the same per
  video, `[B]`.
  Extras: 'logits(params, collections, inputs) -> logits' (inputs: the raw
  `video` or `codes` entry; averaged over `config.code_augment`'s test-time
  views), 'network_input(params, inputs) -> [B, T, H, W,
  C]' (what S3D sees), 'metrics(logits, labels, frame_mask=None)',
  'input_key', 'label_key', 'model() -> S3D', 'codec' (the `FrozenCodec`, or
  None for rgb) and 'codebook' (`[N, K, D]` numpy, or None).
  """
  input_type = config.get('input', 'rgb')
  if input_type not in INPUTS:
    raise ValueError(f'config.input={input_type!r}: expected one of {INPUTS}.')
  m = resolve_model_config(config.get('model', None))
  codec = _frozen_codec_for(config) if input_type != 'rgb' else None
  augmentation = downstream.from_config(
      config.get('code_augment', None), codec=codec)
  if augmentation.active and input_type != 'codes':
    raise ValueError(
        f'config.code_augment augments codes; config.input={input_type!r}.')
  augmentation.check_num_classes(m.num_classes)

  stem = stem_from_config(
      m, codec.spatial_factor if input_type == 'codes' else 1)
  model = s3d.S3D(
      num_classes=m.num_classes, width_multiplier=m.width_multiplier,
      min_channels=m.min_channels, gating=m.gating, stem=stem, head=m.head,
      dropout_rate=m.dropout_rate,
      input_projection=(m.code_projection_channels
                        if input_type == 'codes' else 0),
      input_correlation=(m.code_correlation_radius
                         if input_type == 'codes' else 0),
      input_correlation_only=(m.code_correlation_only
                              and input_type == 'codes'),
      # S3D computes in its `dtype` whatever its parameters' dtype is.
      dtype=precision.compute_dtype(
          config.get('train', {}).get('compute_dtype', 'float32')))
  input_key = VIDEO_KEY if input_type == 'rgb' else CODES_KEY
  label_key = LABEL_KEY if m.head == 'video' else FRAME_LABELS_KEY
  # A device constant, hoisted by jit as an argument: never a parameter, so
  # neither the optimizer nor a checkpoint ever sees it.
  codebook = jnp.asarray(codec.codebook) if codec is not None else None

  def network_input(params, raw: jax.Array) -> jax.Array:
    """The raw batch entry -> `[B, T, H, W, C]` in the compute dtype."""
    dtype = precision.floating_dtype(params)
    if input_type == 'rgb':
      return precision.to_unit_float(raw, params)
    if input_type == 'codes':
      # embed_codes stops gradients into the codebook as well.
      return code_embedding.embed_codes(codebook, raw, dtype)
    return codec.decode(raw).astype(dtype)

  def init(rng, batch):
    # Only the input's shape matters: no decoder or lookup in the init graph.
    shape = jax.eval_shape(functools.partial(network_input, {}),
                           batch[input_key])
    x = jnp.zeros(shape.shape, shape.dtype)
    return model.init({'params': _rbg_key(rng)}, x, train=False)

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

  def logits_fn(params, collections, raw):
    x = network_input(params, raw)
    # Test-time views (crops, flips) of the clip, logits averaged.
    return downstream.average_over_views(
        lambda view: model.apply({'params': params, **collections}, view,
                                 train=False),
        augmentation.eval_inputs(x), augmentation)

  def evaluate(params, collections, batch):
    return per_example_metrics(
        logits_fn(params, collections, batch[input_key]), batch[label_key])

  return task_lib.Task(
      name=NAME,
      init=init,
      loss=loss,
      evaluate=evaluate,
      input_keys=(input_key, label_key),
      extras={
          'logits': logits_fn,
          'network_input': network_input,
          'metrics': per_example_metrics,
          'input_key': input_key,
          'label_key': label_key,
          'model': lambda: model,
          'codec': codec,
          'codebook': codec.codebook if codec is not None else None,
          'augmentation': augmentation,
      })


# ---------------------------------------------------------------------------
# --mode=eval: multi-clip evaluation.


@jax.jit
def _masked_moments(metrics: dict[str, jax.Array], valid: jax.Array):
  """Sums and sums of squares over real examples, and their count."""
  w = valid.astype(jnp.float32)
  return ({k: jnp.sum(v * w) for k, v in metrics.items()},
          {k: jnp.sum(jnp.square(v) * w) for k, v in metrics.items()},
          jnp.sum(w))


_COLUMNS = {'top1': 'top-1', 'top5': 'top-5',
            'frame_accuracy': 'frame top-1', 'frame_top5': 'frame top-5'}


def _format_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                  with_std: bool) -> str:
  lines = ['| clips | ' + ' | '.join(_COLUMNS[k] for k in metrics) + ' |',
           '|---' * (len(metrics) + 1) + '|']
  for r in rows:
    cells = [f'{100 * r[k]:.1f} ± {100 * r[k + "_std"]:.1f}' if with_std
             else f'{100 * r[k]:.1f}' for k in metrics]
    lines.append(f'| {r["num_clips"]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def confusion_matrix(labels: np.ndarray, logits: np.ndarray,
                     valid: np.ndarray) -> np.ndarray:
  """Counts of (true class, top-1 class) over the valid videos.

  Args:
    labels: `[B]` int true classes.
    logits: `[B, C]` video logits.
    valid: `[B]` bool, False for padding.

  Returns:
    `[C, C]` int64; row = true class, column = predicted class.
  """
  labels, logits = np.asarray(labels), np.asarray(logits)
  valid = np.asarray(valid, bool)
  counts = np.zeros((logits.shape[-1],) * 2, np.int64)
  np.add.at(counts, (labels[valid], np.argmax(logits, -1)[valid]), 1)
  return counts


def _class_names(config: ml_collections.ConfigDict, label_key: str,
                 num_classes: int) -> list[str]:
  """The dataset's names for its classes, or their ids if it has none."""
  feature = input_pipeline.load_builder(config.data).info.features[label_key]
  names = list(getattr(feature, 'names', None) or [])
  return names if len(names) == num_classes else [
      str(i) for i in range(num_classes)]


def _format_confusion(counts: np.ndarray, names: Sequence[str]) -> str:
  lines = ['| true \\ predicted | ' + ' | '.join(names) + ' |',
           '|---' * (len(names) + 1) + '|']
  for name, row in zip(names, counts):
    lines.append(f'| {name} | ' + ' | '.join(str(int(v)) for v in row) + ' |')
  return '\n'.join(lines)


def _evaluate_clips_once(apply_fn, metrics_fn, batches, input_key: str,
                         label_key: str, num_clips: int,
                         clip_frames: int) -> dict[str, Any]:
  """Mean and std over videos of each per-video metric, for `num_clips`.

  Video heads also get `confusion`, `[C, C]` counts (`confusion_matrix`).
  """
  sums = squares = confusion = None
  count = 0.0
  for batch in batches:
    valid = batch.pop(input_pipeline.VALID_KEY)
    logits = multi_clip_logits(apply_fn, batch[input_key], num_clips,
                               clip_frames)
    s, q, n = jax.device_get(
        _masked_moments(metrics_fn(logits, batch[label_key]), valid))
    sums = s if sums is None else {k: sums[k] + s[k] for k in s}
    squares = q if squares is None else {k: squares[k] + q[k] for k in q}
    count += float(n)
    if logits.ndim == 2:
      c = confusion_matrix(*jax.device_get((batch[label_key], logits, valid)))
      confusion = c if confusion is None else confusion + c
  row = {'num_clips': int(num_clips), 'num_videos': int(count)}
  if confusion is not None:
    row['confusion'] = confusion.tolist()
  for k in sorted(sums):
    mean = float(sums[k]) / count
    row[k] = mean
    row[k + '_std'] = float(np.sqrt(max(squares[k] / count - mean**2, 0.0)))
  return row


def evaluate_clips(config: ml_collections.ConfigDict,
                   workdir: str) -> dict[str, Any]:
  """`--mode=eval`: accuracy over `eval.num_clips` temporal clips per video.

  Restores the latest checkpoint in `workdir` and evaluates `eval.split`
  once per entry of `eval.num_clips`, averaging logits over that many
  uniformly spaced clips of `eval.clip_frames` frames (0: the training clip
  length `data.train_clip_frames`, or whole videos). Reports top-1 / top-5
  (video head) or per-frame accuracy, mean and std over videos (frame head,
  as the paper's Table 3), in percent in the table and as fractions in JSON.

  Writes `WORKDIR/eval/s3d_<split>.json` and `WORKDIR/eval/s3d_<split>.md`.
  """
  if not config.eval.num_clips:
    raise ValueError('config.eval.num_clips is empty; e.g. (1, 2, 4).')
  run = trainer.restore_trained(config, workdir,
                                shapes_split=config.eval.split)
  task, split = run.task, config.eval.split
  input_key, label_key = task.extras['input_key'], task.extras['label_key']
  frame_head = label_key == FRAME_LABELS_KEY
  params = precision.cast_floating(
      run.state.params, precision.compute_dtype(config.train.compute_dtype))
  apply_fn = functools.partial(jax.jit(task.extras['logits']), params,
                               run.state.collections)

  @jax.jit
  def metrics_fn(logits, labels):
    # Frames between clips have NaN logits (see `multi_clip_logits`).
    mask = ~jnp.isnan(logits[..., 0]) if frame_head else None
    return per_example_metrics(logits, labels, mask)

  source = run.source(split)
  num_frames = int(np.shape(source[0][input_key])[0])
  clip_frames = (config.eval.get('clip_frames', 0)
                 or config.data.get('train_clip_frames', 0) or num_frames)
  rows = []
  try:
    for num_clips in config.eval.num_clips:
      batches = input_pipeline.eval_batches(
          source, global_batch_size=config.data.batch_size,
          keys=task.input_keys, sharding=sharding.batch_sharding(run.mesh),
          max_batches=config.eval.get('num_batches', 0) or None)
      rows.append(_evaluate_clips_once(apply_fn, metrics_fn, batches,
                                       input_key, label_key, num_clips,
                                       clip_frames))
      logging.info('%s, %d clip(s) of %d frames: %s', split, num_clips,
                   clip_frames, rows[-1])
  finally:
    run.checkpointer.close()

  step = int(jax.device_get(run.state.step))
  shown = ['frame_accuracy', 'frame_top5'] if frame_head else ['top1', 'top5']
  table = _format_table(rows, shown, with_std=frame_head)
  if 'confusion' in rows[0]:
    names = _class_names(config, label_key, len(rows[0]['confusion']))
    table += (f'\n\nConfusion matrix, {rows[0]["num_clips"]} clip(s): '
              'rows are the true class, columns the top-1 class.\n\n'
              + _format_confusion(np.asarray(rows[0]['confusion']), names))
  head = 'frame' if frame_head else 'video'
  title = (f'S3D ({config.input}, {head} head) on {split} @ step {step}: '
           f'{rows[0]["num_videos"]} videos, clips of {clip_frames} of '
           f'{num_frames} frames, accuracy in %'
           + (' (mean ± std over videos).' if frame_head else '.'))
  result = {'step': step, 'split': split, 'input': config.input,
            'head': head, 'clip_frames': clip_frames,
            'num_frames': num_frames, 'num_videos': rows[0]['num_videos'],
            'rows': rows, 'table': table}
  augmentation = task.extras['augmentation']
  if augmentation.active:
    result['code_augment'] = {
        'train': augmentation.train_mode, 'eval': augmentation.eval_mode,
        'eval_views': augmentation.eval_views,
        'augmenter': (augmentation.augmenter.workdir
                      if augmentation.augmenter else '')}
    title += (f' Code augmentation: train {augmentation.train_mode}, test '
              f'{augmentation.eval_mode} x{augmentation.eval_views} views.')
  codec = task.extras['codec']
  if codec is not None:
    cr = frozen.code_dataset_metadata(config.data.dataset_dir).get(
        'compression_rate')
    result['codec'] = {'workdir': codec.workdir, 'step': codec.step,
                       'compression_rate': cr}
    title += f' Codes of {codec.workdir} @ step {codec.step}' + (
        f', CR {cr:.1f}.' if cr else '.')
  out_dir = os.path.join(workdir, 'eval')
  metric_logging.write_json(os.path.join(out_dir, f's3d_{split}.json'),
                            result)
  if jax.process_index() == 0:
    with open(os.path.join(out_dir, f's3d_{split}.md'), 'w') as f:
      f.write(f'{title}\n\n{table}\n')
  logging.info('%s\n%s', title, table)
  return result


# `--mode`s beyond train (see `cvision.tasks.modes`).
MODES = {'eval': evaluate_clips}
