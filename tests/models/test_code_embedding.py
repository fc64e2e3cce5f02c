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
