r"""The augmentation network, trained through a frozen codec (Sec. 3.4, 4.5).

For a clip X and random parameters p of one augmentation family, the loss is

  | A(X; p) - decode(a(encode(X), p)) |_1

with `A` the pixel transform (`cvision.projects.augmenter.pixel_transforms`), `encode`
and `decode` the frozen codec (`cvision.projects.codec.frozen`, read once from
`config.codec.workdir`, never trained) and `a` the network
(`cvision.projects.augmenter.network`). `a` sees the codes' quantised latents `[B, T_c,
H_c, W_c, N*D]` (the codebook entries, concatenated) and returns latents of
that shape, which the decoder reads as they are (no re-quantisation).

One network per family: `config.augment.family` is one of 'crop', 'flip',
'brightness', 'saturation', 'rotation', each with its own parameters, or
'all', one network conditioned on the parameters of every family at once (the
inactive families at their identity values, so the active one is implied).
Per-family networks are what the paper trains (a network for crops, one for
flips); 'all' trades some quality for a single network.

Evaluation (per example, `[B]`): each video gets parameters drawn from its
own key (a hash of its pixels), so the figures do not depend on the batch
size; flips are always on (an unflipped clip says nothing). Metrics against
the target A(X; p): `ssim`, `psnr`, `l1` of the learned augmentation; the
same of the plain reconstruction decode(encode(X)) (`*_plain`); of
A(decode(encode(X)); p), the reconstruction augmented in pixels
(`*_decode_then_augment`, what decoding first would give); and, for crops and
flips, of the naive operation on the code grid (`*_code_space`:
`nn_crop.nearest_neighbour_crop`, `nn_crop.flip_code_grid`).
`code_l1` is the mean |a(encode(X), p) - e(A(X; p))|, e the encoder's
latents (its codes' embeddings): how far the learned latents are from what
the encoder gives for the augmented clip, the input a model trained on
codes knows (`code_l1_plain`: of the unaugmented latents; `code_l1_code_space`:
of the code-grid operation). The decoder alone does not pin them down: two
latents can decode alike and still differ for a downstream model.
`config.loss.code_target_weight` > 0 adds that distance to the loss,
weighted (0: the paper's pixel loss alone). `motion_input_l1` (with the same
suffixes) compares what S3D's `motion` input reads instead of the latents:
the cosine similarity of each cell with its neighbours one frame later
(`code_embedding.temporal_correlation`, radius 1), learned against e(A(X; p)).
`still_motion` is the mean absolute change between consecutive decoded
frames when the network transforms a still clip (each video's first frame,
repeated): every family's A(X; p) of a still clip is still, so anything
above 0 is motion the network invents, which a downstream model on motion
reads as a class; `target_motion`, the same of A(X; p) for the real clip,
gives its scale.

`--mode=eval` (`modes.quality_report`) writes `WORKDIR/eval/augmenter_<split>.{json,
md}` (one row per family; 'all' gives a row for each) and
`WORKDIR/eval/<family>_grid.png`.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from cvision.core import config_utils
from cvision.core import precision
from cvision.core import task as task_lib
from cvision.metrics import video_quality
from cvision.models import code_embedding
from cvision.projects.augmenter import network as augmenter_model
from cvision.projects.augmenter import nn_crop
from cvision.projects.augmenter import params as params_lib
from cvision.projects.augmenter import pixel_transforms as pt
from cvision.projects.augmenter.release import config as release_config
from cvision.projects.augmenter.release import network as release_network
from cvision.projects.codec import frozen

NAME = 'augmenter'
VIDEO_KEY = 'video'
# Evaluation flips every clip.
_EVAL_OVERRIDES = {'flip_probability': 1.0}


def build_model(model_config: ml_collections.ConfigDict,
                dtype: Any = jnp.float32
                ) -> augmenter_model.AugmentationNetwork:
  """`a(z, p)` of an augmenter config's `model` fields.

  An imported release augmenter (`model.architecture == 'release'`) builds
  the release's network instead (`augmenter/release/network.py`), same call.
  """
  if release_config.is_release(model_config):
    return release_network.build_release_augmenter(model_config, dtype)
  return config_utils.build_module(augmenter_model.AugmentationNetwork,
                                   model_config, 'augmenter model',
                                   dtype=dtype)


def load_codec(config: ml_collections.ConfigDict) -> frozen.FrozenCodec:
  """The frozen codec of `config.codec`, encoder and decoder included."""
  if not config.codec.workdir:
    raise ValueError('The augmenter trains through a trained codec: pass '
                     '--config.codec.workdir=<the codec run\'s --workdir>.')
  return frozen.load_frozen_codec(config.codec.workdir,
                                  step=config.codec.step or None,
                                  with_params=True)


def example_keys(seed: int, video: jax.Array) -> jax.Array:
  """One PRNG key per clip of `[B, ...]` uint8 `video`, from its pixels."""
  digest = jnp.sum(video.reshape(video.shape[0], -1).astype(jnp.uint32),
                   axis=1)
  base = jax.random.PRNGKey(seed)
  return jax.vmap(lambda d: jax.random.fold_in(base, d))(digest)


def per_example_params(seed: int, family: str, video: jax.Array,
                       augment_config) -> jax.Array:
  """`[B, P]`: each clip's evaluation parameters (flips always on)."""
  overrides = dict(augment_config.items(), **_EVAL_OVERRIDES)
  sample = lambda key: params_lib.sample_params(key, family, 1, overrides)[0]
  return jax.vmap(sample)(example_keys(seed, video))


def code_space_op(family: str, codes: jax.Array,
                  p: jax.Array) -> jax.Array | None:
  """The code-grid operation (its codes) for crops and flips, else None."""
  if family == 'crop':
    return nn_crop.nearest_neighbour_crop(codes, p, codes.shape[2:4])
  if family == 'flip':
    flipped = nn_crop.flip_code_grid(codes)
    on = (p[:, 0] >= 0.5)[:, None, None, None, None]
    return jnp.where(on, flipped, codes)
  return None


def _latent_l1(latents: jax.Array, target: jax.Array) -> jax.Array:
  """`[B]` mean |latents - target| per clip."""
  diff = latents.astype(jnp.float32) - target.astype(jnp.float32)
  return jnp.mean(jnp.abs(diff), axis=tuple(range(1, diff.ndim)))


def _motion_input_l1(latents: jax.Array, target: jax.Array) -> jax.Array:
  """`[B]` mean |corr(latents) - corr(target)| per clip, corr the temporal
  correlation a `codes,motion` S3D reads (radius 1): a latent error that
  keeps each cell's direction, as a rescaling does, costs it nothing."""
  return _latent_l1(
      code_embedding.temporal_correlation(latents.astype(jnp.float32), 1),
      code_embedding.temporal_correlation(target.astype(jnp.float32), 1))


def _quality(target: jax.Array, video: jax.Array) -> dict[str, jax.Array]:
  target = target.astype(jnp.float32)
  video = jnp.clip(video.astype(jnp.float32), 0.0, 1.0)
  return {'ssim': video_quality.ssim(video, target),
          'psnr': video_quality.psnr(video, target),
          'l1': jnp.mean(jnp.abs(video - target), axis=(1, 2, 3, 4))}


def frame_change(video: jax.Array) -> jax.Array:
  """`[B, T, H, W, C]` -> `[B]`: mean |frame t+1 - frame t| (0 if T = 1)."""
  video = jnp.clip(video.astype(jnp.float32), 0.0, 1.0)
  if video.shape[1] < 2:
    return jnp.zeros(video.shape[:1], jnp.float32)
  return jnp.mean(jnp.abs(jnp.diff(video, axis=1)), axis=(1, 2, 3, 4))


@dataclasses.dataclass(frozen=True)
class Augmenter:
  """The augmenter task and what its report needs.

  Attributes:
    task: the core's task (loss: l1; evaluate: see the module docstring).
    codec: the frozen codec it trains through.
    family: the family it learns ('all': every one).
    augment_config: the parameter ranges, checked.
    compare: `(params, video, p, family) -> dict of videos and latents`,
      every decoded video of the report, for a family the network can do.
    eval_params: `(video, family) -> [B, P]`, each clip's own parameters.
    metrics: `videos -> per-example metrics` of `compare`'s outputs.
  """
  task: task_lib.Task
  codec: frozen.FrozenCodec
  family: str
  augment_config: ml_collections.ConfigDict
  compare: Callable[..., dict[str, jax.Array]]
  eval_params: Callable[..., jax.Array]
  metrics: Callable[..., dict[str, jax.Array]]

  def evaluate_family(self, of_family: str):
    """Per-example metrics of `of_family`'s parameters (an `EvalFn`)."""
    def evaluate(params, collections, batch):
      del collections
      raw = batch[VIDEO_KEY]
      video = raw.astype(jnp.float32) / 255.0
      return self.metrics(self.compare(params, video,
                                       self.eval_params(raw, of_family),
                                       of_family))
    return evaluate


def build_task(config: ml_collections.ConfigDict) -> task_lib.Task:
  return build(config).task


def build(config: ml_collections.ConfigDict) -> Augmenter:
  """The augmenter of `config.augment.family` on `config.codec`'s codec."""
  augment_config = params_lib.check_config(config.augment)
  family = augment_config.family
  codec = load_codec(config)
  compute = precision.compute_dtype(config.train.compute_dtype)
  model = build_model(config.model, compute)
  eval_seed = config.seed + 1
  code_target_weight = float(config.loss.code_target_weight)
  if code_target_weight < 0:
    raise ValueError(f'config.loss.code_target_weight={code_target_weight} '
                     'must be >= 0.')
  pixel_augment = functools.partial(
      pt.augment, rotation_fill=augment_config.rotation_fill)

  def apply(params, latents, p):
    return model.apply({'params': params}, latents, p)

  def latents_of(video):
    # The codec is frozen and codes are integers: nothing flows back here.
    return jax.lax.stop_gradient(codec.codes_to_latents(codec.encode(video)))

  def network_params(p, of_family):
    """Parameters of `of_family` as this network's input."""
    if of_family == family:
      return p
    if family != 'all':
      raise ValueError(f'This network does {family!r}, not {of_family!r}.')
    return params_lib.embed_in_all(of_family, p)

  def init(rng, batch):
    video = batch[VIDEO_KEY].astype(jnp.float32) / 255.0
    latents = jax.eval_shape(latents_of, video)
    p = jnp.zeros((video.shape[0], pt.param_dim(family)), jnp.float32)
    return model.init(rng, jnp.zeros(latents.shape, latents.dtype), p)

  def loss(params, collections, batch, rng):
    video = precision.to_unit_float(batch[VIDEO_KEY], params)
    p = params_lib.sample_params(rng, family, video.shape[0], augment_config)
    target = pixel_augment(family, video.astype(jnp.float32), p)
    out = apply(params, latents_of(video), p)
    decoded = codec.decode_latents(out)
    l1 = jnp.mean(jnp.abs(decoded.astype(jnp.float32) - target))
    metrics = {'l1': l1}
    total = l1
    if code_target_weight:
      # The encoder's latents of the target: what a model trained on codes
      # sees for an augmented clip (README, "Augmentation in code space").
      code_l1 = jnp.mean(_latent_l1(out, latents_of(target)))
      metrics['code_l1'] = code_l1
      total = l1 + code_target_weight * code_l1
    return total, (metrics, collections)

  def compare(params, video, p, of_family):
    """Decoded videos for the quality figures; `video` float `[B, ...]`."""
    codes = codec.encode(video)
    latents = codec.codes_to_latents(codes)
    plain = codec.decode(codes)
    target = pixel_augment(of_family, video, p)
    learned = apply(params, latents, network_params(p, of_family))
    out = {
        'original': video,
        'target': target,
        'learned': jnp.clip(codec.decode_latents(learned), 0.0, 1.0),
        'plain': plain,
        'decode_then_augment': pixel_augment(of_family, plain, p),
        # Latents, [B, T', H', W', C]: the encoder's of the target, and each
        # candidate's (not videos: no grid rows, no pixel metrics).
        'latents_target': latents_of(target),
        'latents_learned': learned,
        'latents_plain': latents,
    }
    op_codes = code_space_op(of_family, codes, p)
    if op_codes is not None:
      out['code_space'] = codec.decode(op_codes)
      out['latents_code_space'] = codec.codes_to_latents(op_codes)
    still = jnp.broadcast_to(video[:, :1], video.shape)
    out['learned_still'] = codec.decode_latents(apply(
        params, latents_of(still), network_params(p, of_family)))
    return out

  def eval_params(video, of_family):
    return per_example_params(eval_seed, of_family, video, augment_config)

  def metrics_of(videos):
    metrics = {}
    for name in ('learned', 'plain', 'decode_then_augment', 'code_space'):
      if name in videos:
        suffix = '' if name == 'learned' else '_' + name
        for k, v in _quality(videos['target'], videos[name]).items():
          metrics[k + suffix] = v
    for name in ('learned', 'plain', 'code_space'):
      if 'latents_' + name in videos:
        suffix = '' if name == 'learned' else '_' + name
        metrics['code_l1' + suffix] = _latent_l1(videos['latents_' + name],
                                                 videos['latents_target'])
        metrics['motion_input_l1' + suffix] = _motion_input_l1(
            videos['latents_' + name], videos['latents_target'])
    if 'learned_still' in videos:
      metrics['still_motion'] = frame_change(videos['learned_still'])
      metrics['target_motion'] = frame_change(videos['target'])
    return metrics

  def evaluate(params, collections, batch):
    del collections
    raw = batch[VIDEO_KEY]
    video = raw.astype(jnp.float32) / 255.0
    return metrics_of(compare(params, video, eval_params(raw, family),
                              family))

  task = task_lib.Task(name=NAME, init=init, loss=loss, evaluate=evaluate,
                       input_keys=(VIDEO_KEY,), time_keys=(VIDEO_KEY,))
  return Augmenter(task, codec, family, augment_config, compare, eval_params,
                   metrics_of)
