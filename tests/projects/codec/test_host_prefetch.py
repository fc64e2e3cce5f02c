"""The read-ahead producer: order, errors at their item, early close."""
import threading
import time

import pytest

from cvision.projects.codec import host_prefetch


def test_items_come_in_order_and_are_read_ahead():
  read = []

  def produce():
    for i in range(5):
      read.append(i)
      yield i

  stream = host_prefetch.prefetch(produce(), size=2)
  assert next(stream) == 0
  deadline = time.time() + 5
  while len(read) < 3 and time.time() < deadline:
    time.sleep(0.01)
  assert read[:3] == [0, 1, 2]  # Read ahead while the consumer works.
  assert list(stream) == [1, 2, 3, 4]


def test_an_error_comes_after_the_items_before_it():
  def produce():
    yield 'a'
    yield 'b'
    raise ValueError('video.mp4 breaks at frame 74')

  got = []
  with pytest.raises(ValueError, match='frame 74'):
    for item in host_prefetch.prefetch(produce()):
      got.append(item)
  assert got == ['a', 'b']


def test_closing_early_stops_the_producer():
  produced = []

  def produce():
    for i in range(10**6):
      produced.append(i)
      yield i

  stream = host_prefetch.prefetch(produce(), size=1)
  assert next(stream) == 0
  stream.close()
  count = len(produced)
  time.sleep(0.3)
  assert len(produced) <= count + 1
  assert not any(t.name == 'prefetch' and t.is_alive()
                 for t in threading.enumerate())
  with pytest.raises(ValueError, match='size must be >= 1'):
    next(host_prefetch.prefetch([], size=0))
