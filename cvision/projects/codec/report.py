"""Reports of codec quality: Table-1-style tables, RD plots, frame grids, mp4s.

Rows are dicts {'codec', 'setting', 'cr', 'psnr', 'ssim', 'mae'} as yielded by
`cvision.projects.codec.baselines.sweep` (ssim in [0, 1], mae in [0, 1] units); a
neural codec row is built the same way (see `row`).
"""
from __future__ import annotations

import collections
import fractions
import os
from typing import Iterable, Mapping, Optional, Sequence

# A Figure, not pyplot: it draws to files on machines with no display and
# leaves the backend of whoever imports this (a notebook's inline one) alone.
from matplotlib import figure
import numpy as np
from PIL import Image  # pylint: disable=g-import-not-at-top


def row(codec: str, setting: str, cr: float,
        metrics: Mapping[str, float]) -> dict:
  """A table row from a metrics dict with 'psnr', 'ssim', 'mae'."""
  return {'codec': codec, 'setting': setting, 'cr': float(cr),
          **{k: float(metrics[k]) for k in ('psnr', 'ssim', 'mae')}}


_COLUMNS = ('Codec', 'Setting', 'CR', 'PSNR (dB) ↑', 'SSIM×100 ↑', 'MAE ↓')


def _cells(r: Mapping) -> list[str]:
  # SSIM in percent and MAE in [0, 1] units, as in the paper's Table 1.
  return [str(r['codec']), str(r.get('setting', '')), f"{r['cr']:.1f}",
          f"{r['psnr']:.2f}", f"{100 * r['ssim']:.1f}", f"{r['mae']:.4f}"]


def format_table(rows: Iterable[Mapping], fmt: str = 'markdown') -> str:
  """Formats rows as a Table-1-style table, sorted by codec then CR.

  Args:
    rows: dicts with 'codec', 'setting', 'cr', 'psnr', 'ssim', 'mae'.
    fmt: 'markdown' or 'text' (aligned columns).

  Returns:
    The table as a string.
  """
  rows = sorted(rows, key=lambda r: (str(r['codec']), r['cr']))
  cells = [_cells(r) for r in rows]
  if fmt == 'markdown':
    lines = ['| ' + ' | '.join(_COLUMNS) + ' |',
             '|' + '|'.join(['---'] * 2 + ['---:'] * 4) + '|']
    lines += ['| ' + ' | '.join(c) + ' |' for c in cells]
    return '\n'.join(lines) + '\n'
  if fmt == 'text':
    widths = [max(len(x) for x in col) for col in zip(_COLUMNS, *cells)]
    fmt_line = lambda c: '  '.join(  # pylint: disable=g-long-lambda
        x.ljust(w) if i < 2 else x.rjust(w)
        for i, (x, w) in enumerate(zip(c, widths)))
    return '\n'.join([fmt_line(_COLUMNS)] + [fmt_line(c) for c in cells]) + '\n'
  raise ValueError(f"fmt must be 'markdown' or 'text', got {fmt!r}.")


def plot_rate_distortion(rows: Iterable[Mapping], path: str,
                         metric: str = 'psnr',
                         title: Optional[str] = None) -> str:
  """Writes `metric` against CR (log x), one curve per codec, as a PNG.

  Returns:
    `path`.
  """
  if metric not in ('psnr', 'ssim', 'mae'):
    raise ValueError(f'metric must be psnr, ssim or mae, got {metric!r}.')
  curves = collections.defaultdict(list)
  for r in rows:
    curves[str(r['codec'])].append((r['cr'], r[metric]))
  fig = figure.Figure(figsize=(6, 4), dpi=120)
  ax = fig.subplots()
  for name, points in sorted(curves.items()):
    points.sort()
    ax.plot(*zip(*points), marker='o', label=name)
  ax.set_xscale('log')
  ax.set_xlabel('compression rate (raw bytes / encoded bytes, log)')
  ax.set_ylabel({'psnr': 'PSNR (dB)', 'ssim': 'SSIM', 'mae': 'MAE'}[metric])
  ax.set_title(title or f'{metric.upper()} vs compression rate')
  ax.grid(True, which='both', alpha=0.3)
  ax.legend()
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  return path


def _as_uint8(video) -> np.ndarray:
  video = np.asarray(video)
  if video.dtype != np.uint8:
    video = np.round(np.clip(video, 0.0, 1.0) * 255).astype(np.uint8)
  return video


def _as_batch(video) -> np.ndarray:
  video = _as_uint8(video)
  if video.ndim == 4:
    video = video[None]
  if video.ndim != 5 or video.shape[-1] != 3:
    raise ValueError(f'expected [T, H, W, 3] or [B, T, H, W, 3], got '
                     f'{video.shape}.')
  return video


def save_comparison_grid(path: str, original, reconstruction,
                         max_frames: int = 8, max_videos: int = 4,
                         gap: int = 2) -> str:
  """Writes a PNG: per video, a row of original frames above a row of its
  reconstruction.

  Args:
    path: PNG file to write.
    original: `[T, H, W, 3]` or `[B, T, H, W, 3]`, uint8 or float in [0, 1].
    reconstruction: same shape as `original`.
    max_frames: frames shown per row (evenly spaced over T).
    max_videos: videos shown.
    gap: white pixels between frames and rows.

  Returns:
    `path`.
  """
  a, b = _as_batch(original), _as_batch(reconstruction)
  if a.shape != b.shape:
    raise ValueError(f'original {a.shape} and reconstruction {b.shape} '
                     'differ in shape.')
  a, b = a[:max_videos], b[:max_videos]
  n, t, h, w, _ = a.shape
  frames = np.unique(np.linspace(0, t - 1, min(t, max_frames)).astype(int))
  rows = [v[i] for i in range(n) for v in (a, b)]  # orig, recon, orig, ...
  cols = len(frames)
  canvas = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3),
                   255, np.uint8)
  for r, video in enumerate(rows):
    for c, f in enumerate(frames):
      y, x = r * (h + gap), c * (w + gap)
      canvas[y:y + h, x:x + w] = video[f]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(canvas).save(path)
  return path


def save_video(path: str, video, fps: float = 8) -> str:
  """Writes `[T, H, W, 3]` (uint8 or float in [0, 1]) as an H.264 mp4.

  Uses `data_pipelines.video_io.write_video` when it is available, else PyAV
  directly. Odd sizes are padded by edge replication (yuv420p needs even).
  """
  video = _as_uint8(video)
  if video.ndim != 4:
    raise ValueError(f'expected [T, H, W, 3], got {video.shape}.')
  video = np.pad(video, [(0, 0), (0, video.shape[1] % 2),
                         (0, video.shape[2] % 2), (0, 0)], mode='edge')
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  try:
    from data_pipelines import video_io  # pylint: disable=g-import-not-at-top
    write = getattr(video_io, 'write_video', None)
  except ImportError:
    write = None
  if write is not None:
    write(path, video, fps=fps)
    return path
  import av  # pylint: disable=g-import-not-at-top
  with av.open(path, mode='w') as container:
    stream = container.add_stream(
        'libx264', rate=fractions.Fraction(fps).limit_denominator(1000))
    stream.width, stream.height = video.shape[2], video.shape[1]
    stream.pix_fmt = 'yuv420p'
    for frame in video:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(frame,
                                                             format='rgb24')))
    container.mux(stream.encode(None))
  return path


def write_report(directory: str, rows: Sequence[Mapping],
                 name: str = 'codecs') -> dict[str, str]:
  """Writes `<name>.md`, `<name>.txt` and `<name>_{psnr,ssim}.png`.

  Returns:
    The written paths by kind.
  """
  os.makedirs(directory, exist_ok=True)
  paths = {}
  for fmt, ext in (('markdown', 'md'), ('text', 'txt')):
    paths[fmt] = os.path.join(directory, f'{name}.{ext}')
    with open(paths[fmt], 'w') as f:
      f.write(format_table(rows, fmt))
  for metric in ('psnr', 'ssim'):
    paths[metric] = plot_rate_distortion(
        rows, os.path.join(directory, f'{name}_{metric}.png'), metric)
  return paths
