"""TFDS builder `moving_digits`: motion-labelled synthetic videos.

Nothing is downloaded: every example comes from
`data_pipelines.generated.moving_digits.generate_example`. Build with

  builder = MovingDigits(config='tiny', data_dir=d, file_format='array_record')
  builder.download_and_prepare()
  train = builder.as_data_source(split='train')  # Random access, numpy.

Configs (train/validation/test examples):
  small  (default) 16 x 64 x 64, one class per video,      1024/256/256
  large            as small, 8x the training videos,        8192/512/512
  tiny             8 x 32 x 32, one class per video,       64/16/16 (tests)
  dense            32 x 64 x 64, 4 motion segments/video,  1024/256/256
  odd_one_out      as dense, 4 equal segments, all of one
                   motion but one, which is the label       2048/256/512
  odd_translation  as odd_one_out, the 4 translations only  2048/256/512
  count_rotations  as odd_one_out's frames; each segment
                   rotates or translates (1/2 each), the
                   label is how many rotate (0-4)           2048/256/512
  long             256 x 64 x 64, 16 segments of >= 8 frames, 128/32/32

Each split uses its own seed, so splits never share an example, and a
rebuild yields byte-identical examples.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders import _common
from data_pipelines.generated import moving_digits as md


@dataclasses.dataclass(eq=False, kw_only=True)
class MovingDigitsBuilderConfig(tfds.core.BuilderConfig):
  """A generator config plus (split name, num examples, seed) triples."""
  generator: md.MovingDigitsConfig = md.DEFAULT
  splits: tuple[tuple[str, int, int], ...] = (
      ('train', 1024, 1), ('validation', 256, 2), ('test', 256, 3))


def _splits(train: int, validation: int, test: int):
  return (('train', train, 1), ('validation', validation, 2),
          ('test', test, 3))


class MovingDigits(_common.LocalBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """Digits moving over textures; the label is the motion class."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [
      MovingDigitsBuilderConfig(
          name='small', description='16 frames of 64x64, one class per video.',
          generator=md.DEFAULT, splits=_splits(1024, 256, 256)),
      MovingDigitsBuilderConfig(
          name='large', description='As small, with 8192 training videos '
          '(3D CNNs from scratch; the generator is unlimited).',
          generator=md.DEFAULT, splits=_splits(8192, 512, 512)),
      MovingDigitsBuilderConfig(
          name='tiny', description='8 frames of 32x32; for tests.',
          generator=md.MovingDigitsConfig(num_frames=8, height=32, width=32),
          splits=_splits(64, 16, 16)),
      MovingDigitsBuilderConfig(
          name='dense',
          description='32 frames of 64x64 in 4 segments with their own class.',
          generator=md.DENSE, splits=_splits(1024, 256, 256)),
      MovingDigitsBuilderConfig(
          name='odd_one_out',
          description='32 frames of 64x64 in 4 equal segments, all of one '
          'motion but one; the label is the odd motion (needs every clip).',
          generator=md.ODD_ONE_OUT, splits=_splits(2048, 256, 512)),
      MovingDigitsBuilderConfig(
          name='odd_translation',
          description='As odd_one_out, with the 4 translations only: one '
          'direction in 3 segments, another in 1, the label.',
          generator=md.ODD_TRANSLATION, splits=_splits(2048, 256, 512)),
      MovingDigitsBuilderConfig(
          name='count_rotations',
          description='32 frames of 64x64 in 4 equal segments, each '
          'rotating or translating; the label is how many rotate (0-4).',
          generator=md.COUNT_ROTATIONS, splits=_splits(2048, 256, 512)),
      MovingDigitsBuilderConfig(
          name='long',
          description='256 frames of 64x64 in 16 segments (long videos).',
          generator=md.LONG, splits=_splits(128, 32, 32)),
      MovingDigitsBuilderConfig(
          name='paper',
          description='32 frames of 256x256 (the paper\'s codec input size); '
          'for GPU/TPU runs and benchmarks.',
          generator=md.MovingDigitsConfig(num_frames=32, height=256,
                                          width=256),
          splits=_splits(512, 64, 64)),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = 'small'

  def _info(self) -> tfds.core.DatasetInfo:
    gen = self.builder_config.generator
    t, h, w = gen.num_frames, gen.height, gen.width
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            'Synthetic videos of an sklearn digit moving over a random smooth '
            'texture. The label (' + ', '.join(gen.label_names) + ') comes '
            'from the motion; no single frame reveals it.'),
        features=tfds.features.FeaturesDict({
            # zlib: uint8 frames over smooth textures compress well.
            'video': tfds.features.Tensor(
                shape=(t, h, w, 3), dtype=np.uint8, encoding='zlib'),
            'label': tfds.features.ClassLabel(names=gen.label_names),
            # Per-frame motion class ids, into `gen.class_names` (the names
            # of `label` too, except for count_rotations' counts).
            'frame_labels': tfds.features.Tensor(shape=(t,), dtype=np.int32),
            'video_id': tfds.features.Text(),
        }),
        supervised_keys=('video', 'label'),
        homepage='https://scikit-learn.org/stable/datasets/toy_dataset.html',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {name: self._generate_examples(name, num, seed)
            for name, num, seed in self.builder_config.splits}

  def _generate_examples(self, split: str, num_examples: int, seed: int):
    gen = self.builder_config.generator
    for index in range(num_examples):
      ex = md.generate_example(gen, seed, index)
      yield index, {
          'video': ex['video'],
          'label': ex['label'],
          'frame_labels': ex['frame_labels'],
          'video_id': f'{split}_{index:06d}',
      }
