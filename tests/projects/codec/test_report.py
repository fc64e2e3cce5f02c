"""Tables, rate-distortion plots, comparison grids and mp4 output."""
import av
import numpy as np
from PIL import Image

from cvision.projects.codec import report

_ROWS = [
    {'codec': 'jpeg', 'setting': 'q=50', 'cr': 13.1, 'psnr': 28.6,
     'ssim': 0.883, 'mae': 0.0176},
    {'codec': 'jpeg', 'setting': 'q=5', 'cr': 16.8, 'psnr': 20.9,
     'ssim': 0.549, 'mae': 0.0669},
    report.row('vqvae', 'N=2 K=256', 96.0,
               {'psnr': 27.0, 'ssim': 0.85, 'mae': 0.02}),
]


def test_tables():
  markdown = report.format_table(_ROWS)
  lines = markdown.strip().splitlines()
  assert lines[0].startswith('| Codec | Setting | CR | PSNR')
  assert len(lines) == 2 + len(_ROWS)
  assert '| vqvae | N=2 K=256 | 96.0 | 27.00 | 85.0 | 0.0200 |' in markdown
  text = report.format_table(_ROWS, fmt='text')
  assert 'jpeg' in text and '88.3' in text and '|' not in text


def test_rate_distortion_plot_and_report(tmp_path):
  path = report.plot_rate_distortion(_ROWS, str(tmp_path / 'rd.png'))
  assert Image.open(path).size[0] > 100
  paths = report.write_report(str(tmp_path / 'out'), _ROWS)
  assert set(paths) == {'markdown', 'text', 'psnr', 'ssim'}


def test_comparison_grid_layout(tmp_path):
  original = np.zeros((2, 5, 8, 10, 3), np.uint8)
  recon = np.ones((2, 5, 8, 10, 3), np.float32)
  path = report.save_comparison_grid(str(tmp_path / 'grid.png'), original,
                                     recon, max_frames=3, gap=2)
  grid = np.asarray(Image.open(path))
  # 4 rows (orig, recon per video) of 8 px, 3 frames of 10 px, 2 px gaps.
  assert grid.shape == (4 * 8 + 3 * 2, 3 * 10 + 2 * 2, 3)
  assert grid[0, 0].tolist() == [0, 0, 0]  # Original row.
  assert grid[10, 0].tolist() == [255, 255, 255]  # Reconstruction row.


def test_save_video(tmp_path):
  video = np.random.default_rng(0).integers(0, 256, (4, 9, 12, 3), np.uint8)
  path = report.save_video(str(tmp_path / 'clip.mp4'), video)
  with av.open(path) as container:
    frames = [f.to_ndarray(format='rgb24') for f in container.decode(video=0)]
  assert len(frames) == 4 and frames[0].shape == (10, 12, 3)  # Even height.
