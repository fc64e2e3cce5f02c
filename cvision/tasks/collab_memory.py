r"""Video-level learning with collaborative memory (Yang et al., CVPR 2021).

Each training example is a whole video `[T, H, W, 3]`. On device, N clips of
`clip_frames` frames are sampled, one random start in each of N equal
segments (Sec. 3.1), passed through the backbone (S3D, on RGB), optionally
combined by the collaborative memory (`cvision.models.collab_memory`) and
classified; the video-level loss (Eq. 1) is

  clip_loss_weight * mean_i CE(s_i, y) + CE(mean_i s_i, y)

with s_i the clip logits. Fitting N clips in memory (Sec. 3.3), by
`config.cm.strategy`:

* 'batch_reduction': the N clips of the B videos go through the backbone
  together (vmapped over the clip index);
* 'multi_iteration': a scan over the clip index, rematerialised, so only
  one clip's activations are alive at a time plus the clip features.

In both, batch norm computes its statistics per clip index, i.e. over clips
of *different* videos (as the paper prescribes for batch reduction), and the
running averages are the mean of the per-clip updates; so the two strategies
give the same loss, the same gradients and the same new state.

Evaluation: the global memory is built from `eval.memory_clips` uniformly
spaced clips and shared by the `eval.num_clips` test clips; softmax scores
are averaged over the test clips.
"""
from __future__ import annotations

import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import optax

from cvision.core import config_utils
from cvision.core import precision
from cvision.core import run_tables
from cvision.core import task as task_lib
from cvision.core import trainer
from cvision.models import collab_memory
from cvision.models import s3d
from data_pipelines import input_pipeline

NAME = 'collab_memory'
STRATEGIES = ('batch_reduction', 'multi_iteration')
CLIP_SAMPLINGS = ('starts', 'segments')
VIDEO_KEY = 'video'
LABEL_KEY = 'label'


def default_cm_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      'num_clips': 4,  # N clips per video per step (1 = clip-level training).
      'clip_frames': 8,
      # How training clips spread over a video (`segment_clip_starts`).
      'clip_sampling': 'starts',  # starts | segments
      'memory': 'associative',  # associative | average | none
      'infusion': 'gating',  # gating | residual
      'reduction': 4,  # Channel reduction ratio r of the memory.
      'clip_loss_weight': 1.0,  # Weight of the clip-level terms of Eq. 1.
      'strategy': 'batch_reduction',  # batch_reduction | multi_iteration
      'freeze_backbone': False,  # Only the memory and classifier train.
  })


def resolve_cm_config(cm_config: Any) -> ml_collections.ConfigDict:
  config = config_utils.with_defaults(default_cm_config(), cm_config,
                                      'collaborative memory')
  if config.strategy not in STRATEGIES:
    raise ValueError(f'config.cm.strategy={config.strategy!r}: expected one '
                     f'of {STRATEGIES}.')
  if config.memory not in (*collab_memory.INTERACTIONS, 'none'):
    raise ValueError(f'config.cm.memory={config.memory!r}: expected one of '
                     f"{(*collab_memory.INTERACTIONS, 'none')}.")
  if config.clip_sampling not in CLIP_SAMPLINGS:
    raise ValueError(f'config.cm.clip_sampling={config.clip_sampling!r}: '
                     f'expected one of {CLIP_SAMPLINGS}.')
  if config.num_clips < 1 or config.clip_frames < 1:
    raise ValueError('config.cm.num_clips and config.cm.clip_frames must be '
                     f'>= 1, got {config.num_clips}, {config.clip_frames}.')
  return config


def segment_clip_starts(rng: jax.Array, num_frames: int, num_clips: int,
                        clip_frames: int,
                        sampling: str = 'starts') -> jax.Array:
  """One random start per segment: `[num_clips]` ints (Sec. 3.1).

  `sampling`:
  * 'starts': the valid starts `[0, T - clip_frames]` are cut into
    `num_clips` equal segments; a start is uniform in its segment. Clips
    cover the whole video, and a clip may reach into the next segment.
  * 'segments': the video itself is cut into `num_clips` equal segments and
    each clip lies inside its own, start uniform over the starts that keep
    it there (TSN's snippet per segment). Test clips, uniformly spaced, then
    see what training clips see when the video's content changes at those
    boundaries; it needs segments of at least `clip_frames` frames.
  """
  if sampling not in CLIP_SAMPLINGS:
    raise ValueError(f'clip sampling {sampling!r}: expected one of '
                     f'{CLIP_SAMPLINGS}.')
  last = num_frames - clip_frames
  if last < 0:
    raise ValueError(f'Videos of {num_frames} frames are shorter than the '
                     f'clips of {clip_frames}.')
  u = jax.random.uniform(rng, (num_clips,))
  if sampling == 'segments':
    bounds = [k * num_frames // num_clips for k in range(num_clips + 1)]
    shortest = min(b - a for a, b in zip(bounds[:-1], bounds[1:]))
    if shortest < clip_frames:
      raise ValueError(
          f"clip sampling 'segments': {num_frames} frames cut into "
          f'{num_clips} segments give segments of {shortest} frames, '
          f"shorter than the clips of {clip_frames}; use 'starts'.")
    first = jnp.asarray(bounds[:-1], jnp.float32)
    choices = jnp.asarray(bounds[1:], jnp.float32) - first - clip_frames + 1
    starts = jnp.floor(first + u * choices).astype(jnp.int32)
    return jnp.minimum(starts, jnp.asarray(bounds[1:]) - clip_frames)
  edges = jnp.linspace(0.0, last + 1, num_clips + 1)
  starts = jnp.floor(edges[:-1] + u * (edges[1:] - edges[:-1]))
  return jnp.clip(starts.astype(jnp.int32), 0, last)


def uniform_clip_starts(num_frames: int, num_clips: int,
                        clip_frames: int) -> jax.Array:
  """Evenly spaced starts covering the video (inference)."""
  last = num_frames - clip_frames
  if last < 0:
    raise ValueError(f'Videos of {num_frames} frames are shorter than the '
                     f'clips of {clip_frames}.')
  if num_clips == 1:
    return jnp.array([last // 2], jnp.int32)
  return jnp.round(jnp.linspace(0, last, num_clips)).astype(jnp.int32)


def gather_clips(videos: jax.Array, starts: jax.Array,
                 clip_frames: int) -> jax.Array:
  """`[B, T, ...]` videos, `[N]` starts -> `[N, B, clip_frames, ...]`."""
  def one(start):
    return jax.lax.dynamic_slice_in_dim(videos, start, clip_frames, axis=1)
  return jax.vmap(one)(starts)


def video_level_loss(clip_logits: jax.Array, labels: jax.Array,
                     clip_loss_weight: float) -> tuple[jax.Array, jax.Array]:
  """Eq. 1. `clip_logits` `[N, B, K]`, labels `[B]` -> (loss, video logits)."""
  labels = labels.astype(jnp.int32)
  clip_ce = optax.softmax_cross_entropy_with_integer_labels(
      clip_logits, jnp.broadcast_to(labels, clip_logits.shape[:2]))
  video_logits = jnp.mean(clip_logits, axis=0)
  video_ce = optax.softmax_cross_entropy_with_integer_labels(video_logits,
                                                             labels)
  return clip_loss_weight * jnp.mean(clip_ce) + jnp.mean(video_ce), video_logits


def build_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  """The video-level classifier of `config.model` (S3D) and `config.cm`."""
  cm = resolve_cm_config(config.get('cm', None))
  m = config.model
  dtype = precision.compute_dtype(
      config.get('train', {}).get('compute_dtype', 'float32'))
  backbone = s3d.S3D(num_classes=m.num_classes,
                     width_multiplier=m.width_multiplier,
                     min_channels=m.get('min_channels', 8),
                     gating=m.get('gating', False), head='none', dtype=dtype)
  feature_channels = _mixed_5c_channels(backbone)
  memory = None
  if cm.memory != 'none':
    memory = collab_memory.CollaborativeMemory(
        channels=feature_channels, interaction=cm.memory,
        infusion=cm.infusion, reduction=cm.reduction, dtype=dtype)
  head = collab_memory.VideoLevelHead(
      num_classes=m.num_classes, memory=memory,
      dropout_rate=m.get('dropout_rate', 0.5), dtype=dtype)
  eval_cfg = config.get('eval', ml_collections.ConfigDict())
  eval_clips = int(eval_cfg.get('num_clips', cm.num_clips))
  memory_clips = int(eval_cfg.get('memory_clips', eval_clips))

  def frames(params, video):
    return precision.to_unit_float(video, params)

  def backbone_features(params, collections, clips, train, rng):
    """`[N, B, L, H, W, 3]` -> (`[N, B, T', H', W', C]`, new collections)."""
    variables = {'params': params['backbone'], **collections}

    def one_clip(index, clip):
      # A frozen backbone is fixed entirely: inference-mode batch norm, its
      # loaded statistics kept, so training sees the features evaluation
      # will see.
      if not train or cm.freeze_backbone:
        return backbone.apply(variables, clip, train=False), collections
      return backbone.apply(
          variables, clip, train=True, mutable=list(collections),
          rngs={'dropout': jax.random.fold_in(rng, index)})

    indices = jnp.arange(clips.shape[0])
    if cm.strategy == 'batch_reduction':
      features, updates = jax.vmap(one_clip)(indices, clips)
    else:
      def body(carry, inputs):
        return carry, jax.checkpoint(one_clip)(*inputs)
      _, (features, updates) = jax.lax.scan(body, None, (indices, clips))
    if cm.freeze_backbone:
      features = jax.lax.stop_gradient(features)
    # Each clip index saw its own batch statistics; the running averages
    # move by the mean of their updates.
    new_collections = jax.tree.map(lambda u: jnp.mean(u, axis=0), updates)
    return features, dict(new_collections)

  def init(rng, batch):
    clip = jnp.zeros((1, cm.clip_frames, *batch[VIDEO_KEY].shape[2:]),
                     jnp.float32)
    backbone_vars = backbone.init({'params': rng}, clip, train=False)
    features = jax.eval_shape(
        lambda v, c: backbone.apply(v, c, train=False), backbone_vars, clip)
    head_vars = head.init(
        {'params': jax.random.fold_in(rng, 1)},
        jnp.zeros((1, *features.shape), features.dtype), train=False)
    return {'params': {'backbone': backbone_vars['params'],
                       'head': head_vars['params']},
            **{k: v for k, v in backbone_vars.items() if k != 'params'}}

  def loss(params, collections, batch, rng):
    video = batch[VIDEO_KEY]
    clip_rng, dropout_rng, head_rng = jax.random.split(rng, 3)
    starts = segment_clip_starts(clip_rng, video.shape[1], cm.num_clips,
                                 cm.clip_frames, cm.clip_sampling)
    clips = frames(params, gather_clips(video, starts, cm.clip_frames))
    features, new_collections = backbone_features(
        params, collections, clips, True, dropout_rng)
    clip_logits = head.apply({'params': params['head']}, features, train=True,
                             rngs={'dropout': head_rng})
    total, video_logits = video_level_loss(clip_logits, batch[LABEL_KEY],
                                           cm.clip_loss_weight)
    labels = batch[LABEL_KEY].astype(jnp.int32)
    metrics = {'loss': total,
               'top1': jnp.mean(jnp.argmax(video_logits, -1) == labels)}
    return total, (metrics, new_collections)

  def video_scores(params, collections, video):
    """Softmax scores `[B, K]` averaged over the test clips (Sec. 4.1)."""
    num_frames = video.shape[1]
    test = frames(params, gather_clips(
        video, uniform_clip_starts(num_frames, eval_clips, cm.clip_frames),
        cm.clip_frames))
    features, _ = backbone_features(params, collections, test, False, None)
    source = None
    if memory is not None and memory_clips != eval_clips:
      context = frames(params, gather_clips(
          video, uniform_clip_starts(num_frames, memory_clips,
                                     cm.clip_frames), cm.clip_frames))
      source, _ = backbone_features(params, collections, context, False, None)
    logits = head.apply({'params': params['head']}, features, train=False,
                        memory_source=source)
    return jnp.mean(jax.nn.softmax(logits, axis=-1), axis=0)

  def evaluate(params, collections, batch):
    scores = video_scores(params, collections, batch[VIDEO_KEY])
    labels = batch[LABEL_KEY].astype(jnp.int32)
    return {'top1': (jnp.argmax(scores, -1) == labels).astype(jnp.float32),
            'nll': -jnp.log(jnp.take_along_axis(
                scores, labels[:, None], axis=-1)[:, 0] + 1e-9)}

  def frozen(params):
    # The backbone's parameters, for the optimizer to leave alone.
    return {name: jax.tree.map(lambda _: name == 'backbone', subtree)
            for name, subtree in params.items()}

  return task_lib.Task(
      name=NAME, init=init, loss=loss, evaluate=evaluate,
      input_keys=(VIDEO_KEY, LABEL_KEY),
      frozen=frozen if cm.freeze_backbone else None,
      extras={'backbone': backbone, 'head': head, 'cm': cm,
              'backbone_features': backbone_features,
              'video_scores': video_scores})


def _mixed_5c_channels(model: s3d.S3D) -> int:
  """Channels of S3D's last conv map: the sum of Mixed_5c's branches."""
  c0, (_, c1), (_, c2), c3 = s3d.MIXED_CHANNELS['Mixed_5c']
  return sum(model._ch(c) for c in (c0, c1, c2, c3))  # pylint: disable=protected-access


# ---------------------------------------------------------------------------
# --mode=eval: accuracy beside the memory's extra inference cost.


def inference_flops(config: ml_collections.ConfigDict,
                    video_shape: tuple[int, ...]) -> dict[str, float]:
  """XLA-counted FLOPs of classifying one video, with and without memory.

  'model': the whole inference (memory clips, test clips, memory, head);
  'backbone': the backbone alone on the test clips, i.e. what multi-clip
  testing without memory costs. Shapes only: no weights are read.
  """
  task = build_task(config)
  video = jax.ShapeDtypeStruct((1, *video_shape), jnp.uint8)
  variables = jax.eval_shape(task.init, jax.random.key(0),
                             {VIDEO_KEY: video})
  params = variables['params']
  collections = {k: v for k, v in variables.items() if k != 'params'}
  cm = task.extras['cm']
  eval_cfg = config.get('eval', ml_collections.ConfigDict())
  num_clips = int(eval_cfg.get('num_clips', cm.num_clips))

  def backbone_only(params, collections, video):
    clips = gather_clips(video, uniform_clip_starts(
        video.shape[1], num_clips, cm.clip_frames), cm.clip_frames)
    clips = precision.to_unit_float(clips, params)
    return task.extras['backbone_features'](params, collections, clips,
                                            False, None)[0]

  return {
      'model': _hlo_flops(task.extras['video_scores'], params, collections,
                          video),
      'backbone': _hlo_flops(backbone_only, params, collections, video),
  }


def _hlo_flops(fn, *args) -> float:
  # The HLO cost model before compilation: the same op counts as after
  # XLA's passes for convs and dots, without paying for a compile.
  analysis = jax.jit(fn).lower(*args).cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis['flops'])


def evaluate_with_flops(config: ml_collections.ConfigDict,
                        workdir: str) -> dict[str, Any]:
  """`--mode=eval`: top-1 and NLL on `eval.split`, and FLOPs per video.

  Writes `WORKDIR/eval/collab_memory_<split>.{json,md}` (one table row).
  """
  generic = trainer.evaluate(config, workdir)
  split = config.eval.split
  video_shape = input_pipeline.load_source(config.data, split)[0][
      VIDEO_KEY].shape
  flops = inference_flops(config, tuple(video_shape))
  cm = resolve_cm_config(config.get('cm', None))
  result = {
      'experiment': os.path.basename(os.path.normpath(workdir)),
      'step': generic['step'], 'split': split,
      'num_clips': cm.num_clips, 'memory': cm.memory,
      'infusion': cm.infusion if cm.memory != 'none' else '-',
      'freeze_backbone': cm.freeze_backbone,
      # Recorded by the training run, whatever flags evaluation is given.
      'warm_start': os.path.exists(os.path.join(workdir, 'warm_start.json')),
      'top1': generic['metrics']['top1'], 'nll': generic['metrics']['nll'],
      'gflops': flops['model'] / 1e9,
      'backbone_gflops': flops['backbone'] / 1e9,
  }
  table = run_tables.write_row(workdir, NAME, split, result, format_table)
  logging.info('%s @ step %d on %s:\n%s', NAME, result['step'], split, table)
  return result


def format_table(rows: list[dict[str, Any]]) -> str:
  """Markdown: the ablation row, top-1, FLOPs against the backbone alone."""
  lines = ['| experiment | train clips | memory | infusion | backbone | '
           'top-1 (%) | GFLOPs / video | extra vs backbone |',
           '|---|---:|---|---|---|---:|---:|---:|']
  for r in rows:
    backbone = ('frozen' if r['freeze_backbone'] else
                'stage-wise' if r.get('warm_start') else 'trained')
    extra = 100 * (r['gflops'] / r['backbone_gflops'] - 1)
    lines.append(
        f"| {r['experiment']} | {r['num_clips']} | {r['memory']} | "
        f"{r['infusion']} | {backbone} | {100 * r['top1']:.1f} | "
        f"{r['gflops']:.3f} | {extra:+.1f}% |")
  return '\n'.join(lines)


def gather_table(config: ml_collections.ConfigDict,
                 workdir: str) -> dict[str, Any]:
  """`--mode=table`: every `WORKDIR/*/eval/collab_memory_<split>.json`.

  Writes `WORKDIR/collab_memory_<split>.md` and returns the rows.
  """
  return run_tables.gather(workdir, NAME, config.eval.split, format_table)


# `--mode`s beyond train (see `cvision.tasks.modes`).
MODES = {'eval': evaluate_with_flops, 'table': gather_table}
