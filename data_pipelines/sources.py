"""The TFDS dataset a config names, as a random-access source of examples.

`data.dataset_dir` reads a prepared TFDS directory (a code dataset written by
the codec's `--mode=encode`, say); otherwise `data.name` picks a builder of
`data_pipelines.build`, built on first use. No JAX here: batching and the
transfer to the device mesh are `cvision.core.input_pipeline`'s.
"""
from __future__ import annotations

import os

import ml_collections


def load_builder(config: ml_collections.ConfigDict):
  """The TFDS builder named by `config.data`, built first when needed.

  Either `data.dataset_dir` (a prepared TFDS dataset directory, e.g. a code
  dataset written by `--mode=encode`), or `data.name` (a builder of
  `data_pipelines.build`, e.g. `moving_digits`) with `data.builder_kwargs`
  and `data.data_dir`.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  dataset_dir = config.get('dataset_dir')
  if dataset_dir:
    if not os.path.isfile(os.path.join(dataset_dir, 'dataset_info.json')):
      raise FileNotFoundError(
          f'data.dataset_dir={dataset_dir!r} is not a prepared TFDS dataset '
          '(no dataset_info.json).')
    return tfds.builder_from_directory(dataset_dir)
  from data_pipelines import build  # pylint: disable=g-import-not-at-top
  kwargs = dict(config.get('builder_kwargs', {}))
  if config.name == 'video_folder':
    folder = config.video_folder
    if not folder.root:
      raise ValueError('data.name=video_folder needs data.video_folder.root '
                       '(a folder of <class>/ sub-folders of videos).')
    kwargs = dict(root=folder.root, num_frames=folder.num_frames,
                  height=folder.height, width=folder.width,
                  max_clips_per_video=folder.max_clips_per_video or None,
                  on_decode_error=folder.on_decode_error,
                  pad_short_videos=folder.pad_short_videos)
  return build.build_dataset(config.name, config.data_dir, **kwargs)


def load_source(config: ml_collections.ConfigDict, split: str):
  """A random-access source of examples (dicts of numpy arrays).

  `split` is a TFDS split spec, slices included (`train[:1024]`,
  `train[:10%]`, `train[:50%]+validation`), so a run can train on part of a
  dataset without a new one being written. TFDS parses and checks the spec;
  its errors are re-raised naming the dataset and its splits.
  """
  builder = load_builder(config)
  try:
    return builder.as_data_source(split=split)
  except ValueError as e:
    raise ValueError(
        f'Split {split!r} not in dataset {builder.info.full_name} or not a '
        'valid TFDS split spec (a split name, optionally sliced, e.g. '
        f"'train[:1024]'); it has {sorted(builder.info.splits)}. TFDS: {e}"
    ) from e
