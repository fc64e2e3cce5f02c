"""Tests for cvision.models.code_embedding."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.models import code_embedding

# N=2 codebooks, K=3 entries, D=2: book 0 holds 0..5, book 1 holds 10..15.
BOOKS = np.array([[[0., 1.], [2., 3.], [4., 5.]],
                  [[10., 11.], [12., 13.], [14., 15.]]], np.float32)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.int32, np.int64])
def test_embed_codes_matches_hand_computed(dtype):
  codes = np.array([[0, 2], [1, 0], [2, 1]], dtype)  # [3 locations, N]
  expected = np.array([[0., 1., 14., 15.],
                       [2., 3., 10., 11.],
                       [4., 5., 12., 13.]], np.float32)
  out = code_embedding.embed_codes(BOOKS, codes)
  assert out.dtype == jnp.float32
  np.testing.assert_array_equal(out, expected)


def test_module_on_video_grid_with_attribute_or_argument():
  rng = np.random.default_rng(0)
  codes = rng.integers(0, 3, size=(2, 4, 3, 5, 2)).astype(np.uint16)
  out_attr = code_embedding.CodeEmbedding(codebooks=BOOKS).apply({}, codes)
  out_arg = jax.jit(code_embedding.CodeEmbedding().apply)({}, codes, BOOKS)
  assert out_attr.shape == (2, 4, 3, 5, 4)
  np.testing.assert_array_equal(out_attr, out_arg)
  # Channels [2n, 2n + 2) come from codebook n.
  np.testing.assert_array_equal(out_attr[..., 2:], BOOKS[1][codes[..., 1]])
  assert not code_embedding.CodeEmbedding().init(
      jax.random.key(0), codes, BOOKS)  # No parameters.


def test_invalid_codes_give_nan_and_codebooks_get_no_gradient():
  codes = np.array([[3, 0], [-1, 1]], np.int32)
  out = np.asarray(code_embedding.embed_codes(BOOKS, codes))
  assert np.isnan(out[:, :2]).all() and not np.isnan(out[:, 2:]).any()
  grad = jax.grad(lambda b: code_embedding.embed_codes(
      b, np.array([[0, 1]])).sum())(jnp.asarray(BOOKS))
  np.testing.assert_array_equal(grad, 0.)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match='N=2'):
    code_embedding.embed_codes(BOOKS, np.zeros((4, 3), np.int32))
  with pytest.raises(ValueError, match='integers'):
    code_embedding.embed_codes(BOOKS, np.zeros((4, 2), np.float32))
  with pytest.raises(ValueError, match='codebooks'):
    code_embedding.CodeEmbedding().apply({}, np.zeros((4, 2), np.int32))


def test_temporal_correlation_finds_where_a_cell_went():
  # Background cells hold e0; one cell holds e1 at (1, 1), then at (1, 2):
  # it moved one cell right.
  x = np.zeros((1, 3, 3, 4, 2), np.float32)
  x[..., 0] = 2.0  # Cosine ignores the norm.
  x[0, 0, 1, 1] = [0.0, 3.0]
  x[0, 1, 1, 2] = [0.0, 1.0]
  out = np.asarray(code_embedding.temporal_correlation(jnp.asarray(x), 1))
  assert out.shape == (1, 3, 3, 4, 9)
  # Channel (dy + 1) * 3 + (dx + 1); the moved cell matches only at dx=+1.
  np.testing.assert_allclose(out[0, 0, 1, 1].reshape(3, 3),
                             [[0, 0, 0], [0, 0, 1], [0, 0, 0]], atol=1e-6)
  # A still background cell matches its in-frame neighbours but the one
  # the e1 cell entered; out of frame reads 0.
  np.testing.assert_allclose(out[0, 0, 0, 0].reshape(3, 3),
                             [[0, 0, 0], [0, 1, 1], [0, 1, 1]], atol=1e-6)
  np.testing.assert_allclose(out[0, 0, 0, 1].reshape(3, 3),
                             [[0, 0, 0], [1, 1, 1], [1, 1, 0]], atol=1e-6)
  # The last step has no successor: it repeats the step before.
  np.testing.assert_array_equal(out[0, 2], out[0, 1])
  assert np.abs(out[0, 1]).sum() > 0
  with pytest.raises(ValueError, match='radius must be >= 1'):
    code_embedding.temporal_correlation(jnp.asarray(x), 0)
  with pytest.raises(ValueError, match=r'\[B, T, H, W, C\]'):
    code_embedding.temporal_correlation(jnp.asarray(x[0]), 1)
