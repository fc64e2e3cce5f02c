"""The past-future network: conv form, memories, causality, slot growth."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.projects.past_future import network as pf


def test_patch_conv_equals_flax_conv():
  x = jax.random.normal(jax.random.key(0), (2, 7, 8, 8, 5))
  for kernel, strides in (((3, 3, 3), (1, 2, 2)), ((2, 3, 1), (2, 1, 3))):
    patch = pf.PatchConv3D(6, kernel, strides)
    params = jax.jit(patch.init)(jax.random.key(1), x)
    conv = nn.Conv(6, kernel, strides=strides, padding='SAME')
    np.testing.assert_allclose(jax.jit(patch.apply)(params, x),
                               jax.jit(conv.apply)(params, x), atol=1e-5)


def _model(memory):
  return pf.PastFutureModel(
      memory=memory, dim=8, adapter_channels=(4,),
      adapter_kernels=((2, 1, 1),), adapter_strides=((2, 1, 1),),
      core_layers=1, num_heads=2, mlp_dim=8, attention_top_k=4, lstm_size=6)


def _run(model, params, chunks, queries):
  """Steps through `chunks` `[B, C, F, h, w, D]`; memories and logits."""
  b, c, f = chunks.shape[:3]
  state = model.apply(params, b, c, f, method=model.initial_memory)
  step = jax.jit(functools.partial(model.apply, method=model.step))
  states, logits = [], []
  for t in range(c):
    state, out = step(params, state, chunks[:, t], queries[:, t], t)
    states.append(state)
    logits.append(out)
  return states, logits


@pytest.fixture(scope='module')
def video():
  chunks = jax.random.normal(jax.random.key(2), (2, 5, 4, 4, 4, 3))
  queries = jax.random.normal(jax.random.key(3), (2, 5, 3, 4, 4, 4, 3))
  return chunks, queries


@pytest.mark.parametrize('memory', ['slot', 'lstm'])
def test_memory_at_step_t_holds_nothing_from_later_chunks(memory, video):
  chunks, queries = video
  model = _model(memory)
  params = model.init(jax.random.key(0), chunks[:, 0], queries[:, 0])
  states, logits = _run(model, params, chunks, queries)
  t = 2
  later = chunks.at[:, t + 1:].set(
      jax.random.normal(jax.random.key(9), chunks[:, t + 1:].shape))
  states2, logits2 = _run(model, params, later, queries)
  for i in range(t + 1):
    jax.tree.map(np.testing.assert_array_equal, states[i], states2[i])
    np.testing.assert_array_equal(logits[i], logits2[i])
  # ... and the later chunks do reach the memory once observed.
  assert not np.allclose(jax.tree.leaves(states[t + 1])[0],
                         jax.tree.leaves(states2[t + 1])[0])


def test_the_lstm_memory_is_read_by_the_answer(video):
  chunks, queries = video
  model = _model('lstm')
  params = model.init(jax.random.key(0), chunks[:, 0], queries[:, 0])
  assert 'sink_value' not in str(jax.tree_util.tree_structure(params))
  _, logits = _run(model, params, chunks, queries)
  other_past = chunks.at[:, 0].set(
      jax.random.normal(jax.random.key(7), chunks[:, 0].shape))
  _, logits2 = _run(model, params, other_past, queries)
  # Same queries, another chunk 0: every later answer moves with the state.
  for t in range(chunks.shape[1]):
    assert np.abs(np.asarray(logits[t]) - np.asarray(logits2[t])).max() > 1e-4


def test_slot_memory_grows_by_one_chunk_per_step(video):
  chunks, queries = video
  model = _model('slot')
  params = model.init(jax.random.key(0), chunks[:, 0], queries[:, 0])
  states, _ = _run(model, params, chunks, queries)
  tokens = model.tokens_per_chunk(4)
  assert tokens == 2
  adapted = model.apply(params, chunks, method=model.adapt)  # [B, C, 2, 8]
  for t, state in enumerate(states):
    assert state['slots'].shape == (2, 5 * tokens, 8)
    np.testing.assert_array_equal(
        state['valid'].sum(axis=1), [(t + 1) * tokens] * 2)
    # Slot i holds chunk i's tokens; slots after t are still empty.
    np.testing.assert_allclose(
        state['slots'][:, :(t + 1) * tokens],
        adapted[:, :t + 1].reshape(2, -1, 8), atol=1e-5)
    assert not state['slots'][:, (t + 1) * tokens:].any()
  memory, valid = model.apply(params, states[1], 2, method=model.read)
  assert memory.shape == (2, 5 * tokens, 8)
  np.testing.assert_array_equal(valid[0], [True] * 4 + [False] * 6)


def test_without_memory_the_answer_depends_on_the_query_only(video):
  chunks, queries = video
  model = _model('none')
  params = model.init(jax.random.key(0), chunks[:, 0], queries[:, 0])
  _, logits = _run(model, params, chunks, queries)
  _, logits2 = _run(model, params, chunks[:, ::-1], queries)
  np.testing.assert_allclose(np.stack(logits), np.stack(logits2), atol=1e-6)
  state = model.apply(params, 2, 5, 4, method=model.initial_memory)
  assert state == {}


def test_attention_falls_back_to_the_sink_unless_an_entry_matches():
  attend = pf.MemoryAttention(num_heads=2)
  query = jax.random.normal(jax.random.key(0), (1, 3, 8))
  params = attend.init(jax.random.key(1), query, query, jnp.ones((1, 3),
                                                                 bool))
  p = params['params']
  sink_out = jnp.einsum('hk,hkd->d', p['sink_value'], p['out'])
  value_out = jnp.einsum('bqd,dhk,hke->bqe', query, p['value'], p['out'])
  apply = jax.jit(attend.apply)
  # An empty memory (`none`): the sink's value, whatever the query.
  empty = apply(params, query, jnp.zeros((1, 0, 8)), jnp.zeros((1, 0), bool))
  np.testing.assert_allclose(empty, jnp.broadcast_to(sink_out, empty.shape),
                             rtol=1e-5, atol=1e-6)
  # Untrained, an entry equal to the query (cosine 1 > threshold 0.9)
  # takes most of the weight: out = 0.95 * its value + 0.05 * the sink.
  same = apply(params, query, query, jnp.eye(3, dtype=bool)[None, 0])
  np.testing.assert_allclose(
      same[0, 0], (value_out[0, 0] + np.exp(-3.0) * sink_out)
      / (1 + np.exp(-3.0)), rtol=1e-4, atol=1e-5)
  # Masked entries are never read.
  masked = apply(params, query, query, jnp.zeros((1, 3), bool))
  np.testing.assert_allclose(masked, empty, rtol=1e-5, atol=1e-6)


def test_unknown_memory_is_named():
  model = _model('gru')
  x = jnp.zeros((1, 4, 4, 4, 3))
  with pytest.raises(ValueError, match="memory='gru'"):
    model.init(jax.random.key(0), x, x[:, None])


def test_queries_answered_together_equal_queries_answered_alone(video):
  chunks, queries = video
  model = _model('slot')
  params = model.init(jax.random.key(0), chunks[:, 0], queries[:, 0])
  state = model.apply(params, 2, 5, 4, method=model.initial_memory)
  step = jax.jit(functools.partial(model.apply, method=model.step))
  _, together = step(params, state, chunks[:, 0], queries[:, 0], 0)
  alone = [step(params, state, chunks[:, 0], queries[:, 0, q:q + 1], 0)[1]
           for q in range(3)]
  np.testing.assert_allclose(together, np.concatenate(alone, axis=1),
                             rtol=1e-5, atol=1e-6)
