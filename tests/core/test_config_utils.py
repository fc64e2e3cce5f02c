"""Networks are built from every config field, no more and no fewer."""
import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import pytest

from cvision.core import config_utils


class _Toy(nn.Module):
  width: int
  depth: int
  dtype: object = jnp.float32

  def __call__(self, x):
    return x


def test_every_field_reaches_the_module():
  toy = config_utils.build_module(
      _Toy, ml_collections.ConfigDict({'width': 3, 'depth': 2}), 'toy model',
      dtype=jnp.bfloat16)
  assert (toy.width, toy.depth, toy.dtype) == (3, 2, jnp.bfloat16)


def test_a_misspelt_field_is_named_with_the_missing_one():
  with pytest.raises(ValueError, match=r"toy model config does not fit _Toy: "
                     r"unknown fields \['widht'\]; missing fields \['width'\]"):
    config_utils.build_module(_Toy, {'widht': 3, 'depth': 2}, 'toy model')


def test_a_field_left_out_is_named():
  with pytest.raises(ValueError, match=r"missing fields \['depth'\]"):
    config_utils.build_module(_Toy, {'width': 3}, 'toy model')
