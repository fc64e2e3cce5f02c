"""A producer thread that reads ahead while the device encodes.

Encoding is read (PyAV decode, TFDS records) then encode (the codec on the
device). Run one after the other, the device idles while the host reads
and the host idles while the device encodes. `prefetch` moves the reading
into a thread, a bounded number of items ahead.

Why not grain's thread prefetch: it wraps grain datasets, and what is read
here is a plain generator (a video's chunks) or a loop over a shard's
indices; a queue and a thread are all that is needed. PyAV and the record
readers release the GIL while they decode.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar('T')
_DONE = object()


class _Failure:

  def __init__(self, error: BaseException):
    self.error = error


def prefetch(items: Iterable[T], size: int = 2) -> Iterator[T]:
  """Yields `items` in order, produced up to `size` ahead in a thread.

  An exception in the producer is raised here, at the item where it
  happened, after every item before it (a video that breaks part-way still
  gives its frames before the break first). Closing the iterator early stops
  the producer at its next item.
  """
  if size < 1:
    raise ValueError(f'prefetch size must be >= 1, got {size}.')
  buffer: queue.Queue = queue.Queue(maxsize=size)
  stop = threading.Event()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        buffer.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def produce():
    try:
      for item in items:
        if not put(item):
          return
    except BaseException as e:  # pylint: disable=broad-except
      put(_Failure(e))
      return
    put(_DONE)

  thread = threading.Thread(target=produce, daemon=True, name='prefetch')
  thread.start()
  try:
    while True:
      item = buffer.get()
      if item is _DONE:
        return
      if isinstance(item, _Failure):
        raise item.error
      yield item
  finally:
    stop.set()
    thread.join(timeout=5)
