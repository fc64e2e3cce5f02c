r"""S3D classification on RGB, neural codes or decoded codes (paper 4.3-4.4).

  # Pixels (the CR~1 baseline of Tables 2-3):
  python experiments/main.py --config=experiments/configs/s3d.py:rgb \
      --workdir=runs/s3d_rgb
  # Codes of a trained codec (`codec.py:cpu30`, then its --mode=encode):
  python experiments/main.py --config=experiments/configs/s3d.py:codes \
      --workdir=runs/s3d_codes --config.codec.workdir=runs/codec \
      --config.data.dataset_dir=runs/codec/codes/moving_digits_large
  # Codes read as where each cell's content moved (for labels defined by
  # motion, as moving digits' are):
  python experiments/main.py --config=experiments/configs/s3d.py:codes,motion \
      --workdir=runs/s3d_codes_motion --config.codec.workdir=runs/codec \
      --config.data.dataset_dir=runs/codec/codes/moving_digits_large
  # Then, for any: top-1 / top-5 over 1, 2, 4 temporal clips per video.
  python experiments/main.py ... --mode=eval

Results, with the command of every row: docs/results/s3d.md.

Presets (after the colon; comma-separated presets apply in order, e.g.
`tiny,codes` or `paper,codes`):

| preset          | sets                                                      |
|-----------------|-----------------------------------------------------------|
| rgb             | input: uint8 frames (default)                             |
| codes           | input: codes embedded in the frozen codebook (App. E.1),  |
|                 | read by one full 3x3x3 first conv (see below)             |
| reconstructions | input: codes decoded by the frozen codec, as frames       |
| motion          | after codes: S3D reads each code cell's similarity with   |
|                 | its 3x3 neighbours one step later instead of the          |
|                 | embeddings (model.code_correlation_radius=1,              |
|                 | model.code_correlation_only=True; labels defined by       |
|                 | motion: it drops what the cells look like)                |
| frame           | per-frame head and labels on `dense` moving digits        |
|                 | (32 frames, 4 motion segments; COIN-like, Sec. 4.4),      |
|                 | 16-frame clips, a 300-step fine-tuning schedule           |
| nn_crops        | codes: random nearest-neighbour crops of the code grid,   |
|                 | 4 linearly spaced ones at test (Table 4's [44] baseline)  |
| learned_crops   | codes: the crop network at train time and 4 learned test  |
|                 | crops (needs code_augment.augmenter_workdir)              |
| learned_flips   | codes: the flip network at train time                     |
| learned_flips_eval | ... and the clip with its learned flip at test         |
| tiny            | tests: 8x32x32 clips, width 0.125, 2 steps                |
| paper           | 32x256x256 clips, width 1.0, dropout 0.5, bf16, GPU/TPU   |

Defaults (CPU): moving digits `large` (8192 training videos of 16x64x64,
8 motion classes), S3D at width 0.25 on random 8-frame crops, batch 16, no
dropout, Adam with cosine decay and weight decay 1e-5 (paper E.4), 3000
steps (about 40 minutes on a quiet 2-core CPU). Build the data once with
`python -m data_pipelines.build_cli --dataset=moving_digits --config=large
--data_dir=...`.

The codes preset replaces S3D's separable 7x7x7 first conv (1x7x7, ReLU,
7x1x1) by one full 3x3x3 conv (`model.stem_conv1_separable=False`,
`model.stem_conv1_kernel`): a linear filter over space and time can compare a
code cell with its shifted neighbour one frame later before any ReLU, which
is how the direction of a motion shows in codes; 3x3 code cells cover 12x12
pixels at CR 32, more than the 7x7 pixels of the RGB stem.
`--config.model.stem_conv1_separable=True` gives the paper's stem back.

codes / reconstructions need `--config.codec.workdir` (the codec run: its
config.json and checkpoints are read, never written) and
`--config.data.dataset_dir` (the code dataset its `--mode=encode` wrote, here
with `--config.data.builder_kwargs.config=large`).

Code augmentation (Table 4; `cvision.projects.augmenter.downstream`): the
augmentation presets apply to `codes`, e.g. `codes,learned_crops
--config.code_augment.augmenter_workdir=runs/augmenter_crop`; without them
the codes are used as encoded (the central-crop baseline). Moving digits'
classes are not mirror-symmetric (a flip swaps left/right and cw/ccw):
`code_augment.flip_classes` names each class's mirror class, so that a
flipped training clip gets the mirrored label and a flipped test view's
scores are mapped back (set it to `()` for data such as Kinetics, whose
labels a mirror keeps). Training boxes (`nn_crops`, `learned_crops`) have
sides in `code_augment.crop_min_scale`-`crop_max_scale`, 0.5-0.9 by
default; `--config.code_augment.crop_min_scale=0.875
--config.code_augment.crop_max_scale=0.875` gives the paper's 224 of 256.
`code_augment.train_probability` augments only that share of the training
clips. Results: docs/results/augmenter.md.

Frame-level (`frame`, Sec. 4.4): as the paper fine-tunes a pretrained
network on COIN, warm-start from a video-level run of the same input:
  python experiments/main.py --config=experiments/configs/s3d.py:codes,frame \
      --workdir=runs/s3d_codes_frame --config.train.init_from.workdir=runs/s3d_codes \
      --config.codec.workdir=runs/codec \
      --config.data.dataset_dir=runs/codec/codes/moving_digits_dense
"""
from experiments.configs import base


def _input(name):
  def apply(c):
    c.input = name
  return apply


def _codes(c):
  c.input = 'codes'
  c.model.stem_conv1_separable = False
  c.model.stem_conv1_kernel = (3, 3, 3)


def _motion(c):
  # After `codes`: S3D reads where each code cell's content went (its cosine
  # similarity with its 3x3 neighbours one step later), not the content.
  if c.input != 'codes':
    raise ValueError("The 'motion' preset reads codes: use 'codes,motion'.")
  c.model.code_correlation_radius = 1
  c.model.code_correlation_only = True


def _frame(c):
  c.model.head = 'frame'
  c.data.builder_kwargs.config = 'dense'  # 32 frames, 4 labelled segments.
  c.data.train_clip_frames = 16
  c.eval.clip_frames = 16
  # A fine-tuning schedule, for a start from a video-level run.
  c.train.steps = 300  # The README's frame-level table.
  c.optimizer.warmup_steps = 50
  c.optimizer.learning_rate = 5e-4


def _tiny(c):
  c.data.builder_kwargs.config = 'tiny'  # 8x32x32, 8 classes.
  c.data.batch_size = 4
  c.data.train_clip_frames = 4
  c.model.width_multiplier = 0.125
  c.model.dropout_rate = 0.0
  c.train.steps = 2
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  c.train.eval_batches = 1
  c.optimizer.warmup_steps = 0
  c.eval.num_clips = (1, 2)
  c.eval.num_batches = 1


def _paper(c):
  # Kinetics-style clips of 32 frames. Our generated `paper` videos are
  # 32x256x256; multi-clip evaluation needs videos longer than the clip
  # (e.g. data.name=video_folder with more frames).
  c.data.builder_kwargs.config = 'paper'
  c.data.batch_size = 16
  c.data.train_clip_frames = 0
  c.model.width_multiplier = 1.0
  c.model.dropout_rate = 0.5
  c.train.steps = 50_000
  c.train.log_every = 100
  c.train.checkpoint_every = 2000
  c.train.eval_every = 5000
  c.train.eval_batches = 16
  c.train.compute_dtype = 'bfloat16'
  # E.4 states Adam with cosine decay from 0.5 and weight decay 1e-5; 0.5 is
  # an SGD-sized rate, so Adam starts from 1e-3 here (override to match).
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = 1000
  c.eval.num_clips = (1, 2, 4, 8)  # Table 4.


# data_pipelines.generated.moving_digits.DEFAULT.label_flip_classes (tested),
# written out so that loading a config needs no data code.
MOVING_DIGITS_FLIP_CLASSES = (1, 0, 2, 3, 5, 4, 6, 7)


def _code_augment(train, evaluate, views):
  def apply(c):
    c.code_augment.train = train
    c.code_augment.eval = evaluate
    c.code_augment.eval_views = views
  return apply


def _model_parallel(c):
  # Output channels of the conv kernels, batch norms and gates split over
  # a 2-way `model` axis, the batch over the rest: the widest layers' weights
  # and Adam moments take half the memory per device; a layer whose width 2
  # does not divide stays replicated (sharding.state_shardings warns). Add
  # after a size preset: `cr236,model_parallel`.
  c.mesh.shape = (-1, 2)
  c.sharding.logical_axis_rules = (('embed_out', 'model'),)


PRESETS = {
    'rgb': _input('rgb'),
    'codes': _codes,
    'reconstructions': _input('reconstructions'),
    'motion': _motion,
    'frame': _frame,
    'nn_crops': _code_augment('nn_crop', 'nn_crop', 4),
    'learned_crops': _code_augment('learned', 'learned', 4),
    'learned_flips': _code_augment('learned', 'none', 1),
    'learned_flips_eval': _code_augment('learned', 'learned', 2),
    'tiny': _tiny,
    'paper': _paper,
    'model_parallel': _model_parallel,
}


def get_config(arg: str | None = None):
  c = base.get_base_config()
  c.task = 's3d_classification'
  c.input = 'rgb'  # rgb | codes | reconstructions

  c.model.num_classes = 8  # Moving digits' motion classes.
  c.model.width_multiplier = 0.25
  c.model.min_channels = 8
  c.model.gating = False  # True: S3D-G.
  # 0.5 in the paper (kept by `paper`); slower to leave chance here.
  c.model.dropout_rate = 0.0
  c.model.head = 'video'  # video (label) | frame (frame_labels)
  c.model.stem_conv1_channels = 64
  c.model.stem_conv2_channels = 64
  # False: one full first conv of stem_conv1_kernel instead of 1x7x7 then
  # 7x1x1 (s3d.StemConfig).
  c.model.stem_conv1_separable = True
  c.model.stem_conv1_kernel = (7, 7, 7)
  # codes: > 0 = a 1x1x1 projection of the code embeddings before the stem
  # (not in the paper; pays off for wide embeddings at 1/4 of the pixel grid).
  c.model.code_projection_channels = 0
  # codes only: > 0 adds each code cell's similarity to its neighbours one
  # step later (up to this many cells away) as input channels.
  c.model.code_correlation_radius = 0
  # codes only: True reads the correlations alone, not the embeddings.
  c.model.code_correlation_only = False

  # The frozen codec, for codes and reconstructions.
  c.codec = base.ml_collections.ConfigDict()
  c.codec.workdir = ''  # The codec run's --workdir (required for codes).
  # 0 = the checkpoint that wrote data.dataset_dir's codes, else the latest.
  c.codec.step = 0

  # Augmentation of codes in code space (cvision.projects.augmenter.downstream):
  # none | nn_crop | learned, at train time and for the test-time views.
  c.code_augment = base.ml_collections.ConfigDict()
  c.code_augment.train = 'none'
  c.code_augment.eval = 'none'
  c.code_augment.eval_views = 1  # Crops, or 2 = the clip and its flip.
  c.code_augment.crop_scale = 0.875  # Test-time box side (224 / 256).
  c.code_augment.augmenter_workdir = ''  # The augmenter run, for 'learned'.
  c.code_augment.crop_min_scale = 0.5  # nn_crop's random training boxes.
  c.code_augment.crop_max_scale = 0.9
  # Chance a training clip is augmented; the rest go in as encoded.
  c.code_augment.train_probability = 1.0
  # The class of each class's mirror image, for flips. Moving digits: a
  # mirror swaps translate_right/left and rotate_cw/ccw (the generator's
  # `label_flip_classes`); () on data whose labels a mirror keeps.
  c.code_augment.flip_classes = MOVING_DIGITS_FLIP_CLASSES
  # True: the learned network's outputs are snapped to their nearest codebook
  # entries, so the model only ever sees codes' embeddings.
  c.code_augment.snap_to_codebook = False

  c.data.builder_kwargs.config = 'large'  # 8192 videos of 16x64x64.
  c.data.batch_size = 16
  c.data.train_clip_frames = 8  # Random temporal crops.

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 100
  c.optimizer.weight_decay = 1e-5

  c.train.steps = 3000
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  c.train.eval_every = 500
  c.train.eval_batches = 8

  # --mode=eval: logits averaged over N uniformly spaced temporal clips.
  c.eval.split = 'test'
  c.eval.num_clips = (1, 2, 4)
  c.eval.clip_frames = 0  # 0 = data.train_clip_frames, else whole videos.

  for preset in base.parse_presets(arg, PRESETS):
    PRESETS[preset](c)
  return c
