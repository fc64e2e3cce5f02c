"""Pieces shared by the local (download-free) TFDS builders."""

import inspect
import tempfile

from etils import epath
import tensorflow_datasets as tfds


class LocalBuilderMixin:
  """Put first in the bases of a GeneratorBasedBuilder that downloads nothing.

  - `code_path`: TFDS 4.9.10 resolves the code path of a builder that lives in
    a package through `importlib_resources`, a package it does not install;
    the source file found by `inspect` is the same path without it.
  - `download_and_prepare`: TFDS creates `<data_dir>/downloads` even when
    nothing is downloaded; a temporary download dir keeps `data_dir` to
    datasets only. When generation fails, TFDS deletes its `incomplete.*`
    directory; the empty parent folders it made are removed here too.
  """

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path | None:
    try:
      return epath.Path(inspect.getfile(cls))
    except (TypeError, OSError):  # Defined interactively.
      return None

  def download_and_prepare(self, *, download_dir=None, **kwargs):
    """As `tfds.core.DatasetBuilder.download_and_prepare`."""
    new_dirs = [p for p in (self.data_dir_root, self.data_path.parent.parent,
                            self.data_path.parent) if not p.exists()]
    try:
      if download_dir is not None:
        return super().download_and_prepare(download_dir=download_dir,
                                            **kwargs)
      with tempfile.TemporaryDirectory() as tmp:
        return super().download_and_prepare(download_dir=tmp, **kwargs)
    except BaseException:
      for path in reversed(new_dirs):  # Deepest first.
        if path.exists() and not any(path.iterdir()):
          path.rmdir()
      raise
