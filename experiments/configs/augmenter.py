r"""The augmentation network in code space (paper Sec. 3.4, 4.5, App. E.1).

  python experiments/main.py --config=experiments/configs/augmenter.py:crop \
      --workdir=runs/augmenter_crop --config.codec.workdir=runs/codec
  # Quality report: SSIM of learned against plain reconstruction, PNG grids.
  python experiments/main.py ... --mode=eval

Results, with the command of every figure: docs/results/augmenter.md.

Presets (after the colon; comma-separated presets apply in order, e.g.
`tiny,flip` or `paper,crop`):

| preset     | family: parameters p (evaluation ranges the same)            |
|------------|--------------------------------------------------------------|
| crop       | box of side 0.5-0.9 of the frame, anywhere, resized back;    |
|            | adds the code target (loss.code_target_weight=0.5) and one   |
|            | position table over frames (model.time_positions=False)      |
| flip       | left-right flip with probability 0.5                         |
| brightness | delta uniform in ±0.3                                        |
| saturation | factor uniform in [0, 2]                                     |
| rotation   | angle uniform in ±30 degrees, corners mirrored (`augment.    |
|            | rotation_fill`: reflect, edge or black; see pixel_transforms)|
| all        | one network for all five, one family drawn per clip          |
| tiny       | tests: 8x32x32 clips, a narrow network, 2 steps              |
| paper      | 32x256x256 clips, 32-frame position table, bf16, GPU/TPU     |

Defaults (CPU): the `codec.py:cpu` codec (16x8x8 codes, 2 codebooks of 256
entries of 16 dims: 32-dim latents), moving digits `small` (16x64x64) cut to
random 4-frame clips (the network's position table has 4 rows; longer clips
go through in windows of 4), batch 8, Adam at 1e-3 (App. E.4) with a cosine
decay, 3000 steps. The codec is read from `--config.codec.workdir` (its
config.json and checkpoints, never written); the data must be the videos it
was trained on or alike (`--config.data.data_dir`).
"""
from experiments.configs import base


def _family(name):
  def apply(c):
    c.augment.family = name
  return apply


def _tiny(c):
  c.data.builder_kwargs.config = 'tiny'  # 8x32x32.
  c.data.batch_size = 4
  c.data.train_clip_frames = 4
  c.model.mlp_features = (16, 16)
  c.model.width = 16
  c.model.num_layers = 1
  c.model.num_heads = 2
  c.model.ffw_size = 16
  c.model.max_frames = 4
  c.train.steps = 2
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  c.train.eval_batches = 1
  c.optimizer.warmup_steps = 0
  c.eval.num_videos = 4
  c.eval.grid_videos = 2


def _paper(c):
  # Paper: Kinetics clips of 32 frames at 256x256 through a CR-30 codec;
  # our generated `paper` videos stand in. Pair with a paper codec preset
  # (codec.py:cr30 .. cr768).
  c.data.builder_kwargs.config = 'paper'
  c.data.batch_size = 8
  c.data.train_clip_frames = 0
  c.model.max_frames = 32
  c.train.steps = 50_000
  c.train.log_every = 100
  c.train.checkpoint_every = 2000
  c.train.eval_every = 5000
  c.train.eval_batches = 8
  c.train.compute_dtype = 'bfloat16'
  c.optimizer.warmup_steps = 1000
  c.eval.num_videos = 64
  # Sec. 4.5: 224x224 crops of 256x256 frames.
  c.augment.crop_min_scale = 0.875
  c.augment.crop_max_scale = 0.875


def _crop(c):
  _family('crop')(c)
  # Measured on the CR-32 CPU codec (README): asking for the crop's codes as
  # well as its pixels lifts the decoded crop's SSIM from 0.800 to 0.839 and
  # brings its latents as close to e(A(X; p)) as the code-grid crop's. One
  # position table over frames: the pair that was measured.
  c.loss.code_target_weight = 0.5
  c.model.time_positions = False


PRESETS = {
    'crop': _crop,
    'flip': _family('flip'),
    'brightness': _family('brightness'),
    'saturation': _family('saturation'),
    'rotation': _family('rotation'),
    'all': _family('all'),
    'tiny': _tiny,
    'paper': _paper,
}


def get_config(arg: str | None = None):
  c = base.get_base_config()
  c.task = 'augmenter'

  # The frozen codec: its encoder, codebooks and decoder.
  c.codec = base.ml_collections.ConfigDict()
  c.codec.workdir = ''  # The codec run's --workdir (required).
  c.codec.step = 0  # 0 = its latest checkpoint.

  # The augmentation family and the ranges of its random parameters
  # (cvision.projects.augmenter.params.default_config).
  c.augment = base.ml_collections.ConfigDict()
  c.augment.family = 'crop'
  c.augment.crop_min_scale = 0.5
  c.augment.crop_max_scale = 0.9
  c.augment.crop_min_aspect_ratio = 1.0
  c.augment.crop_max_aspect_ratio = 1.0
  c.augment.flip_probability = 0.5
  c.augment.brightness_max_delta = 0.3
  c.augment.saturation_min_factor = 0.0
  c.augment.saturation_max_factor = 2.0
  c.augment.rotation_max_degrees = 30.0
  # Black corners need a decoder that can draw black; see pixel_transforms.
  c.augment.rotation_fill = 'reflect'  # reflect | edge | black

  # a(z, p), App. E.1.
  c.model.mlp_features = (64, 64, 64)
  c.model.width = 128
  c.model.num_layers = 2
  c.model.num_heads = 4
  c.model.ffw_size = 128
  c.model.max_frames = 4
  c.model.attention = 'factorized'  # factorized | joint
  c.model.position_init = 'sinusoidal'  # sinusoidal | normal
  # False: one (y, x) position table shared by every frame, so a still clip
  # stays still (cvision.projects.augmenter.network); True: the paper's T x H x W.
  c.model.time_positions = True

  c.data.builder_kwargs.config = 'small'  # 16x64x64, what codec.py:cpu saw.
  c.data.batch_size = 8
  c.data.train_clip_frames = 4

  # Loss: |A(X; p) - decode(a(z, p))|_1 (the paper's), plus this weight
  # times |a(z, p) - e(A(X; p))|_1, the encoder's latents of the target: the
  # decoder alone leaves latents free to differ from the codes a downstream
  # model knows (cvision.projects.augmenter.task; README).
  c.loss = base.ml_collections.ConfigDict()
  c.loss.code_target_weight = 0.0

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 100
  c.optimizer.weight_decay = 0.0

  c.train.steps = 3000
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  c.train.eval_every = 1000
  c.train.eval_batches = 4

  # --mode=import: the augmentation network of a pickle of the paper's
  # release (google-deepmind/compressed_vision) becomes this --workdir's run,
  # through the codec imported from the same file (codec.workdir).
  # docs/release_codecs.md.
  c.release = base.ml_collections.ConfigDict()
  c.release.pickle = ''

  # --mode=eval: the quality report on held-out videos.
  c.eval.split = 'test'
  c.eval.num_videos = 64  # 0 = the whole split.
  c.eval.grid_videos = 4

  for preset in base.parse_presets(arg, PRESETS):
    PRESETS[preset](c)
  return c
