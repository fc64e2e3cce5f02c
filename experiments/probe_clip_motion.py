r"""Linear probe: do a run's S3D clip features still tell the clip's motion?

  python experiments/probe_clip_motion.py --workdir=runs/cm_odd4/multi_clip \
      --data_dir=runs/datasets --dataset_config=odd_translation

Reads the run's latest checkpoint and `config.json` (an S3D run, or a
collaborative-memory run whose backbone sits under `params/backbone`), cuts
each video of the split into back-to-back clips of `--clip_frames`, keeps the
clips that show one motion, mean-pools the backbone's last features
(inference mode) and fits a logistic regression to the clip's own motion on
half the videos, scoring it on the other half. A video-level label can make
fine-tuning erase what the clips show; this says whether it did.

`--target=rotates` probes the binary "does this clip rotate" instead (what
`count_rotations` asks of each clip).
"""
from collections.abc import Callable
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from sklearn import linear_model

from cvision.core import warm_start
from cvision.projects.collab_memory import task as collab_memory
from experiments.configs import collab_memory as cm_configs
from cvision.projects.s3d import task as s3d_classification
from data_pipelines import build
from data_pipelines.generated import moving_digits

_WORKDIR = flags.DEFINE_string('workdir', None, 'The run to probe.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'TFDS data directory.')
_DATASET_CONFIG = flags.DEFINE_string('dataset_config', 'odd_translation',
                                      'moving_digits config to probe on.')
_SPLIT = flags.DEFINE_string('split', 'validation', 'Split to probe on.')
_CLIP_FRAMES = flags.DEFINE_integer('clip_frames', 8, 'Frames per clip.')
_VIDEOS = flags.DEFINE_integer('videos', 256, 'Videos to use (half fit).')
_TARGET = flags.DEFINE_enum(
    'target', 'motion', ['motion', 'rotates'],
    "What to probe: the clip's motion class, or whether it rotates.")
flags.mark_flags_as_required(['workdir', 'data_dir'])
# (task, input) of the runs whose S3D reads RGB clips.
_PROBED = (('s3d_classification', 'rgb'), ('collab_memory', 'rgb'))


def load_pooled_features(workdir: str) -> Callable[[np.ndarray], np.ndarray]:
  """The run's S3D as `[clips, L, H, W, 3] uint8 -> [clips, C]` pooled.

  Checks the run before any data is read: a missing run or one without an
  RGB S3D fails here, naming it.
  """
  variables, _ = warm_start.load_variables(workdir)  # Names a missing run.
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  if (config.get('task'), config.get('input', 'rgb')) not in _PROBED:
    raise ValueError(
        f'{workdir} is a {config.get("task")!r} run (input '
        f'{config.get("input")!r}); the probe reads the S3D of an RGB '
        '`s3d_classification` run or of a `collab_memory` run.')
  saved = config
  config = ml_collections.ConfigDict(config)
  # The run's own S3D, built as its task builds it, without the head.
  if config.task == collab_memory.NAME:
    # CM runs from before the code inputs saved fewer model fields: the
    # config file's defaults (RGB) fill what they lack.
    config = cm_configs.get_config()
    config.update(ml_collections.ConfigDict(saved))
    model = collab_memory.build_backbone(config)
  else:
    model = s3d_classification.build_model(config).clone(head='none')
  params = variables['params']
  params = params.get('backbone', params)  # CM runs keep S3D under it.
  pooled = jax.jit(lambda clips: model.apply(
      {'params': params, **variables['collections']},
      clips.astype(jnp.float32) / 255.0, train=False).mean(axis=(1, 2, 3)))
  return lambda clips: np.asarray(pooled(jnp.asarray(clips)))


def probe_target(motion: int, target: str) -> int:
  """The probed label of a clip showing one `motion` class."""
  if target == 'rotates':
    return int(motion in moving_digits.ROTATION_CLASSES)
  return int(motion)


def main(argv):
  del argv
  pooled_features = load_pooled_features(_WORKDIR.value)
  # Built first when missing, as `experiments/main.py` does.
  source = build.build_dataset(
      'moving_digits', _DATA_DIR.value,
      config=_DATASET_CONFIG.value).as_data_source(split=_SPLIT.value)
  num = min(_VIDEOS.value, len(source))
  if num < 2:
    raise ValueError(f'{_SPLIT.value} holds {len(source)} videos; the probe '
                     'needs 2 or more.')
  length = _CLIP_FRAMES.value
  if not 2 <= length <= len(source[0]['video']):
    raise ValueError(f'--clip_frames={length}: expected 2 to the videos\' '
                     f"{len(source[0]['video'])} frames.")
  x_parts, y_parts = [[], []], [[], []]
  for index in range(num):
    example = source[index]
    video = example['video']
    # Back-to-back clips; each label is that of its steps t -> t+1.
    starts = range(0, len(video) - length + 1, length)
    feats = pooled_features(np.stack([video[t:t + length] for t in starts]))
    half = 0 if index < num // 2 else 1
    for start, feat in zip(starts, feats):
      labels = example['frame_labels'][start:start + length - 1]
      if (labels == labels[0]).all():  # One motion in the clip.
        x_parts[half].append(feat)
        y_parts[half].append(probe_target(labels[0], _TARGET.value))
  probe = linear_model.LogisticRegression(max_iter=3000)
  probe.fit(np.stack(x_parts[0]), np.array(y_parts[0]))
  accuracy = probe.score(np.stack(x_parts[1]), np.array(y_parts[1]))
  chance = np.bincount(y_parts[1]).max() / len(y_parts[1])
  print(f'{_WORKDIR.value}: clip {_TARGET.value} probe accuracy {100 * accuracy:.1f}% '
        f'on {len(y_parts[1])} held-out clips (majority class '
        f'{100 * chance:.1f}%).')


if __name__ == '__main__':
  app.run(main)
