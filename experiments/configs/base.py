"""Defaults shared by every experiment; each config file starts from these."""
from __future__ import annotations

import os

import ml_collections  # re-exported for config files


def default_data_dir() -> str:
  """Where generated and built datasets live (`$CVISION_DATA_DIR`)."""
  return os.environ.get('CVISION_DATA_DIR',
                        os.path.expanduser('~/cvision_datasets'))


def get_base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.task = ''  # A name from cvision.projects.PROJECTS.

  # Input. `name` + `builder_kwargs` pick a builder of data_pipelines.build;
  # `dataset_dir` instead reads a prepared TFDS dataset (e.g. codes).
  c.data = ml_collections.ConfigDict()
  c.data.name = 'moving_digits'
  c.data.builder_kwargs = ml_collections.ConfigDict({'config': 'small'})
  c.data.data_dir = default_data_dir()
  # Your own videos (data.name='video_folder'): ROOT/<class>/*.mp4|avi|mkv|webm,
  # decoded with PyAV, resized and cut into clips.
  c.data.video_folder = ml_collections.ConfigDict()
  c.data.video_folder.root = ''
  c.data.video_folder.num_frames = 16
  c.data.video_folder.height = 64
  c.data.video_folder.width = 64
  c.data.video_folder.max_clips_per_video = 0  # 0 = every clip.
  # A file that stops decoding part-way: 'skip' it (counted), keep the
  # frames before the break ('keep_truncated'), or stop ('fail').
  # docs/reliability.md.
  c.data.video_folder.on_decode_error = 'skip'
  # A video shorter than one clip: padded with its last frame, or skipped.
  c.data.video_folder.pad_short_videos = True
  c.data.dataset_dir = ''
  c.data.train_split = 'train'  # TFDS slices too: 'train[:1024]'.
  c.data.eval_split = 'validation'
  c.data.batch_size = 8  # Global, over all devices and hosts.
  # Train on random crops of this many consecutive frames (0 = whole clips);
  # validation during training then reads each video's middle crop.
  c.data.train_clip_frames = 0
  c.data.num_threads = 4

  c.model = ml_collections.ConfigDict()

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'adam'  # adam | adamw | sgd
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = 'cosine'  # constant | cosine
  c.optimizer.warmup_steps = 0
  c.optimizer.weight_decay = 0.0
  c.optimizer.grad_clip_norm = 0.0  # 0 = no clipping.
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.momentum = 0.9  # sgd
  c.optimizer.nesterov = False  # sgd
  c.optimizer.end_value_fraction = 0.0  # cosine: final lr / learning_rate.

  c.train = ml_collections.ConfigDict()
  c.train.steps = 1000
  c.train.log_every = 50
  c.train.checkpoint_every = 200
  c.train.keep_checkpoints = 3
  c.train.eval_every = 0  # 0 = only at the end.
  c.train.eval_batches = 0  # 0 = the whole split.
  c.train.grad_accum_steps = 1
  c.train.compute_dtype = 'float32'  # float32 | bfloat16
  # Steps dispatched before the host waits for the oldest one: more overlap
  # host and device; fewer keep a SIGTERM's checkpoint prompt; 0 waits for
  # every step (synchronous: a failing step surfaces where it happens).
  c.train.max_steps_in_flight = 1
  # Stage-wise training: start (when the workdir has no checkpoint yet) from
  # another run's parameters, matched by path and shape; fresh optimizer.
  c.train.init_from = ml_collections.ConfigDict()
  c.train.init_from.workdir = ''  # '' = from scratch.
  c.train.init_from.step = 0  # 0 = its latest checkpoint.
  c.train.init_from.skip_mismatched = False  # True: keep differing shapes.
  # Nest the source's params under this key ('backbone': collaborative
  # memory from an S3D classification run).
  c.train.init_from.params_under = ''

  c.eval = ml_collections.ConfigDict()
  c.eval.split = 'test'
  c.eval.num_batches = 0  # 0 = the whole split.

  # `data` shards the batch; `model` is there for rules that shard weights.
  c.mesh = ml_collections.ConfigDict()
  c.mesh.shape = (-1, 1)
  c.mesh.axes = ('data', 'model')
  c.sharding = ml_collections.ConfigDict()
  # (logical axis name, mesh axis) pairs; unlisted names are replicated.
  c.sharding.logical_axis_rules = ()
  return c


def parse_presets(arg: str | None, known) -> list[str]:
  """`'tiny,cr30'` -> `['tiny', 'cr30']`, each checked against `known`."""
  presets = [p for p in (arg or '').split(',') if p]
  unknown = [p for p in presets if p not in known]
  if unknown:
    raise ValueError(f'Unknown preset(s) {unknown}; known: {sorted(known)}.')
  return presets
