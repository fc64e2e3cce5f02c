r"""The past-future task on long videos of codes (paper Sec. 4.6, App. D).

  # Long videos as codes, once (generated 30-minute walks; the codec run
  # must exist, e.g. `codec.py:cpu`):
  python -m cvision.projects.codec.long_video_codes --codec_workdir=runs/codec \
      --output_dir=runs/pf/codes_30min --minutes=30
  # ... and 5-minute ones for the first stage:
  python -m cvision.projects.codec.long_video_codes --codec_workdir=runs/codec \
      --output_dir=runs/pf/codes_5min --minutes=5 --train_videos=24 \
      --test_videos=6
  # Per memory (slot, lstm, none), a curriculum: 5-minute videos first, then
  # 30-minute ones, each stage starting from the last one's parameters:
  C=experiments/configs/past_future.py; MEM=slot
  python experiments/main.py --config=$C:$MEM,5min --workdir=runs/pf/${MEM}_5min \
      --config.data.dataset_dir=runs/pf/codes_5min --config.train.steps=400
  python experiments/main.py --config=$C:$MEM,30min --workdir=runs/pf/${MEM}_a \
      --config.data.dataset_dir=runs/pf/codes_30min \
      --config.train.init_from.workdir=runs/pf/${MEM}_5min
  python experiments/main.py --config=$C:$MEM,30min --workdir=runs/pf/${MEM}_b \
      --config.data.dataset_dir=runs/pf/codes_30min \
      --config.train.init_from.workdir=runs/pf/${MEM}_a \
      --config.train.steps=400 --config.optimizer.learning_rate=5e-4
  # (docs/results/past_future.md gives the stages behind each of its rows.)
  python experiments/main.py ... --mode=eval   # the last stage's flags
  # -> runs/pf/${MEM}_b/eval/past_future_test.md: accuracy, step-balanced
  #    accuracy (50% for a model that only counts the steps), past/future,
  #    near (queries within 30 s of the current step) and far.

Results, with the commands: docs/results/past_future.md.

Presets (after the colon, comma-separated, applied in order):

| preset | sets                                                              |
|--------|-------------------------------------------------------------------|
| slot   | memory: every chunk's tokens appended (default)                   |
| lstm   | memory: a fixed-size LSTM state                                   |
| none   | no memory (chance, 50%)                                           |
| tiny   | tests: chunks of 4 code frames, a narrow network, 2 steps         |
| 5min   | videos of 5 min at 25 fps (60 chunks)                             |
| 30min  | videos of 30 min at 25 fps (360 chunks)                           |
| 1h     | videos of 1 h at 25 fps (720 chunks; 90,000 frames)               |

A length preset refuses a dataset of another length (`past_future.
video_frames`) and sizes training for the CPU. Defaults: chunks of 5 s
(125 code frames at 25 fps), one 64x64 video (8x8x2 codes per frame) per
update, adapter of three strided 3D convs to 5 tokens of 64-d per chunk,
one cross-attention layer, Adam with cosine decay.
"""
from experiments.configs import base

FPS = 25


def _memory(name):
  def apply(c):
    c.model.memory = name
  return apply


def _length(minutes, steps):
  def apply(c):
    c.past_future.video_frames = int(minutes * 60 * FPS)
    c.train.steps = steps
  return apply


def _tiny(c):
  c.past_future.chunk_frames = 4
  c.past_future.eval_queries_per_chunk = 2
  c.model.dim = 16
  c.model.adapter_channels = (4, 8)
  c.model.adapter_kernels = ((2, 1, 1), (3, 3, 3))
  c.model.adapter_strides = ((2, 1, 1), (1, 2, 2))
  c.model.num_heads = 2
  c.model.mlp_dim = 16
  c.model.lstm_size = 16
  c.data.batch_size = 2
  c.data.num_threads = 1
  c.train.steps = 2
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  c.train.eval_batches = 1
  c.optimizer.warmup_steps = 0


PRESETS = {
    'slot': _memory('slot'),
    'lstm': _memory('lstm'),
    'none': _memory('none'),
    'tiny': _tiny,
    '5min': _length(5, 600),
    '30min': _length(30, 200),
    '1h': _length(60, 100),
}


def get_config(arg: str | None = None):
  c = base.get_base_config()
  c.task = 'past_future'

  c.model.memory = 'slot'  # slot | lstm | none
  c.model.dim = 64
  c.model.adapter_channels = (16, 32, 32)
  c.model.adapter_kernels = ((5, 1, 1), (3, 3, 3), (3, 3, 3))
  # 125 code frames -> 25 -> 25 -> 5 tokens per chunk; 8x8 grid -> 4x4.
  c.model.adapter_strides = ((5, 1, 1), (1, 2, 2), (5, 1, 1))
  c.model.core_layers = 1
  c.model.num_heads = 4
  c.model.mlp_dim = 128
  c.model.attention_top_k = 4  # Memory entries a query token reads; 0 = all.
  c.model.lstm_size = 128

  c.past_future = base.ml_collections.ConfigDict()
  c.past_future.chunk_frames = 5 * FPS  # 5 s chunks (App. D).
  c.past_future.queries_per_chunk = 1
  c.past_future.eval_queries_per_chunk = 4
  c.past_future.crop_scale = (0.5, 1.0)
  c.past_future.chunks_per_block = 8  # Adapter batch; speed only.
  c.past_future.reverse_prob = 0.5
  c.past_future.eval_seed = 0
  c.past_future.video_frames = 0  # 0 = any length (a length preset sets it).
  # accuracy_near: queries at most this many chunks from the step (30 s).
  c.past_future.near_chunks = 6

  # The frozen codec; '' = the one named in the dataset's metadata.
  c.codec = base.ml_collections.ConfigDict()
  c.codec.workdir = ''
  c.codec.step = 0  # 0 = the checkpoint that wrote the codes.

  c.data.dataset_dir = ''  # Written by cvision/projects/codec/long_video_codes.py.
  c.data.train_split = 'train'
  c.data.eval_split = 'test'
  c.data.batch_size = 1  # Videos per update.
  c.data.num_threads = 1  # A whole video per example: little to overlap.

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 10
  c.optimizer.grad_clip_norm = 1.0

  c.train.steps = 150
  c.train.log_every = 5
  c.train.checkpoint_every = 25
  c.train.eval_every = 0
  c.train.eval_batches = 0

  c.eval.split = 'test'

  for preset in base.parse_presets(arg, PRESETS):
    PRESETS[preset](c)
  return c
