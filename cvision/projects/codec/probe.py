"""What do the codes say about where things move? Linear probes per code cell.

A downstream network on codes has to find the moving object in them. These
probes ask how directly the codes show it: for every code cell, is any pixel
of its patch moving? Targets come from the pixels: on videos with a static
background (the generated moving digits), a pixel moves where it differs
from its temporal median. Each probe is a logistic regression on one kind of
feature of the codes' embeddings, fitted on the cells of half the videos and
scored (balanced accuracy, 0.5 = chance) on the other half:

| feature      | per cell                                                 |
|--------------|----------------------------------------------------------|
| cell         | its embedding (the N codebooks concatenated)             |
| neighbourhood| the embeddings of its 3x3x3 neighbourhood in (t, y, x)   |
| change       | abs difference of its embedding from t-1 and from t+1    |

A 'cell' or 'neighbourhood' score near chance with a high 'change' score
means a code says little about what is at its place, only that something
there changed: the network must learn to track changes, not to read content.
sklearn's LogisticRegression: a probe is a well-known estimator, nothing to
write here.

`clip_correlations` and `fit_and_score` probe a whole clip instead: does a
handful of global statistics (each cell's similarity to its neighbours one
step later, averaged over the clip) tell the clip's label
(`experiments/probe_code_motion.py`)?
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

FEATURES = ('cell', 'neighbourhood', 'change')


def moving_cells(videos: np.ndarray, cell: int, frames_per_cell: int = 1,
                 threshold: float = 0.08) -> np.ndarray:
  """Which code cells hold moving pixels: `[B, T, H, W, 3]` -> `[B, t, h, w]`.

  Args:
    videos: uint8 or [0, 1] float frames over a static background.
    cell: pixels per code cell side (the codec's spatial factor).
    frames_per_cell: frames per code time step (1: time not compressed).
    threshold: mean absolute difference from the temporal median, in [0, 1]
      intensity, averaged over the cell, above which a cell is moving.
  """
  x = np.asarray(videos, np.float32)
  if np.issubdtype(np.asarray(videos).dtype, np.integer):
    x = x / 255.0
  b, t, h, w, _ = x.shape
  if h % cell or w % cell or t % frames_per_cell:
    raise ValueError(
        f'Clips of {t}x{h}x{w} do not split into code cells of '
        f'{frames_per_cell}x{cell}x{cell}.')
  deviation = np.abs(x - np.median(x, axis=1, keepdims=True)).mean(-1)
  per_cell = deviation.reshape(b, t // frames_per_cell, frames_per_cell,
                               h // cell, cell, w // cell, cell)
  return per_cell.mean(axis=(2, 4, 6)) > threshold


def cell_features(embedded: np.ndarray) -> dict[str, np.ndarray]:
  """`[B, T, h, w, C]` embedded codes -> each probe's `[B*T*h*w, F]` rows."""
  e = np.asarray(embedded, np.float32)
  b, t, h, w, c = e.shape
  # Edge padding: border cells see copies of themselves, never zeros that
  # no code embeds to.
  pad = np.pad(e, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0)), mode='edge')

  def shifted(dt, dy, dx):
    return pad[:, 1 + dt:1 + dt + t, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

  offsets = [(dt, dy, dx) for dt in (-1, 0, 1) for dy in (-1, 0, 1)
             for dx in (-1, 0, 1)]
  features = {
      'cell': e,
      'neighbourhood': np.concatenate([shifted(*o) for o in offsets], -1),
      'change': np.concatenate([np.abs(e - shifted(-1, 0, 0)),
                                np.abs(e - shifted(1, 0, 0))], -1),
  }
  return {k: v.reshape(b * t * h * w, -1) for k, v in features.items()}


def balanced_accuracy(targets: np.ndarray, predictions: np.ndarray) -> float:
  """Mean of the accuracies on positives and on negatives."""
  targets, predictions = np.asarray(targets, bool), np.asarray(predictions,
                                                               bool)
  if targets.all() or not targets.any():
    raise ValueError('Balanced accuracy needs both classes among targets.')
  return 0.5 * (float(np.mean(predictions[targets]))
                + float(np.mean(~predictions[~targets])))


def probe(embedded: np.ndarray, moving: np.ndarray, *,
          features: tuple[str, ...] = FEATURES,
          max_train_cells: int = 200_000, seed: int = 0
          ) -> Mapping[str, float]:
  """Balanced accuracy of each linear probe, trained and tested on halves.

  Args:
    embedded: `[B, T, h, w, C]` code embeddings of B >= 2 videos.
    moving: `[B, T, h, w]` bool targets (`moving_cells`).
    features: which of `FEATURES` to probe.
    max_train_cells: a random subset of the training cells, for speed.
    seed: of that subset.

  Returns:
    `{feature: balanced accuracy on the held-out videos}` for `features`.
  """
  # Lazy: only this diagnostic needs sklearn.
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  embedded, moving = np.asarray(embedded), np.asarray(moving, bool)
  if embedded.shape[:-1] != moving.shape:
    raise ValueError(f'Codes of grid {embedded.shape[:-1]} and targets of '
                     f'{moving.shape} differ.')
  if embedded.shape[0] < 2:
    raise ValueError('The probe needs at least 2 videos: it trains on half '
                     'of them and tests on the rest.')
  videos = embedded.shape[0]
  train_videos = videos // 2
  cells_per_video = int(np.prod(moving.shape[1:]))
  split = train_videos * cells_per_video
  targets = moving.reshape(-1)
  rng = np.random.default_rng(seed)
  train = rng.permutation(split)[:max_train_cells]
  results = {}
  all_features = cell_features(embedded)
  for name in features:
    rows = all_features[name]
    # Mean / std from the training cells: lbfgs converges on standardised
    # features.
    mean, std = rows[train].mean(0), rows[train].std(0) + 1e-6
    rows = (rows - mean) / std
    model = LogisticRegression(max_iter=300, class_weight='balanced')
    model.fit(rows[train], targets[train])
    results[name] = balanced_accuracy(targets[split:],
                                      model.predict(rows[split:]))
  return results


def pixel_cells(videos: np.ndarray, cell: int,
                frames_per_cell: int = 1) -> np.ndarray:
  """The pixels of each code cell as its features, the probes' reference.

  `[B, T, H, W, 3]` -> `[B, t, h, w, frames_per_cell * cell * cell * 3]`,
  in [0, 1].
  """
  x = np.asarray(videos, np.float32)
  if np.issubdtype(np.asarray(videos).dtype, np.integer):
    x = x / 255.0
  b, t, h, w, c = x.shape
  ft = frames_per_cell
  x = x.reshape(b, t // ft, ft, h // cell, cell, w // cell, cell, c)
  return x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(
      b, t // ft, h // cell, w // cell, -1)


def format_table(codes: Mapping[str, float], pixels: Mapping[str, float],
                 moving_fraction: float, cells: int) -> str:
  """Markdown table: each probe on the codes and on the pixels they replace.

  `pixels` may hold a subset of the features; missing ones print '-'.
  """
  lines = ['| feature | codes (%) | pixels of the cell (%) |',
           '|---|---:|---:|']
  for name in FEATURES:
    reference = f'{100 * pixels[name]:.1f}' if name in pixels else '-'
    lines.append(f'| {name} | {100 * codes[name]:.1f} | {reference} |')
  lines.append('')
  lines.append(f'Balanced accuracy on {cells} held-out cells, '
               f'{100 * moving_fraction:.1f}% of them moving; chance is 50%.')
  return '\n'.join(lines)


def clip_correlations(codebooks: np.ndarray, codes: np.ndarray,
                      clip_frames: int, radius: int) -> np.ndarray:
  """`[B, T, H, W, N]` codes -> `[B, (2r+1)^2]` mean correlations.

  The middle `clip_frames` steps of each video, embedded in `codebooks`
  (`[N, K, D]`); `code_embedding.temporal_correlation` per cell, averaged
  over the clip. The clip's last step, which has no successor inside it, is
  left out of the mean.
  """
  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp
  from cvision.models import code_embedding
  length = codes.shape[1]
  if clip_frames < 2 or clip_frames > length:
    raise ValueError(f'clip_frames={clip_frames}: the codes have {length} '
                     'time steps, and a clip needs at least 2.')
  start = (length - clip_frames) // 2
  clip = jnp.asarray(codes[:, start:start + clip_frames])
  embedded = code_embedding.embed_codes(codebooks, clip)
  corr = code_embedding.temporal_correlation(embedded, radius)[:, :-1]
  return np.asarray(jnp.mean(corr, axis=(1, 2, 3)))


def fit_and_score(fit_x: np.ndarray, fit_y: np.ndarray, score_x: np.ndarray,
                  score_y: np.ndarray) -> float:
  """Standardised logistic regression fit on one set; accuracy on the other."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  mean, std = fit_x.mean(0), fit_x.std(0) + 1e-6
  model = LogisticRegression(max_iter=5000, C=10.0)
  model.fit((fit_x - mean) / std, fit_y)
  return float(model.score((score_x - mean) / std, score_y))
