"""Where each training rule ends up on `count_rotations`, at its optimum.

A clip of a `count_rotations` video sees one segment, so all a clip-local
head can use is whether its segment rotates: two clip types, X (rotating)
and O (translating), each segment X with probability 1/2, and the label is
the number of X among the 4 (binomial 1:4:6:4:1). A head's whole behaviour
is then a table of logits, one row per clip type. This fits that table with
the project's Eq. 1 (`video_level_loss`) and scores it as the CM task
evaluates: softmax scores averaged over one test clip per segment.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cvision.projects.collab_memory import task as task_lib
from data_pipelines.generated import moving_digits as md

SEGMENTS = md.COUNT_ROTATIONS.segments_per_video
COUNTS = len(md.COUNT_ROTATIONS.label_names)


def _videos():
  """Every pattern of clip types (0 = X, 1 = O), its label and probability."""
  patterns = np.array(list(itertools.product((0, 1), repeat=SEGMENTS)))
  labels = np.sum(patterns == 0, axis=1)
  return patterns.T, labels, np.full(len(labels), 0.5**SEGMENTS)  # [N, V].


def _fit(num_clips, clip_loss_weight=1.0, steps=4000):
  types, labels, weights = _videos()
  types, labels = jnp.asarray(types), jnp.asarray(labels)
  if num_clips == 1:  # Single-clip training: every clip on its own.
    types, labels = types.reshape(1, -1), jnp.tile(labels, SEGMENTS)
    weights = np.tile(weights, SEGMENTS) / SEGMENTS

  def loss(table):
    # The per-video loss, weighted by each pattern's probability.
    per_video = jax.vmap(
        lambda t, y: task_lib.video_level_loss(
            table[t][:, None], y[None], clip_loss_weight)[0],
        in_axes=(1, 0))(types, labels)
    return jnp.sum(jnp.asarray(weights) * per_video)

  optimizer = optax.adam(0.05)

  @jax.jit
  def step(table, state):
    updates, state = optimizer.update(jax.grad(loss)(table), state)
    return optax.apply_updates(table, updates), state

  table = 0.01 * jax.random.normal(jax.random.key(0), (2, COUNTS))
  state = optimizer.init(table)
  for _ in range(steps):
    table, state = step(table, state)
  return table


def _softmax_vote_accuracy(table):
  types, labels, weights = _videos()
  scores = jnp.mean(jax.nn.softmax(table[types], axis=-1), axis=0)
  return float(np.sum(weights * (np.argmax(scores, -1) == labels)))


def test_single_clip_optimum_always_says_two():
  table = _fit(num_clips=1)
  # The calibrated answer: P(count | X) = C(3, k-1) / 8, P(count | O) =
  # C(3, k) / 8, so the average always peaks at 2.
  np.testing.assert_allclose(jax.nn.softmax(table[0]),
                             [0, 1 / 8, 3 / 8, 3 / 8, 1 / 8], atol=2e-3)
  assert _softmax_vote_accuracy(table) == 6 / 16


def test_multi_clip_optimum_counts_one_to_three():
  # The clip-averaged term of Eq. 1 moves the votes off the calibrated
  # ones: now counts 1, 2 and 3 come out right, 0 and 4 do not.
  table = _fit(num_clips=SEGMENTS)
  assert _softmax_vote_accuracy(table) == 14 / 16
  # Without the clip terms the votes are sharp, and the softmax average
  # fails where the logit average would not.
  assert _softmax_vote_accuracy(_fit(SEGMENTS, clip_loss_weight=0.0)) < 0.5
