"""Pieces shared by the local (download-free) TFDS builders."""

from collections.abc import Iterator, Mapping
import inspect
import itertools
import os
import tempfile
import time

from absl import logging
from etils import epath
import tensorflow_datasets as tfds
from tensorflow_datasets.core import constants


class LocalBuilderMixin:
  """Put first in the bases of a GeneratorBasedBuilder that downloads nothing.

  - `code_path`: TFDS 4.9.10 resolves the code path of a builder that lives in
    a package through `importlib_resources`, a package it does not install;
    the source file found by `inspect` is the same path without it.
  - `_download_and_prepare`: records `build_seconds` in `info.metadata`.
  - `download_and_prepare`: TFDS creates `<data_dir>/downloads` even when
    nothing is downloaded; a temporary download dir keeps `data_dir` to
    datasets only. When generation fails, TFDS deletes its `incomplete.*`
    directory; the parent folders it made (empty, or holding only its
    `.config`) are removed here too. A
    build killed outright leaves its `incomplete.*` directory behind: TFDS
    never reads it (the dataset is only the renamed, finished directory), so
    the rebuild starts afresh, and names the leftover.
  """

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path | None:
    try:
      return epath.Path(inspect.getfile(cls))
    except (TypeError, OSError):  # Defined interactively.
      return None

  def _download_and_prepare(self, dl_manager, download_config):
    # The one-off cost of the dataset, kept in its metadata where it has one
    # (TFDS writes the info after this returns); the three-route table
    # reads it.
    start = time.perf_counter()
    result = super()._download_and_prepare(dl_manager, download_config)
    if self.info.metadata is not None:
      self.info.metadata['build_seconds'] = time.perf_counter() - start
    return result

  def download_and_prepare(self, *, download_dir=None, **kwargs):
    """As `tfds.core.DatasetBuilder.download_and_prepare`."""
    new_dirs = [p for p in (self.data_dir_root, self.data_path.parent.parent,
                            self.data_path.parent) if not p.exists()]
    if not self.data_path.exists():
      self._warn_about_interrupted_builds()
    try:
      if download_dir is not None:
        return super().download_and_prepare(download_dir=download_dir,
                                            **kwargs)
      with tempfile.TemporaryDirectory() as tmp:
        return super().download_and_prepare(download_dir=tmp, **kwargs)
    except BaseException:
      for path in reversed(new_dirs):  # Deepest first.
        # TFDS writes `.config/metadata.json` (the default config name)
        # before building; in a folder this call made, it is ours to remove.
        config_dir = path / '.config'
        if config_dir.exists() and not any(
            p for p in path.iterdir() if p.name != '.config'):
          config_dir.rmtree()
        if path.exists() and not any(path.iterdir()):
          path.rmdir()
      raise

  def _warn_about_interrupted_builds(self) -> None:
    parent = self.data_path.parent
    if not parent.exists():
      return
    # Not deleted: another process may be building this dataset right now.
    leftovers = sorted(os.fspath(p) for p in parent.glob(
        f'{constants.INCOMPLETE_PREFIX}*_{self.data_path.name}'))
    if leftovers:
      logging.warning(
          '%s: %d unfinished build(s) found (%s), left by an interrupted '
          'build; they are never read. Rebuilding from scratch; delete them '
          'once no other build of this dataset is running.',
          self.name, len(leftovers), ', '.join(leftovers))


class BuildReport:
  """What a build from a folder of videos read, skipped, truncated, padded.

  One per build; both folder builders (`video_folder`, `mpeg_gops`) use it,
  so they count, log and describe bad input the same way. Paths are relative
  to the folder.
  """

  def __init__(self, builder_name: str):
    self.builder_name = builder_name
    self.num_read = 0
    self.skipped: list[dict[str, str]] = []
    self.truncated: list[dict[str, str]] = []
    self.padded: list[str] = []
    self.splits_left_out: dict[str, int] = {}

  def skip(self, rel_path: str, reason: str) -> None:
    logging.warning('%s: skipping video %s: %s', self.builder_name, rel_path,
                    reason)
    self.skipped.append({'path': rel_path, 'reason': reason})

  def read(self, rel_path: str, *, truncated: str = '',
           padded: bool = False) -> None:
    self.num_read += 1
    if truncated:
      logging.warning('%s: keeping the frames before a decode error of %s: '
                      '%s', self.builder_name, rel_path, truncated)
      self.truncated.append({'path': rel_path, 'reason': truncated})
    if padded:
      self.padded.append(rel_path)

  def nonempty_splits(self, generators: Mapping[str, Iterator],
                      root: str) -> dict[str, Iterator]:
    """The splits that yield an example; the others are left out, counted.

    Each generator is advanced to its first example here, before TFDS
    declares the splits (it cannot write an empty split).

    Raises:
      ValueError: no split yields an example (nothing readable in `root`).
    """
    kept = {}
    for split, examples in generators.items():
      skipped_before = len(self.skipped)
      first = next(examples, None)
      if first is None:
        self.splits_left_out[split] = len(self.skipped) - skipped_before
        logging.warning(
            '%s: split %s is left out: all its %d files were skipped (see '
            'the warnings above).', self.builder_name, split,
            self.splits_left_out[split])
      else:
        kept[split] = itertools.chain([first], examples)
    if not kept:
      reasons = '; '.join(f"{s['path']}: {s['reason']}"
                          for s in self.skipped[:3])
      raise ValueError(
          f'No readable video in {root!r}: all {len(self.skipped)} files '
          f'were skipped ({reasons}{"; ..." if len(self.skipped) > 3 else ""}'
          ').')
    return kept

  def metadata(self) -> dict[str, object]:
    """JSON-serialisable counts for `info.metadata`."""
    by_path = lambda items: sorted(items, key=lambda s: s['path'])
    return {
        'num_videos_read': self.num_read,
        'num_videos_skipped': len(self.skipped),
        'skipped_files': by_path(self.skipped),
        'num_videos_truncated': len(self.truncated),
        'truncated_files': by_path(self.truncated),
        'num_videos_padded': len(self.padded),
        'padded_files': sorted(self.padded),
        'splits_left_out': dict(sorted(self.splits_left_out.items())),
    }

  def summary(self) -> str:
    """One line: read, skipped, truncated, padded, splits left out."""
    text = (f'{self.num_read} videos read, {len(self.skipped)} skipped, '
            f'{len(self.truncated)} kept truncated, {len(self.padded)} '
            'padded')
    if self.splits_left_out:
      text += f', splits left out: {sorted(self.splits_left_out)}'
    return text

  def log_and_describe(self, info: tfds.core.DatasetInfo, root: str) -> None:
    """Logs the summary and appends it to the dataset's description."""
    summary = self.summary()
    if self.skipped or self.truncated or self.splits_left_out:
      logging.warning('%s %s: %s: %s', self.builder_name, root, summary,
                      ', '.join(f"{s['path']} ({s['reason']})"
                                for s in self.skipped + self.truncated))
    else:
      logging.info('%s %s: %s.', self.builder_name, root, summary)
    # The description is saved with the dataset info, which TFDS writes
    # after `_download_and_prepare`.
    info.as_proto.description = (
        f'{info.description.rstrip()} Build: {summary} (see the metadata '
        'skipped_files, truncated_files, padded_files).')


def report_lines(metadata: Mapping[str, object]) -> list[str]:
  """The bad-input counts a folder build saved, as lines for a terminal.

  Empty for datasets without them (generated ones); older folder datasets
  lack the truncated / padded / left-out entries.
  """
  if 'num_videos_skipped' not in metadata:
    return []
  paths = lambda key: [s['path'] for s in metadata.get(key, [])]
  read = metadata.get('num_videos_read')
  lines = [(f'{read} videos read, ' if read is not None else '')
           + f"{metadata['num_videos_skipped']} skipped: "
           f"{paths('skipped_files')}"]
  if metadata.get('num_videos_truncated'):
    lines.append(f"{metadata['num_videos_truncated']} kept truncated: "
                 f"{paths('truncated_files')}")
  if metadata.get('num_videos_padded'):
    lines.append(f"{metadata['num_videos_padded']} shorter than one clip, "
                 f"padded: {metadata['padded_files']}")
  if metadata.get('splits_left_out'):
    lines.append('splits left out (every file skipped): '
                 f"{sorted(metadata['splits_left_out'])}")
  return lines
