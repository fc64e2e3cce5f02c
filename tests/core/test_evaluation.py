"""The one evaluation loop: exact reduction, multi-clip logits, clip starts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.core import evaluation
from cvision.core import input_pipeline
from cvision.core.task import Task


def _batches(values, batch_size):
  """`values` in batches of `batch_size`, the last one padded with -1."""
  for i in range(0, len(values), batch_size):
    chunk = list(values[i:i + batch_size])
    valid = [True] * len(chunk) + [False] * (batch_size - len(chunk))
    chunk += [-1.0] * (batch_size - len(chunk))
    yield {'x': jnp.asarray(chunk, jnp.float32),
           input_pipeline.VALID_KEY: jnp.asarray(valid)}


def _per_example(params, collections, batch):
  del params, collections
  x = batch['x']
  # A trailing-shape metric too: the one-hot of x > 2, summed like a
  # confusion matrix.
  return {'x': x, 'one_hot': jax.nn.one_hot((x > 2).astype(jnp.int32), 2)}


@pytest.mark.parametrize('batch_size', [1, 2, 3, 7])
def test_split_means_are_exact_whatever_the_batch_and_padding(batch_size):
  values = [1.0, 2.0, 3.0, 4.0, 10.0]
  result = evaluation.reduce_batches(_per_example, None, None,
                                     _batches(values, batch_size))
  assert result.count == 5
  assert result.mean['x'] == pytest.approx(4.0)  # Padding (-1) left out.
  assert result.std['x'] == pytest.approx(np.std(values), rel=1e-5)
  np.testing.assert_allclose(result.mean['one_hot'], [2 / 5, 3 / 5])
  assert result.means() == {'x': pytest.approx(4.0)}


def test_an_empty_split_is_an_error():
  with pytest.raises(ValueError, match='gave no batch'):
    evaluation.reduce_batches(_per_example, None, None, iter(()))


def test_clip_starts_are_uniform():
  assert evaluation.clip_starts(16, 1, 8) == [4]
  assert evaluation.clip_starts(16, 2, 8) == [0, 8]
  assert evaluation.clip_starts(16, 4, 8) == [0, 3, 5, 8]
  assert evaluation.clip_starts(8, 3, 8) == [0, 0, 0]
  with pytest.raises(ValueError, match='clip_frames'):
    evaluation.clip_starts(8, 2, 9)
  with pytest.raises(ValueError, match='num_clips'):
    evaluation.clip_starts(8, 0, 4)


def test_multi_clip_logits_average_clip_means():
  x = jnp.arange(2 * 10, dtype=jnp.float32).reshape(2, 10)  # [B, T].
  clip_mean = lambda clip: jnp.mean(clip, axis=1, keepdims=True)  # [B, 1].
  # Starts 0, 3, 6 of clips of 4: means of frames 0-3, 3-6, 6-9.
  got = evaluation.multi_clip_logits(clip_mean, x, (), 3, 4)
  expected = np.mean([[1.5, 4.5, 7.5], [11.5, 14.5, 17.5]], axis=1)
  np.testing.assert_allclose(np.asarray(got)[:, 0], expected)
  one = evaluation.multi_clip_logits(clip_mean, x, (), 1, 4)  # Frames 3-6.
  np.testing.assert_allclose(np.asarray(one)[:, 0], [4.5, 14.5])


def test_multi_clip_logits_cut_only_the_time_keys():
  batch = {'x': jnp.arange(10, dtype=jnp.float32)[None],
           'label': jnp.asarray([7.0])}
  fn = lambda clip: (clip['x'][:, :1] + 0 * clip['label'][:, None])
  got = evaluation.multi_clip_logits(fn, batch, ('x',), 2, 4)
  np.testing.assert_allclose(np.asarray(got), [[3.0]])  # (0 + 6) / 2.


def test_multi_clip_frame_logits_average_overlaps_and_mark_gaps():
  x = jnp.arange(10, dtype=jnp.float32)[None]  # [1, T=10].
  # Per-frame logits [B, clip, 1]: every frame gets its clip's first frame.
  first = lambda clip: jnp.broadcast_to(clip[:, :1, None],
                                        clip.shape + (1,))
  # Clips of 4 at 0 and 6: frames 4 and 5 are in no clip.
  got = np.asarray(evaluation.multi_clip_logits(first, x, (), 2, 4))[0, :, 0]
  np.testing.assert_array_equal(got[:4], 0)
  np.testing.assert_array_equal(got[6:], 6)
  assert np.isnan(got[4:6]).all()
  # Clips at 0, 3, 6: frame 3 in two clips (0 and 3), frame 6 too (3, 6).
  got = np.asarray(evaluation.multi_clip_logits(first, x, (), 3, 4))[0, :, 0]
  np.testing.assert_allclose(got, [0, 0, 0, 1.5, 3, 3, 4.5, 6, 6, 6])


def test_multi_clip_needs_predict_and_score():
  task = Task(name='plain', init=None, loss=None, evaluate=None,
              input_keys=('x',))
  with pytest.raises(ValueError, match="'plain' has no predict/score"):
    evaluation.multi_clip(task, 2, 4)
