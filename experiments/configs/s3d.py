r"""S3D classification on RGB, neural codes or decoded codes (paper 4.3-4.4).

  # Pixels (the CR~1 baseline of Tables 2-3):
  python experiments/main.py --config=experiments/configs/s3d.py:rgb \
      --workdir=runs/s3d_rgb
  # Codes of a trained codec (`codec.py:cpu`, then its --mode=encode):
  python experiments/main.py --config=experiments/configs/s3d.py:codes \
      --workdir=runs/s3d_codes --config.codec.workdir=runs/codec \
      --config.data.dataset_dir=runs/codec/codes/moving_digits_small
  # Then, for either: top-1 / top-5 over 1, 2, 4 temporal clips per video.
  python experiments/main.py ... --mode=eval

Presets (after the colon; comma-separated presets apply in order, e.g.
`tiny,codes` or `paper,codes`):

| preset          | sets                                                      |
|-----------------|-----------------------------------------------------------|
| rgb             | input: uint8 frames (default)                             |
| codes           | input: codes embedded in the frozen codebook (App. E.1)   |
| reconstructions | input: codes decoded by the frozen codec, as frames       |
| frame           | per-frame head and labels on `dense` moving digits        |
|                 | (32 frames, 4 motion segments; COIN-like, Sec. 4.4)       |
| tiny            | tests: 8x32x32 clips, width 0.125, 2 steps                |
| paper           | 32x256x256 clips, width 1.0, bf16, GPU/TPU                |

Defaults (CPU): moving digits `small` (16x64x64, 8 motion classes), S3D at
width 0.25 on random 8-frame crops, batch 16, Adam with cosine decay and
weight decay 1e-5 (paper E.4); about 0.7 steps/s on a busy 2-core CPU, so
the 2000 steps take about 50 minutes. codes / reconstructions need
`--config.codec.workdir` (the codec run: its config.json and checkpoints are
read, never written) and `--config.data.dataset_dir` (the code dataset its
`--mode=encode` wrote); `--config.codec.preset` is only needed when the run
has no config.json.
"""
from experiments.configs import base


def _input(name):
  def apply(c):
    c.input = name
  return apply


def _frame(c):
  c.model.head = 'frame'
  c.data.builder_kwargs.config = 'dense'  # 32 frames, 4 labelled segments.
  c.data.train_clip_frames = 16
  c.eval.clip_frames = 16


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


PRESETS = {
    'rgb': _input('rgb'),
    'codes': _input('codes'),
    'reconstructions': _input('reconstructions'),
    'frame': _frame,
    'tiny': _tiny,
    'paper': _paper,
}


def get_config(arg: str | None = None):
  c = base.get_base_config()
  c.task = 's3d_classification'
  c.input = 'rgb'  # rgb | codes | reconstructions

  c.model.num_classes = 8  # Moving digits' motion classes.
  c.model.width_multiplier = 0.25
  c.model.min_channels = 8
  c.model.gating = False  # True: S3D-G.
  c.model.dropout_rate = 0.5
  c.model.head = 'video'  # video (label) | frame (frame_labels)
  c.model.stem_conv1_channels = 64
  c.model.stem_conv2_channels = 64
  # codes: > 0 = a 1x1x1 projection of the code embeddings before the stem
  # (not in the paper; pays off for wide embeddings at 1/4 of the pixel grid).
  c.model.code_projection_channels = 0

  # The frozen codec, for codes and reconstructions.
  c.codec = base.ml_collections.ConfigDict()
  c.codec.workdir = ''  # The codec run's --workdir (required for codes).
  c.codec.preset = ''  # '' = read <workdir>/config.json.
  # 0 = the checkpoint that wrote data.dataset_dir's codes, else the latest.
  c.codec.step = 0

  c.data.builder_kwargs.config = 'small'  # 16x64x64.
  c.data.batch_size = 16
  c.data.train_clip_frames = 8  # Random temporal crops.

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

  # --mode=eval: logits averaged over N uniformly spaced temporal clips.
  c.eval.split = 'test'
  c.eval.num_clips = (1, 2, 4)
  c.eval.clip_frames = 0  # 0 = data.train_clip_frames, else whole videos.
  c.eval.num_batches = 0  # 0 = the whole split.

  for preset in base.parse_presets(arg, PRESETS):
    PRESETS[preset](c)
  return c
