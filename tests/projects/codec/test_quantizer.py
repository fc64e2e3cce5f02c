"""Vector quantiser: nearest codes, straight-through, EMA, restarts."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.projects.codec.vqvae import quantizer as vq_lib


# Everything runs under jit: op-by-op execution compiles every primitive for
# every new shape, which is slower than one compile on this CPU.


def _init(quantizer, x, **overrides):
  variables = flax.core.unfreeze(jax.jit(
      lambda x: quantizer.init({'params': jax.random.key(0)}, x))(x))
  for name, value in overrides.items():
    variables[vq_lib.COLLECTION][name] = jnp.asarray(value, jnp.float32)
  return variables


def _apply(quantizer, variables, x):
  return jax.jit(quantizer.apply)(variables, x)


def _train_step(quantizer, variables, x, seed=0):
  @jax.jit
  def step(variables, x):
    (_, codes, _), new = quantizer.apply(
        variables, x, train=True, rngs={'vq': jax.random.key(seed)},
        mutable=[vq_lib.COLLECTION])
    return codes, new[vq_lib.COLLECTION]
  return step(variables, x)


def _quantizer(**fields):
  """A quantizer with the codec presets' EMA settings unless overridden."""
  return vq_lib.VectorQuantizer(**{
      'commitment_cost': 0.25, 'ema_decay': 0.99, 'dead_code_threshold': 1.0,
      **fields})


def test_shapes_and_dtypes():
  q = _quantizer(num_codebooks=2, codebook_size=16,
                 embedding_dim=8)
  x = jax.random.normal(jax.random.key(1), (2, 3, 4, 4, 8))
  variables = _init(q, x)
  assert variables[vq_lib.COLLECTION]['codebook'].shape == (2, 16, 4)
  quantized, codes, aux = _apply(q, variables, x)
  assert quantized.shape == x.shape and quantized.dtype == jnp.float32
  assert codes.shape == (2, 3, 4, 4, 2) and codes.dtype == jnp.int32
  assert aux['perplexity'].shape == (2,) and aux['usage'].shape == (2,)
  assert aux['commitment_loss'].shape == ()
  assert np.all((0 <= codes) & (codes < 16))


def test_codes_are_nearest_entries_hand_checked():
  q = _quantizer(num_codebooks=2, codebook_size=3,
                 embedding_dim=4, commitment_cost=0.25)
  codebook = np.array([
      [[0, 0], [1, 0], [0, 5]],  # Codebook 0 quantises channels 0-1.
      [[0, 0], [-2, -2], [3, 3]],  # Codebook 1 quantises channels 2-3.
  ])
  x = jnp.array([
      [0.1, 0.2, 0.1, 0.1],  # -> (0, 0)
      [0.9, -0.1, -1.5, -1.0],  # -> (1, 1)
      [0.2, 3.0, 2.0, 2.5],  # -> (2, 2)
      [5.0, 5.0, -1.1, -0.9],  # (0,0): 50, (1,0): 41, (0,5): 25 -> 2;
  ])  # (-1.1,-0.9) is 2.0 from (0,0) and 2.0 from (-2,-2)... see below.
  x = x.at[3, 2:].set(jnp.array([-1.2, -1.0]))  # 2.44 vs 1.64 -> entry 1.
  variables = _init(q, x, codebook=codebook)
  quantized, codes, aux = _apply(q, variables, x)
  np.testing.assert_array_equal(codes, [[0, 0], [1, 1], [2, 2], [2, 1]])
  expected = np.array([[0, 0, 0, 0], [1, 0, -2, -2], [0, 5, 3, 3],
                       [0, 5, -2, -2]], np.float32)
  np.testing.assert_allclose(quantized, expected, atol=1e-6)
  commitment = 0.25 * np.mean((np.asarray(x) - expected)**2)
  assert float(aux['commitment_loss']) == pytest.approx(commitment, rel=1e-5)
  # Codebook 0 uses entries {0, 1, 2} -> usage 1; codebook 1 uses {0, 1, 2}.
  np.testing.assert_allclose(aux['usage'], [1.0, 1.0])
  # Codebook 0 histogram (1, 1, 2)/4 -> perplexity exp(H).
  p = np.array([0.25, 0.25, 0.5])
  assert float(aux['perplexity'][0]) == pytest.approx(
      np.exp(-np.sum(p * np.log(p))), rel=1e-5)
  # The pure lookup gives the same latents.
  np.testing.assert_allclose(
      vq_lib.codes_to_latents(codebook.astype(np.float32),
                              np.asarray(codes, np.uint8)), expected)


def test_codes_to_latents_shapes_and_errors():
  codebook = jnp.arange(2 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 3)
  codes = jnp.array([[[4, 0]], [[1, 2]]])  # [2, 1, N=2]
  latents = vq_lib.codes_to_latents(codebook, codes)
  assert latents.shape == (2, 1, 6)
  np.testing.assert_array_equal(latents[0, 0], [12, 13, 14, 15, 16, 17])
  with pytest.raises(ValueError, match='num_codebooks=2'):
    vq_lib.codes_to_latents(codebook, jnp.zeros((3, 1), jnp.int32))


def test_straight_through_gradient_is_identity():
  q = _quantizer(num_codebooks=2, codebook_size=8,
                 embedding_dim=4)
  x = jax.random.normal(jax.random.key(2), (5, 4))
  variables = _init(q, x)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(q.apply(variables, x)[0])))(x)
  np.testing.assert_array_equal(grad, jnp.ones_like(x))


def test_ema_moves_entry_towards_assigned_vectors():
  q = _quantizer(num_codebooks=1, codebook_size=2,
                 embedding_dim=2, ema_decay=0.9,
                 dead_code_threshold=0.0)
  codebook = np.array([[[0.0, 0.0], [10.0, 10.0]]])
  x = jnp.array([[1.0, 1.0], [1.2, 0.8], [0.8, 1.2]])  # All -> entry 0.
  variables = _init(q, x, codebook=codebook, cluster_size=[[1.0, 1.0]],
                    embed_sum=codebook)
  codes, new = _train_step(q, variables, x)
  np.testing.assert_array_equal(codes, [[0], [0], [0]])
  # cluster 0.9 * 1 + 0.1 * 3 = 1.2; sum 0.9 * 0 + 0.1 * (3, 3) = (0.3, 0.3).
  np.testing.assert_allclose(new['cluster_size'], [[1.2, 0.9]], rtol=1e-6)
  np.testing.assert_allclose(new['embed_sum'][0, 0], [0.3, 0.3], rtol=1e-6)
  entry = new['codebook'][0, 0]
  np.testing.assert_allclose(entry, [0.25, 0.25], rtol=1e-3)  # 0.3 / 1.2.
  assert np.linalg.norm(entry - 1.0) < np.linalg.norm(codebook[0, 0] - 1.0)
  # The unused entry keeps its place (sum and size decay together).
  np.testing.assert_allclose(new['codebook'][0, 1], [10.0, 10.0], rtol=1e-3)
  # Evaluation calls leave the statistics alone.
  _, new_eval = q.apply(variables, x, train=False,
                        mutable=[vq_lib.COLLECTION])
  np.testing.assert_array_equal(new_eval[vq_lib.COLLECTION]['codebook'],
                                codebook)


def test_dead_codes_restart_on_batch_vectors():
  q = _quantizer(num_codebooks=1, codebook_size=3,
                 embedding_dim=2, dead_code_threshold=1.0)
  codebook = np.array([[[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0]]])
  x = jax.random.normal(jax.random.key(3), (16, 2))
  variables = _init(q, x, codebook=codebook,
                    cluster_size=[[50.0, 0.0, 0.0]], embed_sum=codebook * 50)
  codes, new = _train_step(q, variables, x)
  assert np.all(np.asarray(codes) == 0)  # The far entries were never used.
  batch = np.asarray(x)
  for k in (1, 2):  # Restarted onto vectors of the batch.
    entry = np.asarray(new['codebook'][0, k])
    assert np.min(np.linalg.norm(batch - entry, axis=-1)) < 1e-5
    assert float(new['cluster_size'][0, k]) == 1.0
  # The live entry is EMA-updated, not restarted.
  assert float(new['cluster_size'][0, 0]) == pytest.approx(
      0.99 * 50 + 0.01 * 16)
  # Next step, the restarted entries take part of the batch.
  codes, _ = _train_step(q, {vq_lib.COLLECTION: new}, x, seed=1)
  assert len(np.unique(codes)) > 1


def test_first_training_step_initialises_codebook_from_data():
  q = _quantizer(num_codebooks=2, codebook_size=4,
                 embedding_dim=4)
  x = 5.0 + jax.random.normal(jax.random.key(4), (64, 4))
  variables = _init(q, x)
  _, new = _train_step(q, variables, x)
  # Zero initial usage: every entry restarts on an encoder output.
  flat = np.asarray(x).reshape(64, 2, 2)
  for n in range(2):
    for k in range(4):
      entry = np.asarray(new['codebook'][n, k])
      assert np.min(np.linalg.norm(flat[:, n] - entry, axis=-1)) < 1e-5


def test_snap_to_codebook_replaces_each_group_by_its_nearest_entry():
  # N=2 codebooks of K=3 entries, D=2.
  codebook = jnp.asarray([[[0., 0.], [1., 0.], [0., 1.]],
                          [[5., 5.], [-5., 5.], [0., -5.]]])
  latents = jnp.asarray([[0.9, 0.2, -4., 6.],   # -> entry 1 | entry 1
                          [0.1, 0.7, 0.5, -2.]])  # -> entry 2 | entry 2
  snapped = vq_lib.snap_to_codebook(latents, codebook)
  np.testing.assert_array_equal(snapped, [[1., 0., -5., 5.],
                                          [0., 1., 0., -5.]])
  # Entries are fixed points; no gradient flows back to the latents.
  np.testing.assert_array_equal(vq_lib.snap_to_codebook(snapped, codebook),
                                snapped)
  grad = jax.grad(lambda x: vq_lib.snap_to_codebook(x, codebook).sum())(
      latents)
  np.testing.assert_array_equal(grad, np.zeros_like(latents))
  with pytest.raises(ValueError, match=r'latents have 3 channels.*2x2 = 4'):
    vq_lib.snap_to_codebook(latents[:, :3], codebook)
