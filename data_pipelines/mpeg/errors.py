"""The one error every MPEG extraction failure raises."""
from __future__ import annotations


class MpegExtractionError(ValueError):
  """A video could not be read as MPEG-4 part 2 GOPs; names the source."""

  def __init__(self, source: str, reason: str):
    self.source = source
    self.reason = reason
    super().__init__(f'Cannot extract MPEG-4 GOPs from {source}: {reason}')
