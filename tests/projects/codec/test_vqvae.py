"""VQ-VAE shapes for many clip lengths, errors, partitioning annotations."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.projects.codec import vqvae


def _model(**kwargs):
  config = dict(num_strided_blocks=1, num_upsampling_blocks=1,
                num_encoder_res_blocks=1, num_decoder_res_blocks=1,
                embedding_dim=8, num_codebooks=2, codebook_size=16,
                space_to_depth=1, temporal_stride=1, commitment_cost=0.25,
                ema_decay=0.99, dead_code_threshold=1.0, window_frames=0)
  config.update(kwargs)
  return vqvae.VQVAE(**config)


def _init(model, video):
  # Jitted: op-by-op init compiles every primitive for every shape.
  return jax.jit(lambda v: model.init({'params': jax.random.key(0)}, v))(
      video)


def _round_trip(model, video):
  """(reconstruction, codes, decoded) under one jit."""
  variables = _init(model, video)

  @jax.jit
  def run(variables, video):
    recon, aux = model.apply(variables, video)
    codes = model.apply(variables, video, method=model.encode)
    decoded = model.apply(variables, codes, method=model.decode)
    return recon, aux['codes'], codes, decoded

  recon, aux_codes, codes, decoded = run(variables, video)
  np.testing.assert_array_equal(aux_codes, codes)
  return recon, codes, decoded


@pytest.mark.parametrize('frames', [1, 2, 3, 5])
def test_round_trip_shapes_any_length(frames):
  video = jax.random.uniform(jax.random.key(1), (2, frames, 8, 8, 3))
  recon, codes, decoded = _round_trip(_model(), video)
  assert recon.shape == video.shape and recon.dtype == jnp.float32
  assert codes.shape == (2, frames, 4, 4, 2) and codes.dtype == jnp.int32
  assert decoded.shape == video.shape
  assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0
  np.testing.assert_allclose(recon, decoded, atol=1e-6)


def test_space_to_depth_and_temporal_stride_round_trip():
  model = _model(num_strided_blocks=2, num_upsampling_blocks=2,
                 space_to_depth=2, temporal_stride=2)
  video = jax.random.uniform(jax.random.key(2), (1, 6, 16, 16, 3))
  recon, codes, _ = _round_trip(model, video)
  assert recon.shape == video.shape
  assert codes.shape == (1, 3, 2, 2, 2)  # 6/2, 16/(2*4), N=2.


def test_uint8_input_accepted():
  video = jnp.full((1, 2, 8, 8, 3), 128, jnp.uint8)
  recon, _, _ = _round_trip(_model(), video)
  assert recon.shape == (1, 2, 8, 8, 3) and recon.dtype == jnp.float32


def test_sizes_the_strides_do_not_divide_raise():
  model = _model(num_strided_blocks=2, num_upsampling_blocks=2)
  with pytest.raises(ValueError, match='H=10'):
    _init(model, jnp.zeros((1, 2, 10, 8, 3)))
  model = _model(temporal_stride=2)
  with pytest.raises(ValueError, match='T=3'):
    _init(model, jnp.zeros((1, 3, 8, 8, 3)))


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_upsampling_blocks=2), 'num_upsampling_blocks'),
    (dict(embedding_dim=9), 'embedding_dim=9'),
    (dict(num_strided_blocks=0, num_upsampling_blocks=0),
     'num_strided_blocks'),
])
def test_bad_configs_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    _init(_model(**kwargs), jnp.zeros((1, 2, 8, 8, 3)))


def test_kernels_carry_logical_axis_names():
  variables = _init(_model(), jnp.zeros((1, 2, 8, 8, 3)))
  specs = nn.get_partition_spec(variables['params'])
  kernel = specs['encoder']['strided_0']['kernel']
  assert tuple(kernel) == ('conv_t', 'conv_h', 'conv_w', 'conv_in',
                           'conv_out')
  assert tuple(specs['decoder']['upsample_0']['bias']) == ('conv_out',)
  # The codebook is EMA state, outside the optimizer's params.
  assert 'codebook' in variables['vq_ema']['quantizer']


def test_gradients_reach_the_encoder_through_the_quantizer():
  model = _model()
  video = jax.random.uniform(jax.random.key(3), (1, 2, 8, 8, 3))
  variables = nn.meta.unbox(_init(model, video))

  @jax.jit
  def grads(params):
    def loss(params):
      recon, _ = model.apply({**variables, 'params': params}, video)
      return jnp.mean(jnp.abs(recon - video))
    return jax.grad(loss)(params)

  g = grads(variables['params'])
  assert float(jnp.abs(g['encoder']['strided_0']['kernel']).sum()) > 0


def test_windows_encode_and_decode_each_window_as_its_own_clip():
  # 7 frames in windows of 3: [0, 3), [3, 6) batched, then [6, 7) alone.
  windowed = _model(window_frames=3)
  whole = _model()
  video = jax.random.uniform(jax.random.key(4), (2, 7, 8, 8, 3))
  variables = _init(whole, video)  # The window adds no parameter.
  apply = lambda m, x, method: m.apply(variables, x, method=method)
  codes = apply(windowed, video, windowed.encode)
  pieces = [apply(whole, video[:, a:b], whole.encode)
            for a, b in ((0, 3), (3, 6), (6, 7))]
  np.testing.assert_array_equal(codes, np.concatenate(pieces, axis=1))
  decoded = apply(windowed, codes, windowed.decode)
  pieces = [apply(whole, codes[:, a:b], whole.decode)
            for a, b in ((0, 3), (3, 6), (6, 7))]
  np.testing.assert_allclose(decoded, np.concatenate(pieces, axis=1),
                             atol=1e-6)
  # The decoder's temporal receptive field spans windows when run whole.
  assert not np.allclose(decoded, apply(whole, codes, whole.decode),
                         atol=1e-4)
  recon, aux = windowed.apply(variables, video)
  np.testing.assert_array_equal(aux['codes'], codes)
  np.testing.assert_allclose(recon, decoded, atol=1e-6)


def test_windows_count_frames_before_the_temporal_stride():
  # 4 frames a window = 2 code steps a window for the decoder.
  model = _model(temporal_stride=2, window_frames=4)
  whole = _model(temporal_stride=2)
  video = jax.random.uniform(jax.random.key(5), (1, 8, 8, 8, 3))
  recon, codes, decoded = _round_trip(model, video)
  assert codes.shape == (1, 4, 4, 4, 2) and recon.shape == video.shape
  np.testing.assert_allclose(recon, decoded, atol=1e-6)
  variables = _init(whole, video)
  pieces = [whole.apply(variables, codes[:, a:b], method=whole.decode)
            for a, b in ((0, 2), (2, 4))]
  np.testing.assert_allclose(
      model.apply(variables, codes, method=model.decode),
      np.concatenate(pieces, axis=1), atol=1e-6)


@pytest.mark.parametrize('window', [-1, 3])
def test_a_window_off_the_temporal_stride_raises(window):
  with pytest.raises(ValueError, match=f'window_frames={window}'):
    _init(_model(temporal_stride=2, window_frames=window),
          jnp.zeros((1, 4, 8, 8, 3)))
