"""Config defaults: overrides apply, typos fail naming the known fields."""
import ml_collections
import pytest

from cvision.core import config_utils
from cvision.tasks import codec as codec_task


def test_overrides_apply_and_the_rest_keep_their_defaults():
  config = config_utils.with_defaults(
      ml_collections.ConfigDict({'a': 1, 'b': 2}), {'b': 5}, 'toy')
  assert config.to_dict() == {'a': 1, 'b': 5}


def test_a_misspelt_field_is_named_with_the_known_ones():
  with pytest.raises(ValueError, match=r"unknown codec model fields "
                     r"\['num_codebook'\]; known: \[.*'num_codebooks'"):
    codec_task.resolve_model_config({'num_codebook': 4})
