"""Small bad (and real) video files for the reliability tests.

Everything here is made in the test with PyAV and PIL in well under a
second, except `opencv_clip`: real clips from Debian's opencv-doc package,
skipped with the install command when it is absent.
"""

import gzip
import hashlib
import os
import shutil

import av
import numpy as np
from PIL import Image
import pytest

from data_pipelines import video_io

OPENCV_DATA = '/usr/share/doc/opencv-doc/examples/data'
OPENCV_HTML = '/usr/share/doc/opencv-doc/opencv4/html'


def opencv_clip(name: str, tmp_path) -> str:
  """Path to a real clip of opencv-doc (`vtest.avi`, `cup.mp4`, ...).

  The gzipped ones (`box.mp4`, `cup.mp4`) are unpacked into `tmp_path`.
  """
  plain = os.path.join(OPENCV_DATA, name)
  if os.path.isfile(plain):
    return plain
  packed = os.path.join(OPENCV_HTML, name + '.gz')
  if os.path.isfile(packed):
    out = os.path.join(tmp_path, name)
    with gzip.open(packed, 'rb') as src, open(out, 'wb') as dst:
      shutil.copyfileobj(src, dst)
    return out
  pytest.skip(f'real clip {name} not found: it comes with Debian\'s '
              'opencv-doc (apt-get install -y opencv-doc)')


def moving_frames(t: int = 24, h: int = 32, w: int = 48,
                  seed: int = 0) -> np.ndarray:
  """`[T, H, W, 3] uint8`: a noisy gradient and a square moving right.

  The noise keeps every frame's packet large, so a cut lands in a packet.
  """
  rng = np.random.default_rng(seed)
  frames = np.zeros((t, h, w, 3), np.uint8)
  frames[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, None, :]
  frames[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[None, :, None]
  frames[..., 2] = rng.integers(60, 140, (t, h, w), dtype=np.uint8)
  for i in range(t):
    x = (2 * i) % max(w - 12, 1)
    frames[i, 8:20, x:x + 12] = 230
  return frames


def write_image_as_video(path, fmt: str = 'PNG') -> None:
  """A still image saved under a video suffix (`x.mp4`)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(moving_frames(1)[0]).save(path, format=fmt)


def write_faststart_mp4(path, frames: np.ndarray) -> None:
  """H.264 mp4 with its index (moov) at the front, so a cut file opens.

  Plain PyAV, so the fixture does not depend on the code under test.
  """
  with av.open(os.fspath(path), mode='w',
               options={'movflags': 'faststart'}) as container:
    stream = container.add_stream('libx264', rate=25)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = 'yuv420p'
    stream.options = {'crf': '18'}
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame,
                                                             format='rgb24')):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def packet_offsets(path) -> list[int]:
  """Byte offset of each video packet of `path`, in file order."""
  with av.open(os.fspath(path)) as container:
    return sorted(p.pos for p in container.demux(video=0)
                  if p.size and p.pos is not None and p.pos >= 0)


def cut_file(src, dst, num_bytes: int) -> None:
  with open(src, 'rb') as f:
    data = f.read(num_bytes)
  with open(dst, 'wb') as f:
    f.write(data)


def write_cut_mp4(path, num_frames: int = 250, keep: float = 0.3,
                  at_packet_boundary: bool = False, full_path=None) -> None:
  """A faststart mp4 of `num_frames` frames cut to `keep` of its bytes.

  `at_packet_boundary`: cut exactly where a packet starts, so no packet is
  partial and only the frame count shows the loss. `full_path`: keep the
  uncut file there (x264 output differs from one encoding to the next).
  """
  full = os.fspath(full_path or f'{path}.full.mp4')
  write_faststart_mp4(full, moving_frames(num_frames))
  size = os.path.getsize(full)
  cut_at = int(size * keep)
  if at_packet_boundary:
    cut_at = min(p for p in packet_offsets(full) if p >= cut_at)
  cut_file(full, path, cut_at)
  if full_path is None:
    os.remove(full)


def write_audio_only(path) -> None:
  """An mp4 (AAC-less: PCM in mov) holding sound and no video stream."""
  os.makedirs(os.path.dirname(os.fspath(path)) or '.', exist_ok=True)
  with av.open(os.fspath(path), mode='w', format='mov') as container:
    stream = container.add_stream('pcm_s16le', rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16),
                                       format='s16', layout='mono')
    frame.sample_rate = 8000
    for packet in list(stream.encode(frame)) + list(stream.encode()):
      container.mux(packet)


def write_size_change(path) -> None:
  """An MPEG-2 elementary stream whose frames go from 32x48 to 48x64.

  Raw elementary streams concatenate into one valid stream.
  """
  parts = []
  for i, (h, w) in enumerate(((32, 48), (48, 64))):
    part = f'{path}.{i}.m2v'
    video_io.write_video(part, moving_frames(10, h, w), codec='mpeg2video')
    with open(part, 'rb') as f:
      parts.append(f.read())
    os.remove(part)
  with open(path, 'wb') as f:
    f.write(b''.join(parts))


def snapshot(folder) -> dict[str, tuple[int, str]]:
  """(size, sha256) of every file under `folder`, to compare.

  Contents, not times: TFDS rewrites its `.config/metadata.json` (the
  default config name) unchanged on every build.
  """
  out = {}
  for dirpath, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(dirpath, name)
      if os.path.isfile(path):
        with open(path, 'rb') as f:
          digest = hashlib.sha256(f.read()).hexdigest()
        out[os.path.relpath(path, folder)] = (os.path.getsize(path), digest)
  return out


def write_good_videos(root, classes=('jump', 'walk'), per_class: int = 1,
                      num_frames: int = 12) -> list[str]:
  """`per_class` readable 32x32 mp4 files per class folder; their paths."""
  # pylint: disable-next=g-import-not-at-top
  from data_pipelines.generated import moving_digits as md
  config = md.MovingDigitsConfig(num_frames=num_frames, height=32, width=32)
  paths = []
  for c, name in enumerate(classes):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(per_class):
      path = os.path.join(root, name, f'{name}_{i}.mp4')
      video_io.write_video(path, md.generate_example(config, c, i)['video'],
                           crf=15)
      paths.append(path)
  return paths
