"""The read-only codec every downstream model uses, against the live codec."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.projects.codec import frozen


@pytest.fixture(scope='module')
def trained_codec(tiny_codec_run):
  return tiny_codec_run


def test_encode_decode_match_the_codec_model(trained_codec):
  codec = frozen.load_frozen_codec(trained_codec, with_params=True)
  video = jax.random.uniform(jax.random.key(0), (1, 8, 32, 32, 3))
  codes = codec.encode(video)
  n, k, d = codec.codebook.shape
  assert codes.shape[-1] == n and codes.dtype == jnp.int32
  assert int(codes.min()) >= 0 and int(codes.max()) < k
  latents = codec.codes_to_latents(codes)
  assert latents.shape == codes.shape[:-1] + (n * d,)
  # The latent of code c in codebook i is row c of codebook i.
  np.testing.assert_allclose(
      latents[0, 0, 0, 0, :d], codec.codebook[0, int(codes[0, 0, 0, 0, 0])],
      rtol=1e-6)
  decoded = codec.decode(codes)
  assert decoded.shape == video.shape
  np.testing.assert_allclose(
      decoded, jnp.round(jnp.clip(codec.decode_latents(latents), 0, 1) * 255)
      / 255, atol=1e-6)


def test_gradients_flow_through_the_frozen_decoder(trained_codec):
  codec = frozen.load_frozen_codec(trained_codec, with_params=True)
  latents = codec.codes_to_latents(
      jnp.zeros((1, 8, 8, 8, codec.codebook.shape[0]), jnp.int32))
  grad = jax.grad(lambda z: jnp.sum(codec.decode_latents(z)))(latents)
  assert grad.shape == latents.shape and float(jnp.abs(grad).sum()) > 0


def test_encoding_needs_the_parameters(trained_codec):
  codec = frozen.load_frozen_codec(trained_codec)
  with pytest.raises(ValueError, match='with_params=True'):
    codec.encode(jnp.zeros((1, 8, 32, 32, 3)))


def test_a_fresh_codec_can_be_jitted_on_first_use(trained_codec):
  # The cached device copy of the variables is made inside the first trace
  # here; it must hold arrays, not that trace's tracers.
  codec = frozen.load_frozen_codec(trained_codec, with_params=True)
  video = jax.random.uniform(jax.random.key(1), (1, 8, 32, 32, 3))
  codes = jax.jit(codec.encode)(video)
  np.testing.assert_array_equal(codes, codec.encode(video))
  np.testing.assert_array_equal(jax.jit(codec.decode)(codes),
                                codec.decode(codes))


@pytest.mark.parametrize('model, clip_frames, window', [
    ({}, 4, 4),  # Before window_frames: the training clip length.
    ({}, 0, 0),  # Trained on whole videos: whole clips.
    ({'temporal_stride': 2}, 3, 0),  # Not a window the stride allows.
    ({'window_frames': 8}, 4, 8),  # Saved explicitly: kept.
])
def test_runs_without_a_saved_window_use_their_training_clip_length(
    tmp_path, model, clip_frames, window):
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump({'model': model, 'data': {'train_clip_frames': clip_frames}}, f)
  assert frozen.saved_model_config(str(tmp_path)).window_frames == window
