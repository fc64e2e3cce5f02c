"""The errors MPEG extraction raises; all are `MpegExtractionError`."""
from __future__ import annotations


class MpegExtractionError(ValueError):
  """A video could not be read as MPEG-4 part 2 GOPs; names the source."""

  def __init__(self, source: str, reason: str):
    self.source = source
    self.reason = reason
    super().__init__(f'Cannot extract MPEG-4 GOPs from {source}: {reason}')


class TooShortError(MpegExtractionError):
  """The video decodes but holds fewer GOPs than asked for."""


class ReencodeRefusedError(MpegExtractionError):
  """The source needs re-encoding and re-encoding was not allowed.

  Attributes:
    problem: why it needs re-encoding (e.g. 'it has B-frames').
  """

  def __init__(self, source: str, problem: str, gop_size: int):
    self.problem = problem
    super().__init__(
        source, f'{problem}; re-encode it (allow_reencode=True does, with '
        f'encoding.encode_mpeg4: GOP {gop_size}, no B-frames).')
