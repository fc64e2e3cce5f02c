"""The codec Task: init, loss metrics, evaluation, a few Adam steps."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from cvision.projects.codec import vqvae
from cvision.projects.codec import task as codec_task
from experiments.configs import codec as codec_configs

_TINY = dict(num_strided_blocks=1, num_upsampling_blocks=1,
             num_encoder_res_blocks=1, num_decoder_res_blocks=1,
             embedding_dim=8, num_codebooks=2, codebook_size=16,
             space_to_depth=1, temporal_stride=1)


def _config(**model):
  """The codec config's model fields (their one definition), made tiny."""
  config = codec_configs.get_config()
  config.model.update(dict(_TINY, **model))
  return config


def _batch():
  # Smooth colour gradients with a moving square: learnable in a few steps.
  t, h, w = np.meshgrid(np.arange(4), np.arange(8), np.arange(8),
                        indexing='ij')
  video = np.stack([h / 7, w / 7, 0.5 + 0.0 * t], -1)
  for i in range(4):
    video[i, 2:5, i:i + 3] = (1.0, 0.2, 0.2)
  video = np.stack([video, video[:, ::-1]])
  return {'video': jnp.asarray(np.round(video * 255), jnp.uint8)}


def test_default_config_fields_and_unknown_field_error():
  config = codec_configs.get_config().model
  for field in ('num_strided_blocks', 'num_encoder_res_blocks',
                'num_decoder_res_blocks', 'num_upsampling_blocks',
                'embedding_dim', 'num_codebooks', 'codebook_size',
                'space_to_depth', 'temporal_stride', 'commitment_cost',
                'ema_decay', 'dead_code_threshold'):
    assert field in config
  # The default model: 64x64x16 clips -> CR 96.
  assert codec_task.model_compression_rate(config, (16, 64, 64)) == 96.0
  misspelt = _config()
  with misspelt.model.unlocked():
    misspelt.model.codebok_size = 3
  with pytest.raises(ValueError, match='codebok_size'):
    codec_task.build_task(misspelt)
  incomplete = _config()
  del incomplete.model['window_frames']
  with pytest.raises(ValueError, match=r"missing fields \['window_frames'\]"):
    codec_task.build_task(incomplete)


def test_training_lowers_the_loss_and_metrics_are_reported():
  task = codec_task.build_task(_config())
  assert task.name == 'codec' and task.input_keys == ('video',)
  batch = _batch()
  variables = nn.meta.unbox(jax.jit(task.init)(jax.random.key(0), batch))
  params = variables.pop('params')
  collections = variables
  optimizer = optax.adam(3e-3)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, collections, opt_state, rng):
    (loss, (metrics, collections)), grads = jax.value_and_grad(
        task.loss, has_aux=True)(params, collections, batch, rng)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), collections, opt_state, metrics

  losses = []
  for i in range(12):
    params, new_collections, opt_state, metrics = step(
        params, collections, opt_state, jax.random.key(i))
    assert jax.tree.structure(new_collections) == jax.tree.structure(
        collections)
    collections = new_collections
    losses.append(float(metrics['loss']))
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.8 * losses[0], losses
  for key in ('loss', 'l1', 'psnr', 'commitment', 'perplexity_0', 'usage_0',
              'perplexity_1', 'usage_1'):
    assert metrics[key].shape == (), key
  assert 0.0 < float(metrics['usage_0']) <= 1.0

  evaluation = jax.jit(task.evaluate)(params, collections, batch)
  # Per video, for the core's exact split averages.
  for key in ('psnr', 'ssim', 'mae'):
    assert evaluation[key].shape == (2,), key
    assert np.all(np.isfinite(evaluation[key])), key
  assert float(evaluation['mae'].max()) < 0.5

  # The model's encode/decode and the codebook of the trained variables.
  model = codec_task.build_model(_config().model)
  variables = {'params': params, **collections}
  codes = model.apply(variables, batch['video'], method=model.encode)
  assert codes.shape == (2, 4, 4, 4, 2)
  video = model.apply(variables, codes, method=model.decode)
  assert video.shape == (2, 4, 8, 8, 3)
  codebook = codec_task.get_codebook(collections)
  assert codebook.shape == (2, 16, 4)
  latents = vqvae.codes_to_latents(codebook, codes)
  assert latents.shape == (2, 4, 4, 4, 8)
  assert codec_task.model_compression_rate(_config().model, (4, 8, 8)) == (
      pytest.approx(4 * 8 * 8 * 24 / (4 * 4 * 4 * 2 * 4)))  # = 24.


def test_bfloat16_parameters_compute_in_bfloat16_with_float32_outputs():
  # The core casts parameters to the compute dtype before calling the loss.
  task = codec_task.build_task(_config())
  batch = _batch()
  variables = nn.meta.unbox(jax.jit(task.init)(jax.random.key(0), batch))
  params = jax.tree.map(lambda x: x.astype(jnp.bfloat16),
                        variables.pop('params'))
  loss, (metrics, collections) = jax.jit(task.loss)(
      params, variables, batch, jax.random.key(1))
  assert loss.dtype == jnp.float32 and np.isfinite(float(loss))
  assert collections['vq_ema']['quantizer']['codebook'].dtype == jnp.float32
  lowered = jax.jit(task.loss).lower(params, variables, batch,
                                     jax.random.key(1)).as_text()
  assert 'bf16' in lowered and 'convolution' in lowered
