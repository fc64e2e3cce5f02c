r"""Linear probe: how much of the motion class do a code dataset's clips hold?

  python experiments/probe_code_motion.py --codec_workdir=runs/codec30 \
      --dataset_dir=runs/codec30/codes/moving_digits_large

Embeds each video's middle clip of `--clip_frames` code steps in the frozen
codec's codebooks, takes the cosine similarity of every code cell with its
neighbours one step later (`cvision.projects.codec.probe.clip_correlations`, (2r+1)^2
numbers per cell) and averages each over the clip: a handful of numbers per
clip. A logistic regression fits them to the label on `--fit_split` and is
scored on `--score_split`.

It answers where a gap between a network on codes and one on pixels comes
from: if these few global statistics already tell the motion, the codes hold
it and the network fails to read it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds

from cvision.projects.codec import frozen
from cvision.projects.codec import probe

_CODEC = flags.DEFINE_string('codec_workdir', None,
                             'The codec run that wrote the codes.')
_DATASET_DIR = flags.DEFINE_string('dataset_dir', None,
                                   'The code dataset (--mode=encode output).')
_CLIP_FRAMES = flags.DEFINE_integer('clip_frames', 8,
                                    'Code time steps per clip.')
_RADIUS = flags.DEFINE_integer('radius', 1, 'Neighbours up to this many '
                               'cells away.')
_FIT_SPLIT = flags.DEFINE_string('fit_split', 'train', 'Split to fit on.')
_SCORE_SPLIT = flags.DEFINE_string('score_split', 'test', 'Split to score.')
_VIDEOS = flags.DEFINE_integer('videos', 1024,
                               'At most this many videos per split.')
flags.mark_flags_as_required(['codec_workdir', 'dataset_dir'])


def _split(builder, split: str, limit: int):
  if split not in builder.info.splits:
    raise ValueError(f'{builder.data_dir} has no split {split!r}; it has '
                     f'{sorted(builder.info.splits)}.')
  source = builder.as_data_source(split=split)
  n = min(limit, len(source))
  examples = [source[i] for i in range(n)]
  return (np.stack([e['codes'] for e in examples]),
          np.array([e['label'] for e in examples]))


def main(argv):
  del argv
  if not os.path.isdir(_DATASET_DIR.value):
    raise app.UsageError(f'--dataset_dir={_DATASET_DIR.value}: no such '
                         'directory (write it with the codec\'s '
                         '--mode=encode).')
  builder = tfds.builder_from_directory(_DATASET_DIR.value)
  codec = frozen.load_frozen_codec(_CODEC.value)
  books = jnp.asarray(codec.codebook)
  features = {}
  for split in (_FIT_SPLIT.value, _SCORE_SPLIT.value):
    codes, labels = _split(builder, split, _VIDEOS.value)
    features[split] = (probe.clip_correlations(
        books, codes, _CLIP_FRAMES.value, _RADIUS.value), labels)
  accuracy = probe.fit_and_score(*features[_FIT_SPLIT.value],
                                 *features[_SCORE_SPLIT.value])
  labels = features[_SCORE_SPLIT.value][1]
  majority = np.bincount(labels).max() / len(labels)
  print(f'code motion probe accuracy {100 * accuracy:.1f}% on {len(labels)} '
        f'{_SCORE_SPLIT.value} clips of {_CLIP_FRAMES.value} steps '
        f'(majority class {100 * majority:.1f}%; {(2 * _RADIUS.value + 1)**2} '
        'mean correlations per clip)')


if __name__ == '__main__':
  app.run(main)
