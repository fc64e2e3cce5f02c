"""Long videos are encoded chunk by chunk: memory does not grow with length."""
import tracemalloc

import numpy as np

from cvision.projects.codec import code_dataset
from data_pipelines.generated import moving_digits as md


def _encode(batch):
  """A stand-in encoder with the codec's shapes: 4x spatial, 2 codebooks."""
  return np.repeat(batch[:, :, ::4, ::4, :1], 2, axis=-1).astype(np.int32)


def _stream_peak_bytes(num_frames: int) -> tuple[int, int]:
  config = md.MovingDigitsConfig(num_frames=16, height=32, width=32)
  tracemalloc.start()
  chunks = (c['video'] for c in md.generate_long_video_chunks(
      config, seed=0, num_frames=num_frames, chunk_frames=16))
  frames = 0
  for codes in code_dataset.encode_stream(chunks, _encode):
    assert codes.shape[1:] == (8, 8, 2)
    frames += codes.shape[0]
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  return frames, peak


def test_peak_memory_is_flat_from_64_to_1024_frames():
  short_frames, short_peak = _stream_peak_bytes(64)
  long_frames, long_peak = _stream_peak_bytes(1024)
  assert (short_frames, long_frames) == (64, 1024)
  # 16x the frames (1024*32*32*3 = 3 MiB of pixels) in the same memory.
  assert long_peak < 1.5 * short_peak, (short_peak, long_peak)
