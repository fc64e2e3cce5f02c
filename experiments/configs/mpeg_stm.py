r"""MPEG-4 compressed-domain action recognition with STMs (Das Biswas et al.).

  # The dataset (moving digits encoded to MPEG-4, GOP 12) is built on first
  # use under data.data_dir; to build it alone (either):
  #   python experiments/main.py --config=...mpeg_stm.py --workdir=X \
  #       --mode=extract
  #   python -m data_pipelines.mpeg.build_cli --config=small --data_dir=DIR
  python experiments/main.py --config=experiments/configs/mpeg_stm.py:all \
      --workdir=runs/mpeg/all
  python experiments/main.py --config=experiments/configs/mpeg_stm.py:all \
      --workdir=runs/mpeg/all --mode=eval   # top-1, energy, MACs/ACs, V/s
  python experiments/main.py --config=experiments/configs/mpeg_stm.py \
      --workdir=runs/mpeg --mode=table       # every run under runs/mpeg

Results, with the command of every row: docs/results/mpeg_stm.md.

One preset per ablation row (comma-combinable, e.g. `tiny,i_only`):

| preset          | sets                                                     |
|-----------------|----------------------------------------------------------|
| all             | I + MV + R, accumulated P-frames, STMs, unified encoder  |
|                 | (the full model; also the default)                       |
| i_only          | I-frames only (Tab. 3)                                   |
| i_mv / i_r      | I + motion vectors / I + residuals (Tab. 3)              |
| no_accumulation | raw P-frames instead of accumulated ones (Tab. 4d)       |
| common_stm      | one STM over MV and R concatenated (Tab. 4c)             |
| convlstm        | ConvLSTM layers instead of ConvLIF (Tab. 4c)             |
| fixed_threshold | v_th and lambda fixed at 1.0 and 0.9 (Tab. 4c)           |
| separate        | one transformer encoder per modality (Tab. 4b)           |
| cross           | per-modality encoders attending to the others (Tab. 4b)  |
| unified         | one encoder over all tokens (Tab. 4b; the default)       |
| tiny            | tests: 1 GOP of 32x32, width 16, 2 steps                 |
| same_videos     | data: `mpeg_gops/moving_digits_small` (`_tiny` with      |
|                 | tiny), the videos of `moving_digits/small` (/tiny), one  |
|                 | GOP each: the MPEG route of experiments/three_routes.py  |

Defaults (the CPU preset): `mpeg_gops/small` (1024 training videos of 2
GOPs of 64x64, 8 motion classes), embedding 64, 2 encoder blocks, STMs of
two ConvLIF layers of 16 channels (strides 4 and 2), 3 P-frame slots per
GOP, batch 16, 600 steps of Adam with cosine decay: 7-15 minutes per preset
on a shared 2-core CPU (0.7-1.1 steps/s). `convlstm` is about 20x slower
per step there (20 s): budget hours, or a GPU.
"""
from experiments.configs import base


def _model(**fields):
  def apply(c):
    for k, v in fields.items():
      setattr(c.model, k, v)
  return apply


def _tiny(c):
  c.data.builder_kwargs.config = 'tiny'  # 1 GOP of 32x32, 16/8/8 videos.
  c.data.batch_size = 4
  c.model.embed_dim = 16
  c.model.stm_features = (4, 4)
  c.model.num_heads = 2
  c.model.depth = 1
  c.model.p_time_slots = 2
  c.model.mixer_growth = 4
  c.model.rrdb_blocks = 1
  c.train.steps = 2
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  c.train.eval_batches = 1
  c.optimizer.warmup_steps = 0
  c.eval.num_batches = 2


def _same_videos(c):
  # The three-route comparison: the very videos of moving_digits/small (or
  # /tiny after `tiny`), one GOP of 16 (8) frames each.
  size = 'tiny' if c.data.builder_kwargs.config == 'tiny' else 'small'
  c.data.builder_kwargs.config = f'moving_digits_{size}'


# Data presets: not ablation rows, so not in `c.experiment`.
_DATA_PRESETS = ('tiny', 'same_videos')

PRESETS = {
    'all': _model(modalities=('i', 'mv', 'r')),
    'i_only': _model(modalities=('i',)),
    'i_mv': _model(modalities=('i', 'mv')),
    'i_r': _model(modalities=('i', 'r')),
    'no_accumulation': _model(accumulated=False),
    'common_stm': _model(common_stm=True),
    'convlstm': _model(temporal_cell='lstm'),
    'fixed_threshold': _model(learn_dynamics=False),
    'separate': _model(encoder='separate'),
    'cross': _model(encoder='cross'),
    'unified': _model(encoder='unified'),
    'tiny': _tiny,
    'same_videos': _same_videos,
}


def get_config(arg: str | None = None):
  c = base.get_base_config()
  c.task = 'mpeg_stm'
  presets = base.parse_presets(arg, PRESETS)
  c.experiment = ','.join(p for p in presets
                          if p not in _DATA_PRESETS) or 'all'

  c.data.name = 'mpeg_gops'
  c.data.builder_kwargs.config = 'small'
  # Follows data.data_dir and the builder config unless set explicitly.
  c.data.dataset_dir = (c.data.get_ref('data_dir') + '/mpeg_gops/'
                        + c.data.builder_kwargs.get_ref('config') + '/1.0.0')
  c.data.batch_size = 16
  c.data.num_threads = 2

  c.model = base.ml_collections.ConfigDict({
      'num_classes': 8,  # Moving digits' motion classes.
      'modalities': ('i', 'mv', 'r'),
      'accumulated': True,  # False: raw P-frames (the ablation).
      'embed_dim': 64,
      'patch_size': 16,
      'stm_features': (16, 16),
      'stm_strides': (4, 2),
      'temporal_cell': 'lif',  # lif (STM) | lstm (ConvLSTM ablation)
      'common_stm': False,  # One STM over mv and r concatenated.
      'learn_dynamics': True,  # False: fixed v_th and lambda.
      'v_th_init': 1.0,
      'leak_init': 0.9,
      'surrogate_alpha': 2.0,
      'p_time_slots': 3,  # STM outputs averaged into this many per GOP.
      'depth': 2,
      'num_heads': 4,
      'mlp_ratio': 2,
      'encoder': 'unified',  # unified | separate | cross
      'mixer_growth': 16,
      'rrdb_blocks': 2,
      # Input scales, to about unit range (pixels for motion, 0-255 levels
      # for residuals); accumulated values grow with the GOP.
      'mv_scale': 4.0,
      'accumulated_mv_scale': 16.0,
      'residual_scale': 32.0,
      'accumulated_residual_scale': 64.0,
  })

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 50
  c.optimizer.weight_decay = 1e-4  # As the paper (Adam, 1e-4).
  c.optimizer.grad_clip_norm = 1.0

  c.train.steps = 600
  c.train.log_every = 50
  c.train.checkpoint_every = 200
  c.train.eval_every = 0
  c.train.eval_batches = 0

  c.eval.split = 'test'

  # `same_videos` last: it follows the size `tiny` picks, in any order.
  for preset in sorted(presets, key=lambda p: p == 'same_videos'):
    PRESETS[preset](c)
  return c
