"""TFDS builder `mpeg_gops`: videos in the MPEG-4 compressed domain.

Each example is a video read back as GOPs (`data_pipelines.mpeg.extract`)
after MPEG-4 part 2 encoding (`data_pipelines.mpeg.encoding`: GOP 12, no
B-frames, fixed quantiser). Two sources:

* generated (configs `small`, `tiny`): moving-digits videos
  (`data_pipelines.generated.moving_digits`, 8 motion classes) encoded by
  the pipeline. Nothing is downloaded.
* a folder of your own videos, UCF-101 style (`root/<class>/*.mp4|avi|...`
  or `root/<split>/<class>/...`; see `video_folder.scan_video_folder`):
  `folder_config(root, ...)`. Files that are not MPEG-4 part 2 with GOPs of
  12 and no B-frames, or not of the asked size (odd sizes included), are
  re-encoded (each one logged; counted in `info.metadata`); unreadable
  files (corrupt, still images, sound only) and files shorter than
  `num_gops` GOPs are skipped and listed. Bad input follows the rules of
  `video_folder` (docs/reliability.md): a file that stops decoding
  part-way follows `on_decode_error` ('skip' by default, 'keep_truncated'
  keeps its complete GOPs, 'fail' stops the build), a split whose files are
  all skipped is left out (`splits_left_out`), and nothing readable at all
  is an error naming the folder. The counts are logged, kept in
  `info.metadata` and summed up in the description.

  builder = build('/data/tfds', 'small')      # built once, then reused
  builder = build('/data/tfds', folder_config('/data/ucf101', num_gops=2))
  train = builder.as_data_source(split='train')

Features (G GOPs of an I-frame and P = 11 P-frames):
  i_frames                    [G, H, W, 3] uint8
  motion_vectors              [G, P, H, W, 2] float16, (dx, dy) pixels
  residuals                   [G, P, H, W, 3] int16
  accumulated_motion_vectors  [G, P, H, W, 2] int16, traced to the I-frame
  accumulated_residuals       [G, P, H, W, 3] int16
  label                       motion (or folder) class
  video_id                    text

Configs (train/validation/test):
  small   24 frames = 2 GOPs of 64x64, 1024/128/256 (the CPU preset)
  tiny    12 frames = 1 GOP of 32x32, 16/8/8 (tests)
  moving_digits_small, moving_digits_tiny: the very videos (same generator,
          seeds and splits) of `moving_digits/small` (16 frames of 64x64,
          1024/256/256) and `/tiny` (8 of 32x32, 64/16/16), one GOP each:
          the MPEG route of the three-route comparison
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import re

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders import _common
from data_pipelines.builders import moving_digits
from data_pipelines.builders import video_folder
from data_pipelines.generated import moving_digits as md
from data_pipelines.mpeg import encoding
from data_pipelines.mpeg import extract
from data_pipelines.mpeg.errors import MpegExtractionError
from data_pipelines.mpeg.errors import TooShortError

FILE_FORMAT = 'array_record'
FEATURE_KEYS = ('i_frames', 'motion_vectors', 'residuals',
                'accumulated_motion_vectors', 'accumulated_residuals')


@dataclasses.dataclass(eq=False, kw_only=True)
class MpegGopsConfig(tfds.core.BuilderConfig):
  """Where the videos come from, their MPEG-4 encoding and the splits.

  Attributes:
    generator: the generated videos (when `root` is empty).
    gop_size: frames per GOP.
    quantizer: MPEG-4 quantiser of the pipeline's encodings.
    splits: generated videos: (split, number of videos, seed) triples.
    root: a folder of your own videos instead (see the module docstring).
    folder_gops: GOPs kept per video of `root` (shorter videos are skipped).
    folder_size: (height, width) every video of `root` is brought to.
    split_fractions: `root` without split folders: (split, fraction) pairs.
    on_decode_error: `root`: a file that stops decoding part-way is
      'skip'ped, kept truncated ('keep_truncated': its complete GOPs) or
      'fail's the build (as any unreadable file then does).
  """
  generator: md.MovingDigitsConfig = md.MovingDigitsConfig(num_frames=24)
  gop_size: int = encoding.GOP_SIZE
  quantizer: int = encoding.DEFAULT_QUANTIZER
  splits: tuple[tuple[str, int, int], ...] = (
      ('train', 1024, 1), ('validation', 128, 2), ('test', 256, 3))
  root: str = ''
  folder_gops: int = 2
  folder_size: tuple[int, int] = (64, 64)
  split_fractions: tuple[tuple[str, float], ...] = (
      ('train', 0.8), ('validation', 0.1), ('test', 0.1))
  on_decode_error: str = 'skip'

  def __post_init__(self):
    if self.on_decode_error not in video_folder.DECODE_ERROR_POLICIES:
      raise ValueError(
          'on_decode_error must be one of '
          f'{video_folder.DECODE_ERROR_POLICIES}, got '
          f'{self.on_decode_error!r}.')
    if not self.root and self.generator.num_frames < self.gop_size:
      raise ValueError(f'{self.generator.num_frames} frames per video are '
                       f'fewer than one GOP of {self.gop_size}.')
    if self.root and (self.folder_gops < 1 or self.folder_size[0] % 2
                      or self.folder_size[1] % 2):
      raise ValueError('folder_gops must be >= 1 and folder_size even, got '
                       f'{self.folder_gops}, {self.folder_size}.')

  @property
  def num_gops(self) -> int:
    if self.root:
      return self.folder_gops
    return self.generator.num_frames // self.gop_size

  @property
  def frame_size(self) -> tuple[int, int]:
    if self.root:
      return tuple(self.folder_size)
    return self.generator.height, self.generator.width


def folder_config(root: str | os.PathLike[str], *, num_gops: int = 2,
                  height: int = 64, width: int = 64,
                  on_decode_error: str = 'skip',
                  name: str | None = None, **kwargs) -> MpegGopsConfig:
  """A config for the videos under `root`, named after it and its settings."""
  root = os.path.abspath(os.fspath(root))
  kwargs['on_decode_error'] = on_decode_error
  settings = (root, num_gops, height, width, sorted(kwargs.items()))
  digest = hashlib.sha1(repr(settings).encode()).hexdigest()[:10]
  base = re.sub(r'[^a-z0-9]+', '_', os.path.basename(root).lower()).strip('_')
  return MpegGopsConfig(
      name=name or f'{base[:40] or "videos"}_{num_gops}x{height}x{width}_'
      f'{digest}', root=root, folder_gops=num_gops,
      folder_size=(height, width), **kwargs)


class MpegGops(_common.LocalBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """Videos as I-frames, motion vectors and residuals."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [
      MpegGopsConfig(
          name='small', description='2 GOPs of 64x64, 8 motion classes.'),
      MpegGopsConfig(
          name='tiny', description='1 GOP of 32x32; for tests.',
          generator=md.MovingDigitsConfig(num_frames=12, height=32, width=32),
          splits=(('train', 16, 1), ('validation', 8, 2), ('test', 8, 3))),
  ] + [
      # The three-route comparison needs the videos the other routes read:
      # moving_digits' own generator and splits, one GOP per video.
      MpegGopsConfig(
          name=f'moving_digits_{source.name}',
          description=(f'The videos of moving_digits/{source.name}, one GOP '
                       f'of {source.generator.num_frames} frames.'),
          generator=source.generator,
          gop_size=source.generator.num_frames, splits=source.splits)
      for source in moving_digits.MovingDigits.BUILDER_CONFIGS
      if source.name in ('small', 'tiny')
  ]
  DEFAULT_BUILDER_CONFIG_NAME = 'small'

  def __init__(self, **kwargs):
    self._scan_cache = None
    self._report = _common.BuildReport('mpeg_gops')
    self._reencoded: collections.Counter = collections.Counter()
    super().__init__(**kwargs)

  def _scan(self) -> video_folder.FolderScan:
    if self._scan_cache is None:
      self._scan_cache = video_folder.scan_video_folder(
          self.builder_config.root,
          split_fractions=self.builder_config.split_fractions)
    return self._scan_cache

  def _class_label(self) -> tfds.features.ClassLabel:
    cfg = self.builder_config
    if not cfg.root:
      return tfds.features.ClassLabel(names=cfg.generator.label_names)
    try:
      return tfds.features.ClassLabel(names=self._scan().class_names)
    except (OSError, ValueError):
      # Reading a built dataset without its folder: names come from disk.
      return tfds.features.ClassLabel()

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    g, p = cfg.num_gops, cfg.gop_size - 1
    h, w = cfg.frame_size
    tensor = lambda shape, dtype: tfds.features.Tensor(
        shape=shape, dtype=dtype, encoding='zlib')
    source = (f'the videos under {cfg.root}' if cfg.root else
              'moving digits')
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            f'{source} in MPEG-4 part 2 (GOP {cfg.gop_size}, no B-frames) '
            'read back as I-frames, motion vectors and residuals, raw and '
            'accumulated to the I-frame.'),
        features=tfds.features.FeaturesDict({
            'i_frames': tensor((g, h, w, 3), np.uint8),
            # Half-pixel steps are exact in float16.
            'motion_vectors': tensor((g, p, h, w, 2), np.float16),
            'residuals': tensor((g, p, h, w, 3), np.int16),
            'accumulated_motion_vectors': tensor((g, p, h, w, 2), np.int16),
            'accumulated_residuals': tensor((g, p, h, w, 3), np.int16),
            'label': self._class_label(),
            'video_id': tfds.features.Text(),
        }),
        supervised_keys=('i_frames', 'label'),
        metadata=tfds.core.MetadataDict({
            'source': (cfg.root or 'moving_digits, encoded to MPEG-4 part 2 '
                       'by the pipeline (data_pipelines.mpeg.encoding)'),
            'gop_size': cfg.gop_size,
            'quantizer': cfg.quantizer,
            'codec': encoding.CODEC,
        }),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    cfg = self.builder_config
    if not cfg.root:
      return {name: self._generate_examples(name, num, seed)
              for name, num, seed in cfg.splits}
    self._report = _common.BuildReport('mpeg_gops')
    self._reencoded = collections.Counter()
    return self._report.nonempty_splits(
        {split: self._generate_folder_examples(split, items)
         for split, items in self._scan().splits.items()}, cfg.root)

  @staticmethod
  def _example(gops: extract.Gops, label: int, video_id: str) -> dict:
    return {
        'i_frames': gops.i_frames,
        'motion_vectors': gops.motion_vectors.astype(np.float16),
        'residuals': gops.residuals,
        'accumulated_motion_vectors': gops.accumulated_motion_vectors,
        'accumulated_residuals': gops.accumulated_residuals,
        'label': label,
        'video_id': video_id,
    }

  def _generate_examples(self, split: str, num_examples: int, seed: int):
    cfg = self.builder_config
    for index in range(num_examples):
      example = md.generate_example(cfg.generator, seed, index)
      data = encoding.encode_mpeg4(example['video'], gop_size=cfg.gop_size,
                                   quantizer=cfg.quantizer)
      gops = extract.extract_gops(data, gop_size=cfg.gop_size,
                                  allow_reencode=False)
      yield index, self._example(gops, example['label'],
                                 f'{split}_{index:06d}')

  def _generate_folder_examples(self, split: str,
                                items: list[tuple[str, str]]):
    cfg = self.builder_config
    class_ids = {n: i for i, n in enumerate(self._scan().class_names)}
    for rel_path, class_name in items:
      try:
        gops = extract.extract_gops(
            os.path.join(cfg.root, rel_path), gop_size=cfg.gop_size,
            size=cfg.frame_size, max_gops=cfg.num_gops,
            quantizer=cfg.quantizer,
            keep_truncated=cfg.on_decode_error == 'keep_truncated')
        if gops.num_gops < cfg.num_gops:
          cut = (f' (decoding stopped: {gops.truncated})' if gops.truncated
                 else '')
          raise TooShortError(
              rel_path, f'{gops.num_gops} GOPs, fewer than {cfg.num_gops}'
              f'{cut}')
      except TooShortError as e:  # A length rule, skipped under any policy.
        self._report.skip(rel_path, e.reason)
        continue
      except MpegExtractionError as e:
        if cfg.on_decode_error == 'fail':
          raise MpegExtractionError(
              e.source, f"{e.reason} (on_decode_error='fail' stops the "
              "build; 'skip' would skip the file)") from e
        self._report.skip(rel_path, e.reason)
        continue
      if gops.reencoded:
        # Sizes vary per file; count the reasons by their kind.
        self._reencoded[gops.reencode_reason.split(',')[0].split(' resized')
                        [0]] += 1
      self._report.read(rel_path, truncated=gops.truncated)
      yield rel_path, self._example(gops, class_ids[class_name], rel_path)

  def _download_and_prepare(self, dl_manager, download_config):
    super()._download_and_prepare(dl_manager, download_config)
    cfg = self.builder_config
    if cfg.root:  # Saved with the dataset info.
      self.info.metadata.update({
          **self._report.metadata(),
          'on_decode_error': cfg.on_decode_error,
          'num_videos_reencoded': sum(self._reencoded.values()),
          'reencode_reasons': dict(self._reencoded),
      })
      logging.info('mpeg_gops %s: %d re-encoded (%s).', cfg.root,
                   sum(self._reencoded.values()), dict(self._reencoded))
      self._report.log_and_describe(self.info, cfg.root)


def build(data_dir: str | os.PathLike[str],
          config: str | MpegGopsConfig = 'small') -> MpegGops:
  """Builds `mpeg_gops/<config>` under `data_dir` unless built; the builder.

  `config` is a name ('small', 'tiny') or a `MpegGopsConfig` (e.g. from
  `folder_config`).
  """
  if isinstance(config, str):
    names = [c.name for c in MpegGops.BUILDER_CONFIGS]
    if config not in names:
      raise ValueError(f'Unknown mpeg_gops config {config!r}; known: '
                       f'{names}, or a folder_config(root).')
  builder = MpegGops(config=config, data_dir=os.fspath(data_dir),
                     file_format=FILE_FORMAT)
  builder.download_and_prepare()
  return builder
