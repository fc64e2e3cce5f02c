r"""Collaborative memory: video-level learning over many clips (Yang et al.).

  C=experiments/configs/collab_memory.py
  python experiments/main.py --config=$C:cm --workdir=runs/cm/cm
  # top-1, and GFLOPs per video against the backbone alone:
  python experiments/main.py --config=$C:cm --workdir=runs/cm/cm --mode=eval
  # Stage-wise (Sec. 4.1): the backbone first (single-clip training), then
  # the memory on top of it (fresh optimizer; the memory starts from init):
  python experiments/main.py --config=$C:single_clip \
      --workdir=runs/cm/single_clip
  python experiments/main.py --config=$C:cm --workdir=runs/cm/cm_stagewise \
      --config.train.init_from.workdir=runs/cm/single_clip
  # From an S3D classification run instead (the CPU recipe; `finetune`):
  python experiments/main.py --config=$C:finetune,cm --workdir=runs/cm/cm \
      --config.train.init_from.workdir=runs/s3d_rgb
  # One table of every evaluated run under runs/cm:
  python experiments/main.py --config=$C --workdir=runs/cm --mode=table

Results, with the command of every row: docs/results/collab_memory.md.

Presets (after the colon; comma-separated presets apply in order, e.g.
`finetune,cm,count_rotations`). One per ablation row (paper Table 2):

| preset          | clips | memory      | infusion | backbone          |
|-----------------|------:|-------------|----------|-------------------|
| single_clip     | 1     | none        | -        | trained           |
| multi_clip      | 4     | none        | -        | trained           |
| cm_average      | 4     | average     | gating   | trained           |
| cm_residual     | 4     | associative | residual | trained           |
| cm              | 4     | associative | gating   | trained (default) |
| frozen_backbone | 4     | associative | gating   | frozen            |

The recipe, the data variants and the rest:

| preset          | sets                                                      |
|-----------------|-----------------------------------------------------------|
| finetune        | the backbone starts from an S3D classification run        |
|                 | (train.init_from.workdir; its params go under `backbone`, |
|                 | its classifier is not used), 300 steps at 5e-4; as the    |
|                 | paper starts from Kinetics-pretrained weights             |
| odd_one_out     | data: 4 equal segments, all of one motion but one; the    |
|                 | label is the odd motion, which no average of clip votes   |
|                 | can give; 600 steps (put it after `finetune`)             |
| odd_translation | the same rule over the 4 translations (4 classes)         |
| count_rotations | data: each of 4 segments rotates or translates; the label |
|                 | is how many rotate (5 classes); each training clip inside |
|                 | its segment (cm.clip_sampling='segments'); 600 steps      |
| multi_iteration | memory strategy: a rematerialised scan over clips instead |
|                 | of batch reduction (same loss, one clip's activations at  |
|                 | a time)                                                   |
| tiny            | tests: 8x32x32 clips, 2 clips of 4 frames, 2 steps        |

Defaults: the `dense` moving digits (32 frames of 64x64 in 4 motion
segments; the label is the motion covering most frames, so a single 8-frame
clip cannot know it), 4 clips of 8 frames per video (one random start in
each quarter of the start range, `cm.clip_sampling='starts'`), an S3D
backbone at width 0.25, batch 8 videos, Adam at 1e-3 with cosine decay,
2000 steps; at test time the memory comes from 4 uniformly spaced clips and
the softmax scores of 4 test clips are averaged.


Over a code backbone (`codes`, `codes,motion`): the backbone is the
S3D of `s3d.py:codes` on a frozen codec's codes, through the same
frozen-codec path; every row above combines with it, e.g.
`finetune,codes,cm`. Encode the `dense` videos once with the codec's
`--mode=encode --config.data.builder_kwargs.config=dense`, then:

  python experiments/main.py --config=$C:codes,cm --workdir=runs/cm_codes/cm \
      --config.codec.workdir=runs/codec \
      --config.data.dataset_dir=runs/codec/codes/moving_digits_dense
  # Codes read as where each cell's content moved, as s3d.py:codes,motion;
  # stage-wise from that S3D run:
  python experiments/main.py --config=$C:finetune,codes,motion,cm \
      --workdir=runs/cm_motion/cm --config.codec.workdir=runs/codec \
      --config.data.dataset_dir=runs/codec/codes/moving_digits_dense \
      --config.train.init_from.workdir=runs/s3d_codes_motion

`cm.clip_frames` counts video frames for either input: on codes a clip is
`clip_frames / temporal_stride` code steps of the codec.

`multi_iteration` switches the memory strategy from batch reduction to a
rematerialised scan over clips (same loss, one clip's activations at a time);
`tiny` shrinks everything for tests (`tiny,codes` on the tiny codec's
codes of the `tiny` videos).
"""
from experiments.configs import base


def _set(**fields):
  def apply(c):
    for key, value in fields.items():
      c.cm[key] = value
  return apply


def _input(name):
  def apply(c):
    c.input = name
  return apply


def _codes(c):
  # The backbone of s3d.py:codes, so that `finetune` can start from that run.
  c.input = 'codes'
  c.model.stem_conv1_separable = False
  c.model.stem_conv1_kernel = (3, 3, 3)


def _motion(c):
  # After `codes`, as s3d.py:codes,motion.
  if c.input != 'codes':
    raise ValueError("The 'motion' preset reads codes: use 'codes,motion'.")
  c.model.code_correlation_radius = 1
  c.model.code_correlation_only = True


def _tiny(c):
  c.data.builder_kwargs.config = 'tiny'  # 8x32x32.
  c.data.batch_size = 4
  c.model.width_multiplier = 0.125
  c.model.dropout_rate = 0.0
  c.cm.num_clips = 2
  c.cm.clip_frames = 4
  c.train.steps = 2
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  c.train.eval_batches = 1
  c.optimizer.warmup_steps = 0
  c.eval.num_clips = 2
  c.eval.memory_clips = 2


def _odd_one_out(c):
  c.data.builder_kwargs.config = 'odd_one_out'
  c.train.steps = 600
  c.train.checkpoint_every = 300
  c.train.eval_every = 300


def _odd_translation(c):
  _odd_one_out(c)
  c.data.builder_kwargs.config = 'odd_translation'
  c.model.num_classes = 4


def _count_rotations(c):
  _odd_one_out(c)
  c.data.builder_kwargs.config = 'count_rotations'
  c.model.num_classes = 5  # 0-4 rotating segments.
  # Each training clip inside one segment, as the test clips are.
  c.cm.clip_sampling = 'segments'


def _finetune(c):
  # The S3D run's params become the backbone's; its classifier is not used.
  c.train.init_from.params_under = 'backbone'
  c.train.steps = 300
  c.train.checkpoint_every = 300
  c.train.eval_every = 300
  c.optimizer.learning_rate = 5e-4
  c.optimizer.warmup_steps = 30


PRESETS = {
    'finetune': _finetune,
    'rgb': _input('rgb'),
    'codes': _codes,
    'motion': _motion,
    'single_clip': _set(num_clips=1, memory='none'),
    'multi_clip': _set(memory='none'),
    'cm_average': _set(memory='average'),
    'cm_residual': _set(infusion='residual'),
    'cm': _set(),
    'frozen_backbone': _set(freeze_backbone=True),
    'multi_iteration': _set(strategy='multi_iteration'),
    'odd_one_out': _odd_one_out,
    'odd_translation': _odd_translation,
    'count_rotations': _count_rotations,
    'tiny': _tiny,
}


def get_config(arg: str | None = None):
  c = base.get_base_config()
  c.task = 'collab_memory'
  c.input = 'rgb'  # rgb | codes (data.dataset_dir: a codec's code dataset)
  c.data.builder_kwargs.config = 'dense'
  c.data.batch_size = 8  # Videos; each gives cm.num_clips clips.
  c.data.train_clip_frames = 0  # Whole videos: clips are sampled on device.

  c.model.num_classes = 8
  c.model.width_multiplier = 0.25
  c.model.min_channels = 8
  c.model.gating = False
  c.model.dropout_rate = 0.0  # As the S3D CPU preset (see s3d.py).
  # The backbone's stem and code-input fields, as in s3d.py (which explains
  # each); the `codes` and `motion` presets set them as s3d.py's do.
  c.model.stem_conv1_channels = 64
  c.model.stem_conv2_channels = 64
  c.model.stem_conv1_separable = True
  c.model.stem_conv1_kernel = (7, 7, 7)
  c.model.code_projection_channels = 0
  c.model.code_correlation_radius = 0
  c.model.code_correlation_only = False

  # The frozen codec, for codes: its run and checkpoint (0 = the one that
  # wrote data.dataset_dir's codes, else the latest).
  c.codec = base.ml_collections.ConfigDict()
  c.codec.workdir = ''
  c.codec.step = 0

  c.cm = base.ml_collections.ConfigDict()
  c.cm.num_clips = 4
  c.cm.clip_frames = 8
  c.cm.clip_sampling = 'starts'  # starts | segments (clips inside segments)
  c.cm.memory = 'associative'  # associative | average | none
  c.cm.infusion = 'gating'  # gating | residual
  c.cm.reduction = 4
  c.cm.clip_loss_weight = 1.0
  c.cm.strategy = 'batch_reduction'  # batch_reduction | multi_iteration
  c.cm.freeze_backbone = False

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 100
  c.optimizer.weight_decay = 1e-5

  c.train.steps = 2000
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  c.train.eval_every = 500
  c.train.eval_batches = 8

  c.eval.split = 'test'
  c.eval.num_clips = 4  # Test clips, softmax scores averaged.
  c.eval.memory_clips = 4  # Clips the inference memory is built from.

  for preset in base.parse_presets(arg, PRESETS):
    PRESETS[preset](c)
  return c
