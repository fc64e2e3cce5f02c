"""Shapes through the STM model and its ablation variants."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.projects.mpeg_stm import energy
from cvision.projects.mpeg_stm.stm import model as stm_model

B, G, P, H, W = 2, 2, 11, 32, 32
# The module has no defaults (the config has); these are the test's own.
SMALL = dict(num_classes=8, modalities=('i', 'mv', 'r'), embed_dim=16,
             patch_size=16, stm_features=(4, 4), stm_strides=(4, 2),
             temporal_cell='lif', common_stm=False, learn_dynamics=True,
             v_th_init=1.0, leak_init=0.9, surrogate_alpha=2.0,
             num_heads=2, depth=1, p_time_slots=2, mlp_ratio=2,
             encoder='unified', mixer_growth=4, rrdb_blocks=1)


def _inputs():
  keys = jax.random.split(jax.random.key(0), 3)
  return {'i': jax.random.uniform(keys[0], (B, G, H, W, 3)) - 0.5,
          'mv': jax.random.normal(keys[1], (B, G, P, H, W, 2)),
          'r': jax.random.normal(keys[2], (B, G, P, H, W, 3))}


def test_full_model_logits_costs_and_spikes():
  model = stm_model.CompressedVideoSTM(**SMALL)
  x = _inputs()
  # Jitted (eagerly every op of the scans compiles on its own), from an 'rbg'
  # key (threefry initialisers triple the compile time).
  params = jax.jit(model.init)(jax.random.key(1, impl='rbg'), x)['params']
  assert {'i_embed', 'mv_stm', 'r_stm', 'mv_embed', 'r_embed', 'encoder',
          'mixer', 'classifier'} <= set(params)
  assert set(params['mv_stm']['conv_lif_0']) == {'conv', 'v_th', 'leak'}
  logits, state = jax.jit(lambda p: model.apply(
      {'params': p}, x, mutable=['costs', 'intermediates']))(params)
  assert logits.shape == (B, 8) and np.all(np.isfinite(logits))
  costs = energy.totals(state['costs'])
  assert costs['macs'].shape == costs['acs'].shape == (B,)
  assert np.all(costs['macs'] > 0) and np.all(costs['acs'] > 0)
  # 2 STMs x 2 ConvLIF layers report spike rates in [0, 1].
  rates = jax.tree.leaves(state['intermediates'])
  assert len(rates) == 4 and all(0 <= r <= 1 for r in rates)


@pytest.mark.parametrize('variant, streams', [
    (dict(modalities=('i',)), set()),
    (dict(modalities=('i', 'mv')), {'mv_stm'}),
    (dict(modalities=('i', 'r')), {'r_stm'}),
    (dict(common_stm=True), {'p_stm'}),
    (dict(temporal_cell='lstm'), {'mv_stm', 'r_stm'}),
    (dict(encoder='separate'), {'mv_stm', 'r_stm'}),
    (dict(encoder='cross'), {'mv_stm', 'r_stm'}),
])
def test_ablation_variants_shapes(variant, streams):
  """Shapes only (`eval_shape`: traced, never compiled)."""
  model = stm_model.CompressedVideoSTM(**{**SMALL, **variant})
  x = _inputs()
  variables = jax.eval_shape(model.init, jax.random.key(1), x)
  assert {k for k in variables['params'] if k.endswith('_stm')} == streams
  logits = jax.eval_shape(lambda v: model.apply(v, x), variables)
  assert logits.shape == (B, 8)


def test_lstm_and_fixed_threshold_parameters():
  x = _inputs()
  lstm = jax.eval_shape(stm_model.CompressedVideoSTM(
      **{**SMALL, 'temporal_cell': 'lstm'}).init, jax.random.key(1), x)['params']
  assert set(lstm['mv_stm']) == {'conv_lstm_0', 'conv_lstm_1'}
  fixed = jax.eval_shape(stm_model.CompressedVideoSTM(
      **{**SMALL, 'learn_dynamics': False}).init, jax.random.key(1), x)['params']
  assert set(fixed['mv_stm']['conv_lif_0']) == {'conv'}


@pytest.mark.parametrize('variant, message', [
    (dict(modalities=('mv', 'r')), 'need i'),
    (dict(modalities=('i',), encoder='cross'), 'at least two modalities'),
    (dict(modalities=('i', 'mv'), common_stm=True), 'common_stm needs both'),
    (dict(p_time_slots=12), r'p_time_slots=12 must be in \[1, 11\]'),
    (dict(encoder='mixed'), "encoder='mixed'"),
    (dict(patch_size=12), 'multiple of the STM strides'),
])
def test_bad_settings_are_named(variant, message):
  model = stm_model.CompressedVideoSTM(**{**SMALL, **variant})
  with pytest.raises(ValueError, match=message):
    jax.eval_shape(model.init, jax.random.key(1), _inputs())


def test_time_slot_means():
  x = jnp.arange(6.0).reshape(1, 6, 1, 1, 1)
  np.testing.assert_allclose(
      stm_model.time_slot_means(x, 2)[0, :, 0, 0, 0], [1.0, 4.0])
  np.testing.assert_allclose(
      stm_model.time_slot_means(x, 3)[0, :, 0, 0, 0], [0.5, 2.5, 4.5])
