"""The collaborative memory module against hand-computed cases."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvision.projects.collab_memory import network as cm
from cvision.projects.collab_memory import task as collab_memory_task


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


def _odd_one_out_features(rng, batch, classes=8, clips=4):
  """Clip features of odd-one-out videos, and their labels.

  Every clip shows one segment's motion class; all clips but one share it,
  the label is the odd one's class (the dataset's `odd_one_out` rule).
  Features: the class one-hot twice (a backbone's features are redundant)
  and a constant channel, plus noise.
  """
  common = rng.integers(classes, size=batch)
  odd = (common + 1 + rng.integers(classes - 1, size=batch)) % classes
  kind = np.repeat(common[None], clips, axis=0)
  kind[rng.integers(clips, size=batch), np.arange(batch)] = odd
  onehot = np.eye(classes, dtype=np.float32)[kind]
  x = np.concatenate([onehot, onehot, np.ones_like(onehot[..., :1])], -1)
  x += 0.1 * rng.standard_normal(x.shape).astype(np.float32)
  return jnp.asarray(x[:, :, None, None, None, :]), jnp.asarray(odd)


def _odd_one_out_accuracy(interaction, infusion, steps=1500):
  classes = 8
  memory = None if interaction is None else cm.CollaborativeMemory(
      channels=2 * classes + 1, interaction=interaction, infusion=infusion,
      reduction=1)
  head = cm.VideoLevelHead(classes, memory=memory, dropout_rate=0.0)
  rng = np.random.default_rng(0)
  params = head.init(jax.random.key(0), _odd_one_out_features(rng, 2)[0],
                     train=False)['params']
  optimizer = optax.adam(1e-2)

  @jax.jit
  def step(params, opt_state, x, labels):
    def loss(params):
      logits = head.apply({'params': params}, x, train=False)
      return collab_memory_task.video_level_loss(logits, labels, 1.0)[0]
    updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state)
    return optax.apply_updates(params, updates), opt_state

  opt_state = optimizer.init(params)
  for _ in range(steps):
    params, opt_state = step(params, opt_state,
                             *_odd_one_out_features(rng, 64))
  x, labels = _odd_one_out_features(np.random.default_rng(1), 1000)
  scores = jnp.mean(jax.nn.softmax(
      head.apply({'params': params}, x, train=False), -1), axis=0)
  return float(jnp.mean(jnp.argmax(scores, -1) == labels))


def test_odd_one_out_needs_the_memory():
  # Averaging independent clip predictions cannot name the odd clip's
  # class: each clip's vote is the same whether its class is the common or
  # the odd one, and the common one has 3 votes. Chance is 1/8.
  assert _odd_one_out_accuracy(None, None) < 0.1
  # The associative memory tells each clip how many clips share its class.
  assert _odd_one_out_accuracy('associative', 'residual') > 0.8
  assert _odd_one_out_accuracy('associative', 'gating') > 0.4
