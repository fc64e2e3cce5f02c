r"""Video-level learning with collaborative memory (Yang et al., CVPR 2021).

Each training example is a whole video: frames `[T, H, W, 3]` uint8
(`config.input='rgb'`) or a frozen codec's codes `[T_c, H_c, W_c, N]`
(`'codes'`). On device, N clips of `clip_frames` frames are sampled, one
random start in each of N equal segments (Sec. 3.1), passed through the
backbone (S3D, built for its input by `cvision.models.s3d_inputs` as the S3D
project builds it: codes embedded in the codec's codebook, or read as their
motion with `model.code_correlation_only`), optionally
combined by the collaborative memory (`cvision.projects.collab_memory.network`) and
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

`cm.clip_frames` counts video frames whatever the input: codes cut their
clips along the code time axis, `clip_frames / temporal_stride` code steps of
the codec that wrote them, so an RGB and a codes run see clips of the same
span of the video.

Evaluation: the global memory is built from `eval.memory_clips` uniformly
spaced clips and shared by the `eval.num_clips` test clips; softmax scores
are averaged over the test clips.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from cvision.core import config_utils
from cvision.core import precision
from cvision.core import task as task_lib
from cvision.models import s3d
from cvision.models import s3d_inputs
from cvision.projects.codec import frozen as frozen_codec
from cvision.projects.collab_memory import network as collab_memory

NAME = 'collab_memory'
STRATEGIES = ('batch_reduction', 'multi_iteration')
CLIP_SAMPLINGS = ('starts', 'segments')
INPUTS = ('rgb', 'codes')
VIDEO_KEY = 'video'
CODES_KEY = 'codes'
LABEL_KEY = 'label'


def check_cm_config(cm: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.cm` (fields: experiments/configs/collab_memory.py), checked."""
  if cm.strategy not in STRATEGIES:
    raise ValueError(f'config.cm.strategy={cm.strategy!r}: expected one '
                     f'of {STRATEGIES}.')
  if cm.memory not in (*collab_memory.INTERACTIONS, 'none'):
    raise ValueError(f'config.cm.memory={cm.memory!r}: expected one of '
                     f"{(*collab_memory.INTERACTIONS, 'none')}.")
  if cm.clip_sampling not in CLIP_SAMPLINGS:
    raise ValueError(f'config.cm.clip_sampling={cm.clip_sampling!r}: '
                     f'expected one of {CLIP_SAMPLINGS}.')
  if cm.num_clips < 1 or cm.clip_frames < 1:
    raise ValueError('config.cm.num_clips and config.cm.clip_frames must be '
                     f'>= 1, got {cm.num_clips}, {cm.clip_frames}.')
  return cm


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


def check_input(config: ml_collections.ConfigDict) -> str:
  """`config.input` and `config.model` (the backbone's S3D fields), checked."""
  config_utils.check_fields(config.model, s3d_inputs.MODEL_FIELDS,
                            'collab_memory model config',
                            'the collaborative-memory backbone')
  return s3d_inputs.check_input(config.input, INPUTS)


def codec_for(config: ml_collections.ConfigDict
              ) -> frozen_codec.FrozenCodec | None:
  """The frozen codec whose codes `config.input='codes'` reads, else None."""
  if check_input(config) != 'codes':
    return None
  if not config.data.dataset_dir:
    raise ValueError(
        "config.input='codes' reads a code dataset: pass "
        '--config.data.dataset_dir=<codec workdir>/codes/<dataset> (written '
        "by the codec's --mode=encode).")
  return frozen_codec.codec_for_code_dataset(
      config.codec, config.data.dataset_dir, what="collab_memory on codes")


def clip_length(clip_frames: int,
                codec: frozen_codec.FrozenCodec | None) -> int:
  """A clip's length on the input's time axis: frames, or code steps."""
  if codec is None:
    return clip_frames
  stride = int(codec.model_config.temporal_stride)
  if clip_frames % stride:
    raise ValueError(
        f'config.cm.clip_frames={clip_frames} frames is not a whole number '
        f'of code steps of the codec in {codec.workdir} (temporal stride '
        f'{stride}).')
  return clip_frames // stride


def build_backbone(config: ml_collections.ConfigDict,
                   spatial_factor: int = 1) -> s3d.S3D:
  """The S3D backbone of `config.model`, up to its last feature map.

  `spatial_factor`: pixels per code cell of the codes' codec (codes only).
  """
  return s3d_inputs.s3d_for_input(
      config.model, check_input(config), spatial_factor=spatial_factor,
      head='none', compute_dtype=config.train.compute_dtype)


@dataclasses.dataclass(frozen=True)
class CollabMemoryModel:
  """The collaborative-memory task and the parts its report measures.

  Attributes:
    task: the core's task.
    cm: `config.cm`, checked.
    backbone_features: `(params, collections, clips [N, B, L, H, W, C],
      train, rng) -> ([N, B, T', H', W', C'], new collections)`; clips as
      the backbone reads them (`network_input`).
    video_scores: `(params, collections, video) -> [B, K]`, the softmax
      scores averaged over the test clips (what inference costs); `video`
      is the raw batch entry.
    input_key: 'video' (rgb) or 'codes'.
    clip_length: `cm.clip_frames` on the input's time axis (frames, or code
      steps for codes).
    network_input: `(params, raw clips) -> backbone input`
      (`s3d_inputs.network_input`).
    codec: the frozen codec of codes (None for rgb).
  """
  task: task_lib.Task
  cm: ml_collections.ConfigDict
  backbone_features: Callable[..., Any]
  video_scores: Callable[..., jax.Array]
  input_key: str
  clip_length: int
  network_input: s3d_inputs.NetworkInput
  codec: frozen_codec.FrozenCodec | None


def build_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return build(config).task


def build(config: ml_collections.ConfigDict) -> CollabMemoryModel:
  """The video-level classifier of `config.model` (S3D) and `config.cm`."""
  cm = check_cm_config(config.cm)
  m = config.model
  dtype = precision.compute_dtype(config.train.compute_dtype)
  codec = codec_for(config)
  backbone = build_backbone(config, codec.spatial_factor if codec else 1)
  input_key = CODES_KEY if codec is not None else VIDEO_KEY
  length = clip_length(cm.clip_frames, codec)
  frames = s3d_inputs.network_input(
      config.input, codebook=codec.codebook if codec is not None else None)
  feature_channels = _mixed_5c_channels(backbone)
  memory = None
  if cm.memory != 'none':
    memory = collab_memory.CollaborativeMemory(
        channels=feature_channels, interaction=cm.memory,
        infusion=cm.infusion, reduction=cm.reduction, dtype=dtype)
  head = collab_memory.VideoLevelHead(
      num_classes=m.num_classes, memory=memory,
      dropout_rate=m.dropout_rate, dtype=dtype)
  eval_clips = int(config.eval.num_clips)
  memory_clips = int(config.eval.memory_clips)

  def backbone_features(params, collections, clips, train, rng):
    """`[N, B, L, H, W, C]` -> (`[N, B, T', H', W', C']`, new collections)."""
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
    raw = batch[input_key]
    # Only the input's shape matters: no codebook lookup in the init graph.
    shape = jax.eval_shape(lambda r: frames({}, r), jax.ShapeDtypeStruct(
        (1, length, *raw.shape[2:]), raw.dtype))
    clip = jnp.zeros(shape.shape, jnp.float32)
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
    video = batch[input_key]
    clip_rng, dropout_rng, head_rng = jax.random.split(rng, 3)
    starts = segment_clip_starts(clip_rng, video.shape[1], cm.num_clips,
                                 length, cm.clip_sampling)
    clips = frames(params, gather_clips(video, starts, length))
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
        video, uniform_clip_starts(num_frames, eval_clips, length), length))
    features, _ = backbone_features(params, collections, test, False, None)
    source = None
    if memory is not None and memory_clips != eval_clips:
      context = frames(params, gather_clips(
          video, uniform_clip_starts(num_frames, memory_clips, length),
          length))
      source, _ = backbone_features(params, collections, context, False, None)
    logits = head.apply({'params': params['head']}, features, train=False,
                        memory_source=source)
    return jnp.mean(jax.nn.softmax(logits, axis=-1), axis=0)

  def evaluate(params, collections, batch):
    scores = video_scores(params, collections, batch[input_key])
    labels = batch[LABEL_KEY].astype(jnp.int32)
    return {'top1': (jnp.argmax(scores, -1) == labels).astype(jnp.float32),
            'nll': -jnp.log(jnp.take_along_axis(
                scores, labels[:, None], axis=-1)[:, 0] + 1e-9)}

  def frozen(params):
    # The backbone's parameters, for the optimizer to leave alone.
    return {name: jax.tree.map(lambda _: name == 'backbone', subtree)
            for name, subtree in params.items()}

  task = task_lib.Task(
      name=NAME, init=init, loss=loss, evaluate=evaluate,
      input_keys=(input_key, LABEL_KEY), time_keys=(input_key,),
      frozen=frozen if cm.freeze_backbone else None)
  return CollabMemoryModel(task, cm, backbone_features, video_scores,
                           input_key, length, frames, codec)


def _mixed_5c_channels(model: s3d.S3D) -> int:
  """Channels of S3D's last conv map: the sum of Mixed_5c's branches."""
  c0, (_, c1), (_, c2), c3 = s3d.MIXED_CHANNELS['Mixed_5c']
  return sum(model._ch(c) for c in (c0, c1, c2, c3))  # pylint: disable=protected-access
