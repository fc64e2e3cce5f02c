r"""Bits per index of a code dataset's clips: raw, zlib, lzma, entropy-coded.

  python experiments/code_storage_rates.py \
      --dataset_dir=/tmp/codec/codes/moving_digits_small --split=test

Each clip's `[T, H, W, N]` codes are compressed alone, as a code dataset
stores them (one example a record), and the entropy coding is checked
lossless on every clip. The stored CR is the clip's raw RGB bytes over its
compressed bytes; the nominal CR (`log2 K` bits an index) is the dataset's
`compression_rate`. Prints a markdown table.
"""
import lzma
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow_datasets as tfds

from cvision.projects.codec import entropy_coding

_DATASET_DIR = flags.DEFINE_string('dataset_dir', None,
                                   'A code dataset (--mode=encode output).')
_SPLIT = flags.DEFINE_string('split', 'test', 'Split to measure.')
_CLIPS = flags.DEFINE_integer('clips', 256, 'At most this many clips.')
_PRIOR_SPLIT = flags.DEFINE_string(
    'prior_split', 'train', 'Fit an `entropy_coding.Prior` on this split\'s '
    'first --prior_clips clips for one more row (empty: no prior row).')
_PRIOR_CLIPS = flags.DEFINE_integer('prior_clips', 1024, 'Clips to fit on.')
flags.mark_flags_as_required(['dataset_dir'])

_CODERS = {
    'raw array': lambda c: c.tobytes(),
    'zlib (level 6, as TFDS)': lambda c: zlib.compress(c.tobytes()),
    'zlib -9': lambda c: zlib.compress(c.tobytes(), 9),
    'lzma': lambda c: lzma.compress(c.tobytes()),
    'entropy_coding': entropy_coding.encode,
}


def main(argv):
  del argv
  builder = tfds.builder_from_directory(_DATASET_DIR.value)
  metadata = builder.info.metadata
  source = builder.as_data_source(split=_SPLIT.value)
  coders = dict(_CODERS)
  if _PRIOR_SPLIT.value:
    fit_on = builder.as_data_source(split=_PRIOR_SPLIT.value)
    prior = entropy_coding.fit_prior(
        (fit_on[i]['codes'] for i in range(min(_PRIOR_CLIPS.value,
                                               len(fit_on)))),
        metadata['codebook_size'])
    coders[f'entropy_coding + prior ({_PRIOR_SPLIT.value})'] = (
        lambda c: entropy_coding.encode(c, prior))
  count = min(_CLIPS.value, len(source))
  clip_bytes = int(np.prod(metadata['input_shape'][:3])) * 3
  totals = dict.fromkeys(coders, 0)
  indices = 0
  for i in range(count):
    codes = np.asarray(source[i]['codes'])
    indices += codes.size
    for name, coder in coders.items():
      data = coder(codes)
      totals[name] += len(data)
      if name.startswith('entropy_coding'):
        np.testing.assert_array_equal(entropy_coding.decode(
            data, prior if 'prior' in name else None), codes)
  k = metadata['codebook_size']
  print(f'{count} clips of {_SPLIT.value} in {_DATASET_DIR.value}: codes '
        f'{tuple(codes.shape)} {codes.dtype}, K={k}, nominal CR '
        f'{metadata["compression_rate"]:.1f} ({np.log2(k):.2f} bits/index)')
  print('| storage | bits/index | bytes/clip | stored CR |')
  print('|---|---|---|---|')
  for name, total in totals.items():
    print(f'| {name} | {8 * total / indices:.3f} | {total / count:.0f} | '
          f'{clip_bytes * count / total:.1f} |')


if __name__ == '__main__':
  app.run(main)
