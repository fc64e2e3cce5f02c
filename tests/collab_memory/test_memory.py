"""The collaborative memory module against hand-computed cases."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.models import collab_memory as cm


def _clips(n=3, b=2, l=2, c=4, seed=0):
  x = np.random.default_rng(seed).normal(size=(n, b, 1, 1, l, c))
  return jnp.asarray(x, jnp.float32)


def _variables(module, clips):
  return module.init(jax.random.key(0), clips)


def test_associative_memory_matches_eq_2_and_3_by_hand():
  clips = _clips()
  module = cm.CollaborativeMemory(channels=4, reduction=2)
  params = _variables(module, clips)['params']
  phi, psi, theta = (np.asarray(params[k]['kernel'])
                     for k in ('phi', 'psi', 'theta'))
  x = np.asarray(clips).reshape(3, 2, 2, 4)  # [N, B, L, C]
  for video in range(2):
    g = sum((x[i, video] @ phi).T @ (x[i, video] @ psi) for i in range(3))
    g /= 3 * 2  # Averaged over clips and positions.
    got = module.apply({'params': params}, clips,
                       method=module.global_memory)[video]
    np.testing.assert_allclose(got, g, rtol=1e-5, atol=1e-6)
    m0 = x[0, video] @ theta @ g
    got_m = module.apply({'params': params}, clips, got[None].repeat(2, 0),
                         method=module.clip_memory)[0, video]
    np.testing.assert_allclose(got_m, m0, rtol=1e-5, atol=1e-6)


def test_memory_size_does_not_depend_on_the_number_of_clips():
  module = cm.CollaborativeMemory(channels=4, reduction=2)
  params = _variables(module, _clips(n=2))
  for n in (1, 2, 7):
    memory = module.apply(params, _clips(n=n), method=module.global_memory)
    assert memory.shape == (2, 2, 2)


def test_gating_at_zero_memory_scales_features_by_a_constant():
  clips = _clips()
  module = cm.CollaborativeMemory(channels=4, reduction=2)
  params = _variables(module, clips)
  zero = jnp.zeros((2, 2, 2))
  out = module.apply(params, clips, zero)
  # sigmoid(W 0 + b) with b = 0 at init: every feature times 1.5.
  np.testing.assert_allclose(out, 1.5 * clips, rtol=1e-6)


def test_memory_mixes_clips_of_one_video_only():
  clips = _clips()
  module = cm.CollaborativeMemory(channels=4, reduction=2)
  params = _variables(module, clips)
  changed = clips.at[:, 1].multiply(5.0)  # Only video 1 changes.
  a, b = module.apply(params, clips), module.apply(params, changed)
  np.testing.assert_allclose(a[:, 0], b[:, 0], rtol=1e-6)
  assert not np.allclose(a[:, 1], b[:, 1])


@pytest.mark.parametrize('interaction, infusion', [
    ('average', 'gating'), ('associative', 'residual')])
def test_variants_keep_shapes(interaction, infusion):
  clips = _clips()
  module = cm.CollaborativeMemory(channels=4, interaction=interaction,
                                  infusion=infusion, reduction=2)
  assert module.apply(_variables(module, clips), clips).shape == clips.shape


def test_unknown_variant_is_named():
  with pytest.raises(ValueError, match='interaction=.attention'):
    _variables(cm.CollaborativeMemory(channels=4, interaction='attention'),
               _clips())
