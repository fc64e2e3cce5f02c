"""TFDS builder `video_folder`: clips from a folder of the user's own videos.

Layouts (UCF-101 style; class names sorted alphabetically give label ids):

  root/<class_name>/**/*.mp4|.avi|.mkv|.webm
      Each file goes to train/validation/test by a hash of its file name,
      with fractions `split_fractions`.
  root/<split>/<class_name>/**/*.mp4 ...
      When every sub-folder of root is a split name (train, validation or
      val, test), those splits are used as they are. A root mixing split
      folders with other folders is refused.

Each video is decoded with PyAV, resized to (height, width) and cut into
clips of `num_frames` frames (after keeping every `frame_step`-th frame),
starting every `clip_stride` frames, at most `max_clips_per_video` per video.
A video shorter than one clip is padded by repeating its last frame (or
skipped, with `pad_short_videos=False`); padded videos are counted.

Bad input (docs/reliability.md lists every case and its test):

* A missing, empty or unlistable folder, or one without class sub-folders
  holding videos, raises before anything is written.
* A file that is not a readable video (corrupt, empty, text, a still image,
  sound only) is logged, skipped and counted.
* A file that stops decoding part-way (cut short) follows
  `on_decode_error`: 'skip' (default) skips and counts it, 'keep_truncated'
  keeps the clips of the frames decoded before the fault and counts it,
  'fail' stops the build naming it (and any other unreadable file).
* A split whose files are all skipped is left out, with a warning and
  `splits_left_out` in the metadata (the same rule as `mpeg_gops`); when
  every split is, the build fails naming the folder.

The counts (`num_videos_read`, `num_videos_skipped`, `skipped_files`,
`num_videos_truncated`, `truncated_files`, `num_videos_padded`,
`padded_files`, `splits_left_out`) are logged at the end, kept in
`builder.info.metadata` and summed up in the description. TFDS writes into
an `incomplete.*` directory renamed into place only after every split is
written, so an error or a kill mid-way never leaves a complete-looking
dataset; a rerun rebuilds from scratch.

  config = VideoFolderConfig.for_folder('/data/ucf', num_frames=16,
                                        height=64, width=64)
  builder = VideoFolder(config=config, data_dir=d, file_format='array_record')
  builder.download_and_prepare()

The default config name hashes the folder's absolute path and every clip
setting, so two folders (or two clip settings) never share a dataset
directory; a builder whose existing data came from another folder refuses
to reuse it.
"""

import dataclasses
import hashlib
import os
import pathlib
import re
from typing import NamedTuple

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import video_io
from data_pipelines.builders import _common

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm')
# Folder names recognised as splits, mapped to TFDS split names.
SPLIT_DIRS = {'train': 'train', 'validation': 'validation',
              'val': 'validation', 'test': 'test'}
# What a file that stops decoding part-way does to the build.
DECODE_ERROR_POLICIES = ('skip', 'keep_truncated', 'fail')


@dataclasses.dataclass(eq=False, kw_only=True)
class VideoFolderConfig(tfds.core.BuilderConfig):
  """Where the videos are and how to cut them into clips.

  Attributes:
    root: the folder of class sub-folders (or split/class sub-folders).
    num_frames: frames per clip, T.
    height: clip height in pixels.
    width: clip width in pixels.
    clip_stride: frames between clip starts (after `frame_step`); None means
      `num_frames` (back-to-back clips).
    frame_step: keep every `frame_step`-th decoded frame (2 halves the rate).
    max_clips_per_video: keep at most this many clips per video; None: all.
    pad_short_videos: pad a video shorter than one clip with its last frame;
      if False such a video is skipped and counted.
    split_fractions: (split, fraction) pairs summing to 1, used when the
      folder has no split sub-folders.
    extensions: file suffixes taken as videos (case-insensitive).
    on_decode_error: a file that stops decoding part-way: 'skip' it,
      'keep_truncated' (keep the clips decoded before the fault) or 'fail'
      the build; counted in the metadata either way. 'fail' also stops at
      files that do not open.
  """
  root: str = ''
  num_frames: int = 16
  height: int = 64
  width: int = 64
  clip_stride: int | None = None
  frame_step: int = 1
  max_clips_per_video: int | None = None
  pad_short_videos: bool = True
  split_fractions: tuple[tuple[str, float], ...] = (
      ('train', 0.8), ('validation', 0.1), ('test', 0.1))
  extensions: tuple[str, ...] = VIDEO_EXTENSIONS
  on_decode_error: str = 'skip'

  def __post_init__(self):
    if self.on_decode_error not in DECODE_ERROR_POLICIES:
      raise ValueError(
          f'on_decode_error must be one of {DECODE_ERROR_POLICIES}, got '
          f'{self.on_decode_error!r}.')
    if min(self.num_frames, self.height, self.width, self.frame_step) < 1:
      raise ValueError('num_frames, height, width and frame_step must be >= 1.')
    if self.clip_stride is not None and self.clip_stride < 1:
      raise ValueError('clip_stride must be >= 1.')
    if self.max_clips_per_video is not None and self.max_clips_per_video < 1:
      raise ValueError('max_clips_per_video must be >= 1.')
    total = sum(f for _, f in self.split_fractions)
    if (abs(total - 1.0) > 1e-6 or
        any(f < 0 for _, f in self.split_fractions)):
      raise ValueError(
          f'split_fractions must be >= 0 and sum to 1: {self.split_fractions}')

  @classmethod
  def for_folder(cls, root: str | os.PathLike[str], *, name: str | None = None,
                 **kwargs) -> 'VideoFolderConfig':
    """A config for `root`, named after the folder and a hash of settings.

    Args:
      root: the video folder.
      name: config name; by default `<folder>_<T>x<H>x<W>_<hash>`, the hash
        covering the absolute path and every clip setting.
      **kwargs: other fields (num_frames, height, width, clip_stride, ...).
    """
    root = os.path.abspath(os.fspath(root))
    config = cls(name=name or 'unnamed', root=root, **kwargs)
    if name is None:
      config.name = config.default_name()
    return config

  def clip_settings(self) -> dict[str, object]:
    """Everything that changes the generated examples, JSON-serialisable."""
    return {
        'root': os.path.abspath(self.root),
        'num_frames': self.num_frames, 'height': self.height,
        'width': self.width, 'clip_stride': self.clip_stride,
        'frame_step': self.frame_step,
        'max_clips_per_video': self.max_clips_per_video,
        'pad_short_videos': self.pad_short_videos,
        'split_fractions': [list(p) for p in self.split_fractions],
        'extensions': sorted(e.lower() for e in self.extensions),
        'on_decode_error': self.on_decode_error,
    }

  def default_name(self) -> str:
    digest = hashlib.sha1(
        repr(sorted(self.clip_settings().items())).encode()).hexdigest()[:10]
    base = re.sub(r'[^a-z0-9]+', '_',
                  os.path.basename(os.path.abspath(self.root)).lower())
    base = base.strip('_')[:40] or 'videos'
    return (f'{base}_{self.num_frames}x{self.height}x{self.width}_{digest}')


@dataclasses.dataclass(frozen=True)
class FolderScan:
  """What `scan_video_folder` found.

  Attributes:
    class_names: sorted names of the class folders holding >= 1 video.
    splits: split name -> sorted [(relative posix path, class name)].
  """
  class_names: tuple[str, ...]
  splits: dict[str, list[tuple[str, str]]]


def _split_of(file_name: str, split_fractions) -> str | None:
  """Deterministic split for a file from an md5 of its name (not hash())."""
  u = int(hashlib.md5(file_name.encode()).hexdigest()[:8], 16) / 2**32
  cumulative = 0.0
  for split, fraction in split_fractions:
    cumulative += fraction
    if u < cumulative:
      return split
  return split_fractions[-1][0] if split_fractions else None


def _entries(path: pathlib.Path) -> list[os.DirEntry]:
  """Sorted entries of a folder, hidden ones left out; names a failure."""
  try:
    with os.scandir(path) as it:
      return sorted((e for e in it if not e.name.startswith('.')),
                    key=lambda e: e.name)
  except PermissionError as e:
    raise PermissionError(
        f'Cannot list video folder {str(path)!r}: permission denied.') from e


def _subdirs(path: pathlib.Path) -> list[pathlib.Path]:
  return [pathlib.Path(e.path) for e in _entries(path) if e.is_dir()]


def _is_video_name(name: str, extensions) -> bool:
  return name.lower().endswith(tuple(e.lower() for e in extensions))


def _videos_in(folder: pathlib.Path, extensions) -> list[pathlib.Path]:
  """Every non-folder entry with a video suffix under `folder`.

  Broken links and special files are listed too, so that reading them
  fails by name and they are counted, not silently left out. Linked
  folders below a class folder are not followed (as `Path.rglob`).
  """
  found = []
  for entry in _entries(folder):
    if entry.is_dir(follow_symlinks=False):
      found.extend(_videos_in(pathlib.Path(entry.path), extensions))
    elif not entry.is_dir() and _is_video_name(entry.name, extensions):
      found.append(pathlib.Path(entry.path))
  return sorted(found)


def scan_video_folder(
    root: str | os.PathLike[str],
    extensions=VIDEO_EXTENSIONS,
    split_fractions=(('train', 0.8), ('validation', 0.1), ('test', 0.1)),
) -> FolderScan:
  """Lists the videos of a UCF-101 style folder, without decoding them.

  Raises:
    FileNotFoundError: `root` does not exist.
    NotADirectoryError: `root` is a file.
    PermissionError: `root` or a folder under it cannot be listed.
    ValueError: no class sub-folder of `root` holds a video file, or `root`
      mixes split folders with other folders.
  """
  root = pathlib.Path(root).absolute()
  if not root.exists():
    raise FileNotFoundError(f'Video folder {str(root)!r} does not exist.')
  if not root.is_dir():
    raise NotADirectoryError(f'Video folder {str(root)!r} is not a directory.')
  top = _subdirs(root)
  split_dirs = [d.name for d in top if d.name.lower() in SPLIT_DIRS]
  if split_dirs and len(split_dirs) < len(top):
    raise ValueError(
        f'Video folder {str(root)!r} mixes split folders ({split_dirs}) with '
        f'other folders ({[d.name for d in top if d.name not in split_dirs]})'
        ': use root/<class>/ or root/<split>/<class>/ throughout.')
  per_split: dict[str, list[tuple[str, str]]] = {}
  if split_dirs:
    for split_dir in top:
      split = SPLIT_DIRS[split_dir.name.lower()]
      for class_dir in _subdirs(split_dir):
        for video in _videos_in(class_dir, extensions):
          per_split.setdefault(split, []).append(
              (video.relative_to(root).as_posix(), class_dir.name))
  else:
    for class_dir in top:
      for video in _videos_in(class_dir, extensions):
        split = _split_of(video.name, split_fractions)
        per_split.setdefault(split, []).append(
            (video.relative_to(root).as_posix(), class_dir.name))
  found = {c for items in per_split.values() for _, c in items}
  class_dirs = ([c for d in top for c in _subdirs(d)] if split_dirs else top)
  for empty in sorted({d.name for d in class_dirs} - found):
    logging.warning('video_folder %s: class folder %r holds no %s file; '
                    'that class gets no label.', root, empty,
                    '/'.join(extensions))
  if not per_split:
    loose = [e.name for e in _entries(root)
             if not e.is_dir() and _is_video_name(e.name, extensions)]
    hint = (f' {len(loose)} video files lie directly in it (e.g. '
            f'{loose[0]!r}): move them into one sub-folder per class.'
            if loose else '')
    raise ValueError(
        f'No videos found in {str(root)!r}: expected class sub-folders '
        f'holding {"/".join(extensions)} files, as root/<class_name>/'
        f'video.mp4 or root/<split>/<class_name>/video.mp4.{hint}')
  class_names = sorted(found)
  splits = {s: sorted(items) for s, items in sorted(per_split.items())}
  return FolderScan(class_names=tuple(class_names), splits=splits)


class VideoClips(NamedTuple):
  """The clips of one video and how they were got.

  Attributes:
    clips: `[T, H, W, 3] uint8` clips; empty for a video shorter than one
      clip when `pad_short_videos` is False.
    padded: the video was shorter than one clip and padded.
    truncated: '' or, with `on_decode_error='keep_truncated'`, why decoding
      stopped before the end (the clips are from the frames before).
  """
  clips: list[np.ndarray]
  padded: bool = False
  truncated: str = ''


def video_clips(path: str | os.PathLike[str], config: VideoFolderConfig
                ) -> VideoClips:
  """Decodes and cuts one video, holding only its clips in memory.

  Raises:
    video_io.VideoReadError: the file cannot be decoded, or stops decoding
      part-way and `config.on_decode_error` is not 'keep_truncated'.
  """
  t = config.num_frames
  stride = config.clip_stride or t
  clips, window, skip, index = [], [], 0, 0
  frames = video_io.iter_frames(path, size=(config.height, config.width))
  truncated = ''
  try:
    for frame in frames:
      index += 1
      if (index - 1) % config.frame_step:
        continue
      if skip:
        skip -= 1
        continue
      window.append(frame)
      if len(window) == t:
        clips.append(np.stack(window))
        if (config.max_clips_per_video is not None and
            len(clips) >= config.max_clips_per_video):
          # Stops decoding: the rest of the file is not read (or checked).
          return VideoClips(clips)
        window = window[stride:]
        skip = max(stride - t, 0)
  except video_io.VideoDecodeError as e:
    if config.on_decode_error != 'keep_truncated':
      raise
    truncated = e.reason
  finally:
    frames.close()
  padded = False
  if not clips and window and config.pad_short_videos:
    window += [window[-1]] * (t - len(window))
    clips.append(np.stack(window))
    padded = True
  return VideoClips(clips, padded=padded, truncated=truncated)


class VideoFolder(_common.LocalBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """Fixed-length clips of the videos in a user folder, labelled by folder."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}

  def __init__(self, *, config: VideoFolderConfig, **kwargs):
    if not isinstance(config, VideoFolderConfig):
      raise TypeError(
          'VideoFolder needs a VideoFolderConfig, e.g. '
          'VideoFolderConfig.for_folder(root, num_frames=16, height=64, '
          f'width=64); got {config!r}.')
    self._scan_cache: FolderScan | None = None
    self._report = _common.BuildReport('video_folder')
    super().__init__(config=config, **kwargs)

  def scan(self) -> FolderScan:
    """Lists the folder (cached); raises as `scan_video_folder`."""
    if self._scan_cache is None:
      cfg = self.builder_config
      self._scan_cache = scan_video_folder(
          cfg.root, cfg.extensions, cfg.split_fractions)
    return self._scan_cache

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    try:
      class_label = tfds.features.ClassLabel(names=self.scan().class_names)
    except (OSError, ValueError):
      # Reading an existing dataset without its source folder: the names are
      # restored from the dataset directory. Building checks the folder again.
      class_label = tfds.features.ClassLabel()
    t, h, w = cfg.num_frames, cfg.height, cfg.width
    return tfds.core.DatasetInfo(
        builder=self,
        description=f'Clips of the videos in {cfg.root}, labelled by folder.',
        features=tfds.features.FeaturesDict({
            'video': tfds.features.Tensor(
                shape=(t, h, w, 3), dtype=np.uint8, encoding='zlib'),
            'label': class_label,
            # Same id on every frame; kept so clips match moving_digits.
            'frame_labels': tfds.features.Tensor(shape=(t,), dtype=np.int32),
            'video_id': tfds.features.Text(),  # Path relative to root.
            'clip_index': tfds.features.Scalar(dtype=np.int32),
        }),
        supervised_keys=('video', 'label'),
        metadata=tfds.core.MetadataDict(),
    )

  def download_and_prepare(self, **kwargs):
    """Checks the folder, then builds; a no-op when the data exists.

    Raises:
      FileNotFoundError, NotADirectoryError, ValueError: the folder is
        missing or holds no videos; raised before anything is written.
      ValueError: the existing data was built from another folder or with
        other clip settings (pick another config name).
    """
    if self.data_path.exists():
      built_with = self.info.metadata.get('clip_settings')
      wanted = self.builder_config.clip_settings()
      if built_with is not None and built_with != wanted:
        raise ValueError(
            f'{self.data_path} holds video_folder data built with '
            f'{built_with}, not {wanted}; use another config name.')
    else:
      self.scan()
    return super().download_and_prepare(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # Local files only.
    cfg = self.builder_config
    self._report = _common.BuildReport('video_folder')
    return self._report.nonempty_splits(
        {split: self._generate_examples(split, items)
         for split, items in self.scan().splits.items()}, cfg.root)

  def _generate_examples(self, split: str, items: list[tuple[str, str]]):
    cfg = self.builder_config
    class_ids = {name: i for i, name in enumerate(self.scan().class_names)}
    num_clips = 0
    for rel_path, class_name in items:
      path = os.path.join(cfg.root, rel_path)
      try:
        result = video_clips(path, cfg)
      except video_io.VideoReadError as e:
        if cfg.on_decode_error == 'fail':
          raise video_io.VideoReadError(
              path, f"{e.reason} (on_decode_error='fail' stops the build; "
              "'skip' would skip the file)") from e
        self._report.skip(rel_path, e.reason)
        continue
      if not result.clips:
        self._report.skip(
            rel_path, f'shorter than one clip of {cfg.num_frames} frames '
            '(pad_short_videos=False)')
        continue
      self._report.read(rel_path, truncated=result.truncated,
                        padded=result.padded)
      label = class_ids[class_name]
      for clip_index, clip in enumerate(result.clips):
        num_clips += 1
        yield f'{rel_path}#{clip_index}', {
            'video': clip,
            'label': label,
            'frame_labels': np.full(cfg.num_frames, label, np.int32),
            'video_id': rel_path,
            'clip_index': clip_index,
        }
    logging.info('video_folder split %s: %d clips from %s.', split, num_clips,
                 cfg.root)

  def _download_and_prepare(self, dl_manager, download_config):
    super()._download_and_prepare(dl_manager, download_config)
    # Runs before TFDS writes the dataset info, so both are saved.
    self.info.metadata.update({
        'clip_settings': self.builder_config.clip_settings(),
        **self._report.metadata(),
    })
    self._report.log_and_describe(self.info, self.builder_config.root)
