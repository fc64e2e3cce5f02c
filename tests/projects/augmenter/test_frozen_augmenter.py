"""Reading a trained augmenter read-only, for models trained on codes."""
import json
import os
import shutil

import jax
import numpy as np
import pytest

from cvision.projects.augmenter import frozen
from cvision.projects.augmenter import params as params_lib
from cvision.projects.codec import frozen as frozen_codec


@pytest.fixture(scope='module')
def augmenter(tiny_augmenter_run):
  return frozen.load_frozen_augmenter(tiny_augmenter_run)


def test_loads_family_ranges_and_codec(augmenter, tiny_augmenter_run,
                                       tiny_codec_run):
  assert augmenter.family == 'crop' and augmenter.step == 2
  assert augmenter.param_dim == 4
  assert augmenter.latent_channels == 8  # tiny codec: 2 codebooks x 4 dims.
  assert augmenter.codec_workdir == os.path.abspath(tiny_codec_run)
  assert augmenter.augment_config.crop_min_scale == 0.5
  assert set(augmenter.params) == {'mlp_0', 'mlp_1', 'mlp_out',
                                   'transformer'}
  assert all(isinstance(x, np.ndarray)
             for x in jax.tree.leaves(augmenter.params))


def test_codes_and_their_latents_augment_alike(augmenter, tiny_codec_run):
  codec = frozen_codec.load_frozen_codec(tiny_codec_run)
  augmenter.check_codec(codec)
  codes = np.random.default_rng(0).integers(0, 32, (2, 4, 8, 8, 2))
  boxes = np.tile(params_lib.linspace_boxes(2, 0.75)[1], (2, 1))

  latents = codec.codes_to_latents(codes)  # The codec's own lookup.

  @jax.jit
  def both(codes, latents, boxes):
    return (frozen.apply_learned_augmentation(augmenter, codes, boxes,
                                              codebook=codec.codebook),
            frozen.apply_learned_augmentation(augmenter, latents, boxes))

  from_codes, from_latents = both(codes, latents, boxes)
  assert from_codes.shape == (2, 4, 8, 8, 8)
  np.testing.assert_allclose(from_codes, from_latents, atol=1e-5)
  p = augmenter.sample_params(jax.random.PRNGKey(0), 3)
  assert p.shape == (3, 4)


def test_wrong_inputs_are_named(augmenter, tmp_path, tiny_codec_run,
                                tiny_augmenter_run):
  latents = np.zeros((1, 4, 8, 8, 8), np.float32)
  with pytest.raises(ValueError, match=r'crop parameters must be \[B, 4\]'):
    augmenter.apply(latents, np.zeros((1, 1)))
  with pytest.raises(ValueError, match="does 'crop', not 'flip'"):
    augmenter.apply(latents, np.zeros((1, 1)), family='flip')
  with pytest.raises(ValueError, match='16 channels'):
    augmenter.apply(np.zeros((1, 4, 8, 8, 16), np.float32),
                    np.zeros((1, 4)))
  with pytest.raises(ValueError, match='codebook'):
    frozen.apply_learned_augmentation(augmenter, np.zeros((1, 4, 8, 8, 2),
                                                          np.int32),
                                      np.zeros((1, 4)))
  with pytest.raises(FileNotFoundError, match='config.json'):
    frozen.load_frozen_augmenter(str(tmp_path))
  with pytest.raises(ValueError, match="'codec' run, not an augmenter"):
    frozen.load_frozen_augmenter(tiny_codec_run)
  with pytest.raises(FileNotFoundError, match=r'step 7 is not in .* \[2\]'):
    frozen.load_frozen_augmenter(tiny_augmenter_run, step=7)
  # A run whose config lost its checkpoints.
  bare = tmp_path / 'bare'
  bare.mkdir()
  shutil.copy(os.path.join(tiny_augmenter_run, 'config.json'), bare)
  with pytest.raises(FileNotFoundError, match='train the augmenter first'):
    frozen.load_frozen_augmenter(str(bare))
  with open(bare / 'config.json') as f:
    assert json.load(f)['task'] == 'augmenter'
