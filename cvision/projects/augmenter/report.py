"""The augmenter's quality report: a markdown table and PNG grids."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw

# Report column -> (per-example metric, header).
COLUMNS = (
    ('ssim', 'SSIM learned'),
    ('ssim_plain', 'SSIM plain'),
    ('ssim_decode_then_augment', 'SSIM decode+pixel aug.'),
    ('ssim_code_space', 'SSIM code-grid op'),
    ('psnr', 'PSNR learned'),
    ('psnr_plain', 'PSNR plain'),
    # Distance to the encoder's latents of A(X; p): what a model on codes
    # knows (cvision.projects.augmenter.task).
    ('code_l1', 'code L1 learned'),
    ('code_l1_plain', 'code L1 plain'),
    ('code_l1_code_space', 'code L1 code-grid op'),
    # The same for the input a `codes,motion` S3D reads: each cell's cosine
    # similarity with its neighbours one frame later.
    ('motion_input_l1', 'motion-input L1 learned'),
    ('motion_input_l1_plain', 'motion-input L1 plain'),
    ('motion_input_l1_code_space', 'motion-input L1 code-grid op'),
    # Invented motion: frame change of a still clip's learned augmentation
    # (0 is right), beside the target's own frame change for scale.
    ('still_motion', 'still-clip motion'),
    ('target_motion', 'target motion'),
)


def format_table(rows: Sequence[Mapping]) -> str:
  """Rows of `{'family', 'what', <metric>, <metric>_std, ...}` as markdown.

  A metric a row lacks (the code-grid op of brightness) shows as '-'.
  """
  lines = ['| family | parameters | ' + ' | '.join(h for _, h in COLUMNS)
           + ' |', '|---|---|' + '---:|' * len(COLUMNS)]
  for r in rows:
    cells = []
    for key, _ in COLUMNS:
      if key not in r:
        cells.append('-')
      elif key.startswith('psnr'):
        cells.append(f'{r[key]:.2f}')
      elif key.endswith('motion'):
        cells.append(f'{r[key]:.4f}')
      else:
        cells.append(f'{r[key]:.3f} ± {r[key + "_std"]:.3f}')
    lines.append(f'| {r["family"]} | {r["what"]} | ' + ' | '.join(cells)
                 + ' |')
  return '\n'.join(lines)


def _as_uint8(video) -> np.ndarray:
  video = np.asarray(video)
  if video.dtype != np.uint8:
    video = np.round(np.clip(video, 0.0, 1.0) * 255).astype(np.uint8)
  return video


def save_rows_grid(path: str, rows: Sequence[tuple[str, np.ndarray]],
                   max_frames: int = 8, max_videos: int = 4,
                   gap: int = 2, label_width: int = 90) -> str:
  """Writes a PNG: for each video, one row of frames per entry of `rows`.

  Args:
    path: the PNG to write.
    rows: `(name, [B, T, H, W, 3])` pairs, uint8 or float in [0, 1], all of
      one shape; shown in this order for video 0, then video 1, ...
    max_frames: frames per row, evenly spaced over T.
    max_videos: videos shown.
    gap: white pixels between frames, and twice that between videos.
    label_width: pixels left of the frames for the row names (0: none).

  Returns:
    `path`.
  """
  videos = [_as_uint8(v)[:max_videos] for _, v in rows]
  shapes = {v.shape for v in videos}
  if len(shapes) != 1:
    named = [(name, v.shape) for (name, _), v in zip(rows, videos)]
    raise ValueError(f'rows differ in shape: {named}.')
  n, t, h, w, _ = videos[0].shape
  frames = np.unique(np.linspace(0, t - 1, min(t, max_frames)).astype(int))
  height = n * len(rows) * (h + gap) + (n - 1) * gap - gap
  canvas = np.full((height, label_width + len(frames) * (w + gap) - gap, 3),
                   255, np.uint8)
  tops = []
  for i in range(n):
    for r, video in enumerate(videos):
      y = (i * len(rows) + r) * (h + gap) + i * gap
      tops.append((y, rows[r][0]))
      for c, f in enumerate(frames):
        x = label_width + c * (w + gap)
        canvas[y:y + h, x:x + w] = video[i, f]
  image = Image.fromarray(canvas)
  if label_width:
    draw = ImageDraw.Draw(image)
    for y, name in tops:
      draw.text((2, y + h // 2 - 5), name, fill=(0, 0, 0))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  image.save(path)
  return path
