r"""Builds the cvision TFDS datasets (array_record, no TensorFlow needed).

From Python:

  builder = build_dataset('moving_digits', data_dir, config='tiny')
  builder = build_dataset('video_folder', data_dir, root='/data/ucf101',
                          num_frames=16, height=64, width=64)
  train = builder.as_data_source(split='train')

From the command line:

  python -m data_pipelines.build_cli --dataset=moving_digits --config=small \
      --data_dir=/data/tfds
  python -m data_pipelines.build_cli --dataset=video_folder --root=/data/ucf101 \
      --num_frames=16 --height=64 --width=64 --data_dir=/data/tfds \
      [--on_decode_error=skip|keep_truncated|fail]

A dataset that is already built is reused, not rebuilt. Bad input (what is
skipped and counted, what is an error) is listed in docs/reliability.md.
"""

from collections.abc import Sequence
import os

import tensorflow_datasets as tfds

from data_pipelines.builders import moving_digits
from data_pipelines.builders import video_folder

DATASETS = ('moving_digits', 'video_folder')
FILE_FORMAT = 'array_record'  # The one format TFDS writes without TF.


def build_dataset(name: str, data_dir: str | os.PathLike[str],
                  **builder_kwargs) -> tfds.core.DatasetBuilder:
  """Builds dataset `name` under `data_dir` unless built; returns its builder.

  Args:
    name: 'moving_digits' or 'video_folder'.
    data_dir: TFDS data directory.
    **builder_kwargs: for moving_digits, `config` (a config name: 'small'
      (default), 'large', 'tiny', 'dense', 'odd_one_out', 'odd_translation',
      'long', 'paper', or a MovingDigitsBuilderConfig).
      For video_folder, either `config` (a VideoFolderConfig) or `root` plus
      VideoFolderConfig fields (num_frames, height, width, clip_stride,
      frame_step, max_clips_per_video, pad_short_videos, split_fractions,
      extensions, on_decode_error) and optionally `config_name`.
      `on_decode_error` ('skip' (default), 'keep_truncated' or 'fail')
      decides what a file that stops decoding part-way does; see
      docs/reliability.md.

  Returns:
    The prepared builder; read it with `builder.as_data_source(split=...)`.

  Raises:
    ValueError: unknown `name` (the message lists the choices), a video
      folder with no readable video, or a bad setting.
    FileNotFoundError: the video folder does not exist.
    video_io.VideoReadError: with on_decode_error='fail', the first file
      that cannot be read in full.
  """
  data_dir = os.fspath(data_dir)
  if name == 'moving_digits':
    config = builder_kwargs.pop('config', None) or 'small'
    if builder_kwargs:
      raise TypeError(
          f'moving_digits takes only `config`, got {sorted(builder_kwargs)}.')
    builder = moving_digits.MovingDigits(
        config=config, data_dir=data_dir, file_format=FILE_FORMAT)
  elif name == 'video_folder':
    config = builder_kwargs.pop('config', None)
    if config is None:
      if 'root' not in builder_kwargs:
        raise ValueError('video_folder needs `root` (or a VideoFolderConfig).')
      config = video_folder.VideoFolderConfig.for_folder(
          builder_kwargs.pop('root'), name=builder_kwargs.pop('config_name',
                                                              None),
          **builder_kwargs)
    elif builder_kwargs:
      raise TypeError('Pass either `config` or `root` and settings, not both.')
    builder = video_folder.VideoFolder(
        config=config, data_dir=data_dir, file_format=FILE_FORMAT)
  else:
    raise ValueError(
        f'Unknown dataset {name!r}; choose one of: {", ".join(DATASETS)}.')
  builder.download_and_prepare()
  return builder
