"""Importing the compressed_vision release's Haiku codecs as cvision runs.

No release file may be downloaded, so the pickles here are written in the
release's layout at a tiny size: module paths, names and shapes as its
`CompressionConvEncoderDecoder` creates them (listed by hand below), random
values. Where dm-haiku is installed, a Haiku network written here from the
release's structure gives the reference outputs (output identity); the
layers are also checked against numpy definitions, without Haiku.
"""
import math
import os
import pickle

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import flax.linen as nn
import pytest

from cvision.projects.codec import frozen
from cvision.projects.codec import modes
from cvision.projects.codec.release import config as release_config
from cvision.projects.codec.release import importer
from cvision.projects.codec.release import network
from cvision.projects.codec.release import safe_pickle
from experiments.configs import codec as codec_configs
from tests.conftest import run_main

P = 'CompressionConvEncoderDecoder'
# Haiku puts modules made inside a method under `~<method>`.
ENC, DEC = f'{P}/~encode_embedding', f'{P}/~decode_embedding'
# N = 8 / 4 = 2 codebooks of D = 4, K = 16; 2 strided layers of 4, 8
# channels; time halved; one residual block each side, 8 hidden channels.
TINY_KWARGS = {
    'bot_channels': 8, 'vq_embedding_dims': 4, 'vq_num_embeddings': 16,
    'num_conv_layers': 2, 'extra_encode_conv_layers': 1,
    'extra_decode_conv_layers': 1, 'res_bot_mult': 1.0,
    'use_time_compression_2x': True, 'padding': 'SAME',
    'vq_commitment_cost': 0.25, 'vq_decay': 0.9,
}


def tiny_release_arrays(seed=0):
  """(params, state) in the release's Haiku layout for TINY_KWARGS."""
  rng = np.random.default_rng(seed)

  def normal(*shape):
    return (rng.normal(size=shape) * 0.3).astype(np.float32)

  params = {
      f'{ENC}/conv_0/conv3_d': {'w': normal(1, 4, 4, 3, 4)},
      f'{ENC}/conv_1/conv3_d': {'w': normal(1, 4, 4, 4, 8)},
      f'{ENC}/conv_temporal/conv3_d': {'w': normal(1, 4, 4, 8, 8)},
      f'{ENC}/encoder_res_0_0/conv3_d': {'w': normal(1, 3, 3, 8, 8)},
      f'{ENC}/encoder_res_1_0/conv3_d': {'w': normal(1, 1, 1, 8, 8)},
      f'{DEC}/decoder_res_0_0/conv3_d': {'w': normal(1, 3, 3, 8, 8)},
      f'{DEC}/decoder_res_1_0/conv3_d': {'w': normal(1, 1, 1, 8, 8)},
      # Transposed: [kt, kh, kw, out, in] and a bias.
      f'{DEC}/decoder_temporal': {'w': normal(1, 4, 4, 8, 8), 'b': normal(8)},
      f'{DEC}/decoder_0': {'w': normal(1, 4, 4, 4, 8), 'b': normal(4)},
      f'{DEC}/decoder_1': {'w': normal(1, 4, 4, 3, 4), 'b': normal(3)},
  }
  state = {}
  for i in range(2):
    vq = f'{P}/~/vqvae_{i}'
    state[vq] = {'embeddings': normal(4, 16)}
    state[f'{vq}/~/ema_cluster_size'] = {
        'counter': np.int32(7), 'hidden': np.abs(normal(16)),
        'average': np.abs(normal(16)) + 1}
    state[f'{vq}/~/ema_dw'] = {'counter': np.int32(7), 'hidden': normal(4, 16),
                               'average': normal(4, 16)}
  return params, state


def release_config_dict(model_kwargs):
  return ml_collections.ConfigDict(
      {'experiment_kwargs': {'config': {'model_kwargs': model_kwargs}}})


def write_release(path, params, state, model_kwargs=None, **overrides):
  data = {'params': params, 'state': state,
          'config': release_config_dict(model_kwargs or TINY_KWARGS),
          'augm_params': None, 'augm_state': None, 'augm_config': None}
  data.update(overrides)
  with open(path, 'wb') as f:
    pickle.dump(data, f)
  return str(path)


def base_config():
  return codec_configs.get_config('tiny')


@pytest.fixture(scope='module')
def imported(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('release')
  params, state = tiny_release_arrays()
  path = write_release(tmp / 'cr.pkl', params, state)
  workdir = str(tmp / 'run')
  importer.import_release(path, workdir, base_config())
  return workdir, params, state


def test_every_release_array_lands_in_its_flax_variable(imported):
  workdir, params, state = imported
  codec = frozen.load_frozen_codec(workdir, with_params=True)
  flax_params = codec.variables['params']
  for scope, name in ((ENC, 'conv_0'), (ENC, 'conv_1'),
                      (ENC, 'conv_temporal'), (ENC, 'encoder_res_0_0'),
                      (ENC, 'encoder_res_1_0'), (DEC, 'decoder_res_0_0'),
                      (DEC, 'decoder_res_1_0')):
    np.testing.assert_array_equal(flax_params[name]['conv']['kernel'],
                                  params[f'{scope}/{name}/conv3_d']['w'])
  for name, leaf in (('decoder_temporal', flax_params['decoder_temporal']),
                     ('decoder_0', flax_params['decoder_0']['conv']),
                     ('decoder_1', flax_params['decoder_1']['conv'])):
    np.testing.assert_array_equal(
        leaf['kernel'], np.swapaxes(params[f'{DEC}/{name}']['w'], -1, -2))
    np.testing.assert_array_equal(leaf['bias'], params[f'{DEC}/{name}']['b'])
  vq = codec.variables['vq_ema']['quantizer']
  for i in range(2):
    hk_vq = f'{P}/~/vqvae_{i}'
    np.testing.assert_array_equal(codec.codebook[i],
                                  state[hk_vq]['embeddings'].T)
    np.testing.assert_array_equal(
        vq['dw_hidden'][i], state[f'{hk_vq}/~/ema_dw']['hidden'].T)
    np.testing.assert_array_equal(
        vq['cluster_size_average'][i],
        state[f'{hk_vq}/~/ema_cluster_size']['average'])
    assert vq['dw_counter'][i] == 7
  # As many variables as release arrays (7 kernels, 3 kernel-bias pairs;
  # the 7 per-codebook state arrays stacked over the 2 codebooks).
  assert len(jax.tree.leaves(flax_params)) == 13 == sum(
      len(names) for names in params.values())
  assert 2 * len(jax.tree.leaves(vq)) == 14 == sum(
      len(names) for names in state.values())


def test_imported_workdir_is_an_ordinary_codec_run(imported):
  workdir, _, _ = imported
  codec = frozen.load_frozen_codec(workdir, with_params=True)
  assert codec.model_config.architecture == 'release'
  assert codec.codebook.shape == (2, 16, 4)
  video = np.random.default_rng(1).integers(0, 256, (2, 4, 16, 16, 3),
                                            dtype=np.uint8)
  codes = codec.encode_videos(video)
  assert codes.shape == (2, 2, 4, 4, 2) == (2, *codec.code_shape((4, 16, 16)))
  decoded = codec.decode_to_videos(codes)
  assert decoded.shape == video.shape and decoded.dtype == np.uint8


def test_the_codec_modes_encode_with_an_imported_codec(imported, data_dir,
                                                        tmp_path):
  """`--mode=encode` of the binary on an imported run: any codec preset's
  config works, the run's own (release) model is used."""
  workdir, _, _ = imported
  config = codec_configs.get_config('tiny')  # A different architecture.
  config.data.data_dir = data_dir
  config.encode.output_dir = str(tmp_path / 'codes')
  modes.encode(config, workdir)
  codec = frozen.load_frozen_codec(workdir)
  metadata = frozen.code_dataset_metadata(str(tmp_path / 'codes'))
  assert (metadata['num_codebooks'], metadata['codebook_size']) == (2, 16)
  assert codec.model_config.architecture == 'release'


def test_compression_rate_is_the_releases(imported):
  workdir, _, _ = imported
  codec = frozen.load_frozen_codec(workdir, with_params=True)
  video = np.zeros((1, 8, 32, 32, 3), np.uint8)
  codes = codec.encode_videos(video)
  # The release's get_compression_rate: pixels / code entries x 8 / log2 K.
  release_cr = (np.prod(video.shape) / np.prod(codes.shape)
                * 8 / math.log2(16))
  assert codec.compression_rate(video.shape[1:]) == pytest.approx(release_cr)
  assert release_cr == 8 * 32 * 32 * 3 * 8 / (4 * 8 * 8 * 2 * 4)


def test_unused_and_missing_arrays_are_named(tmp_path):
  params, state = tiny_release_arrays()
  params[f'{ENC}/conv_2/conv3_d'] = {'w': np.zeros((1, 4, 4, 8, 8))}
  path = write_release(tmp_path / 'extra.pkl', params, state)
  with pytest.raises(importer.ReleaseImportError, match='conv_2/conv3_d/w'):
    importer.import_release(path, str(tmp_path / 'a'), base_config())
  params, state = tiny_release_arrays()
  del params[f'{DEC}/decoder_1']['b']
  path = write_release(tmp_path / 'missing.pkl', params, state)
  with pytest.raises(importer.ReleaseImportError, match="decoder_1'/'b'"):
    importer.import_release(path, str(tmp_path / 'b'), base_config())
  assert not os.path.exists(tmp_path / 'a') and not os.path.exists(
      tmp_path / 'b')


def test_a_wrong_shape_is_named(tmp_path):
  params, state = tiny_release_arrays()
  params[f'{ENC}/conv_1/conv3_d']['w'] = np.zeros((1, 4, 4, 4, 6), np.float32)
  path = write_release(tmp_path / 'shape.pkl', params, state)
  with pytest.raises(importer.ReleaseImportError,
                     match=r"conv_1'\]\['conv'\]\['kernel'\]"):
    importer.import_release(path, str(tmp_path / 'run'), base_config())


def test_unknown_and_unsupported_options_are_named(tmp_path):
  params, state = tiny_release_arrays()
  for kwargs, message in (({'bot_chanels': 8}, "bot_chanels"),
                          ({'use_attention': True}, 'use_attention'),
                          ({'extra_encode_conv_use_bn': True},
                           'extra_encode_conv_use_bn'),
                          ({'stride': (1, 3, 3)}, 'stride')):
    path = write_release(tmp_path / 'o.pkl', params, state,
                         dict(TINY_KWARGS, **kwargs))
    with pytest.raises(importer.ReleaseImportError, match=message):
      importer.import_release(path, str(tmp_path / 'run'), base_config())


def test_an_existing_run_is_not_overwritten(imported, tmp_path):
  workdir, params, state = imported
  before = open(os.path.join(workdir, 'config.json')).read()
  path = write_release(tmp_path / 'cr.pkl', params, state)
  with pytest.raises(FileExistsError, match='already holds a run'):
    importer.import_release(path, workdir, base_config())
  assert open(os.path.join(workdir, 'config.json')).read() == before


class _Hostile:

  def __reduce__(self):
    return (os.system, ('touch /tmp/cvision_release_pwned',))


def test_a_hostile_pickle_is_refused_naming_the_class(tmp_path):
  if os.path.exists('/tmp/cvision_release_pwned'):
    os.remove('/tmp/cvision_release_pwned')
  params, state = tiny_release_arrays()
  path = write_release(tmp_path / 'evil.pkl', params, state,
                       augm_config=_Hostile())
  with pytest.raises(safe_pickle.ReleaseFileError,
                     match=r'evil\.pkl names (posix|os)\.system'):
    importer.import_release(path, str(tmp_path / 'run'), base_config())
  assert not os.path.exists('/tmp/cvision_release_pwned')


def test_files_that_are_not_release_checkpoints_are_refused(tmp_path):
  not_a_pickle = tmp_path / 'video.mp4'
  not_a_pickle.write_bytes(b'\x00\x00\x00\x18ftypmp42')
  with pytest.raises(safe_pickle.ReleaseFileError,
                     match='video.mp4 is not a readable pickle'):
    safe_pickle.load_release_file(str(not_a_pickle))
  a_list = tmp_path / 'list.pkl'
  a_list.write_bytes(pickle.dumps([1, 2]))
  with pytest.raises(safe_pickle.ReleaseFileError, match='holds a list'):
    safe_pickle.load_release_file(str(a_list))
  other_dict = tmp_path / 'other.pkl'
  other_dict.write_bytes(pickle.dumps({'params': {}, 'state': {}}))
  with pytest.raises(safe_pickle.ReleaseFileError,
                     match=r"other.pkl is not a compressed_vision.*'config'"):
    safe_pickle.load_release_file(str(other_dict))


def test_older_jax_array_pickles_are_read_as_numpy(tmp_path):
  # jax >= 0.4 pickles an Array through jax._src.array._reconstruct_array.
  path = tmp_path / 'jax.pkl'
  data = {k: None for k in safe_pickle.RELEASE_KEYS}
  data['params'] = {'m': {'w': jnp.arange(6.0).reshape(2, 3)}}
  path.write_bytes(pickle.dumps(data))
  loaded = safe_pickle.load_release_file(str(path))
  w = loaded['params']['m']['w']
  assert isinstance(w, np.ndarray)
  np.testing.assert_array_equal(w, np.arange(6.0).reshape(2, 3))


# -- Each layer against its definition, by hand / in numpy. -----------------


def _correlate_2d(x, w, stride):
  """`[H, W, Cin]` (already padded) * `[kh, kw, Cin, Cout]`, no flip."""
  kh, kw = w.shape[:2]
  rows = (x.shape[0] - kh) // stride + 1
  cols = (x.shape[1] - kw) // stride + 1
  out = np.zeros((rows, cols, w.shape[-1]))
  for r in range(rows):
    for c in range(cols):
      patch = x[r * stride:r * stride + kh, c * stride:c * stride + kw]
      out[r, c] = np.einsum('hwi,hwio->o', patch, w)
  return out


@pytest.mark.parametrize('stride,pads', [(2, (1, 1)), (1, (1, 2))])
def test_same_padding_of_an_even_kernel(stride, pads):
  # XLA SAME, kernel 4 on 8 pixels: stride 2 pads 2 = 1 + 1, stride 1 pads
  # 3 = 1 before + 2 after (the extra one after).
  x = np.random.default_rng(0).normal(size=(1, 1, 8, 8, 2)).astype(np.float32)
  layer = network.ReleaseConv(3, (1, 4, 4), (1, stride, stride), 'SAME',
                              relu=False)
  variables = layer.init(jax.random.key(0), x)
  w = np.asarray(variables['params']['conv']['kernel'])
  padded = np.pad(x[0, 0], (pads, pads, (0, 0)))
  expected = _correlate_2d(padded, w[0], stride)
  np.testing.assert_allclose(layer.apply(variables, x)[0, 0], expected,
                             rtol=1e-5, atol=1e-5)


def test_release_valid_padding_is_reflect_padding():
  x = np.random.default_rng(0).normal(size=(1, 1, 8, 8, 2)).astype(np.float32)
  layer = network.ReleaseConv(3, (1, 4, 4), (1, 2, 2), 'VALID', relu=True)
  variables = layer.init(jax.random.key(0), x)
  w = np.asarray(variables['params']['conv']['kernel'])
  # (4 - 1) // 2 = 1 reflected pixel each side (edge not repeated).
  padded = np.pad(x[0, 0], ((1, 1), (1, 1), (0, 0)), mode='reflect')
  assert padded[0, 0, 0] == x[0, 0, 1, 1, 0]
  expected = np.maximum(_correlate_2d(padded, w[0], 2), 0)
  out = layer.apply(variables, x)
  assert out.shape == (1, 1, 4, 4, 3)
  np.testing.assert_allclose(out[0, 0], expected, rtol=1e-5, atol=1e-5)


def test_transposed_padding_gives_stride_times_the_input():
  # 2 samples, stride 2, kernel 4 -> 4: the full output (i-1)s + k = 6 is
  # cropped by 2, 1 each side: the dilated input x0 0 x1 is padded (2, 2).
  assert network.transposed_padding_for_size(2, 4, 4, 2) == (2, 2)
  # Kernel 1 frame, stride 2 (the release's temporal layer): (0, 1).
  assert network.transposed_padding_for_size(3, 6, 1, 2) == (0, 1)
  with pytest.raises(ValueError, match='cannot turn 3 samples into 4'):
    network.transposed_padding_for_size(3, 4, 4, 2)


def test_upsampling_transposed_conv_against_its_definition():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1, 1, 2, 2, 2)).astype(np.float32)
  layer = network.UpsamplingConvTranspose(3, (1, 4, 4), (1, 2, 2))
  variables = layer.init(jax.random.key(0), x)
  w = np.asarray(variables['params']['conv']['kernel'])[0]  # [4, 4, in, out]
  b = np.asarray(variables['params']['conv']['bias'])
  out = layer.apply(variables, x)
  assert out.shape == (1, 1, 4, 4, 3)
  dilated = np.zeros((3, 3, 2), np.float32)
  dilated[::2, ::2] = x[0, 0]
  padded = np.pad(dilated, ((2, 2), (2, 2), (0, 0)))
  expected = _correlate_2d(padded, w, 1) + b
  np.testing.assert_allclose(out[0, 0], expected, rtol=1e-5, atol=1e-5)


def test_temporal_transposed_layer_leaves_odd_frames_to_the_bias():
  # Kernel 1 frame, stride 2, XLA SAME: frame 2t is input frame t, frame
  # 2t + 1 sees only the dilation's zeros, so it is the bias alone.
  up = nn.ConvTranspose(2, (1, 4, 4), strides=(2, 1, 1), padding='SAME')
  x = np.random.default_rng(0).normal(size=(1, 3, 4, 4, 2)).astype(np.float32)
  variables = up.init(jax.random.key(0), x)
  variables = jax.tree.map(lambda v: v + 0.5, variables)
  out = np.asarray(up.apply(variables, x))
  assert out.shape == (1, 6, 4, 4, 2)
  np.testing.assert_allclose(out[:, 1::2],
                             np.broadcast_to(0.5, out[:, 1::2].shape))
  assert not np.allclose(out[:, 0::2], 0.5)


def test_codebook_n_reads_every_nth_channel_and_fills_block_n():
  quantizer = network.ReleaseQuantizer(
      num_codebooks=2, codebook_size=2, embedding_dim=2, commitment_cost=1.0,
      decay=0.5)
  codebook = np.array([[[0, 0], [10, 10]],      # codebook 0
                       [[0, 0], [-10, -10]]],   # codebook 1
                      np.float32)
  variables = jax.tree.map(np.asarray, quantizer.init(
      jax.random.key(0), jnp.zeros((1, 4)), train=False))
  variables['vq_ema']['codebook'] = codebook
  # Channels (a0, b0, a1, b1): codebook 0 reads a = (9, 9), codebook 1
  # b = (1, 1), so codes (1, 0); output blocks [entry 1 of 0, entry 0 of 1].
  x = jnp.array([[9.0, 1.0, 9.0, 1.0]])
  quantized, codes, _ = quantizer.apply(variables, x, train=False)
  np.testing.assert_array_equal(codes, [[1, 0]])
  np.testing.assert_array_equal(quantized, [[10, 10, 0, 0]])


# -- Output identity against Haiku, where it is installed. ------------------


def _haiku_reference(hk, kw):
  """The release network in Haiku, written here from its structure."""
  n = kw['bot_channels'] // kw['vq_embedding_dims']
  widths = [kw['bot_channels'] // 2**(kw['num_conv_layers'] - i - 1)
            for i in range(kw['num_conv_layers'])]
  hidden = int(kw['bot_channels'] * kw['res_bot_mult'])
  kernel, stride, pad = (1, 4, 4), (1, 2, 2), kw['padding']

  class Unit(hk.Module):

    def __init__(self, channels, kernel, stride, relu, name):
      super().__init__(name=name)
      self.args = (channels, kernel, stride, relu)

    def __call__(self, x):
      channels, kernel, stride, relu = self.args
      if pad == 'VALID':
        x = jnp.pad(x, [(0, 0)] + [((k - 1) // 2,) * 2 for k in kernel]
                    + [(0, 0)], mode='reflect')
      x = hk.Conv3D(channels, kernel, stride, padding=pad,
                    with_bias=False)(x)
      return jax.nn.relu(x) if relu else x

  class Codec(hk.Module):

    def __init__(self):
      super().__init__(name=P)
      self.vqs = [hk.nets.VectorQuantizerEMA(
          embedding_dim=kw['vq_embedding_dims'],
          num_embeddings=kw['vq_num_embeddings'],
          commitment_cost=kw['vq_commitment_cost'], decay=kw['vq_decay'],
          name=f'vqvae_{i}') for i in range(n)]

    def encode_embedding(self, x):
      for i, c in enumerate(widths):
        x = Unit(c, kernel, stride, i < len(widths) - 1, f'conv_{i}')(x)
      if kw.get('use_time_compression_2x'):
        x = Unit(widths[-1], kernel, (2, 1, 1), False, 'conv_temporal')(x)
      for i in range(kw['extra_encode_conv_layers']):
        h = Unit(hidden, (1, 3, 3), (1, 1, 1), True,
                 f'encoder_res_0_{i}')(jax.nn.relu(x))
        x = x + Unit(kw['bot_channels'], (1, 1, 1), (1, 1, 1), False,
                     f'encoder_res_1_{i}')(h)
      return jnp.tanh(x) if kw.get('use_tanh') else x

    def quantize(self, x, is_training):
      x = x.reshape(x.shape[:-1] + (x.shape[-1] // n, n))
      outs = [vq(x[..., i], is_training) for i, vq in enumerate(self.vqs)]
      return (jnp.concatenate([o['quantize'] for o in outs], -1),
              jnp.stack([o['encoding_indices'] for o in outs], -1))

    def decode_embedding(self, x):
      for i in range(kw['extra_decode_conv_layers']):
        h = Unit(hidden, (1, 3, 3), (1, 1, 1), True,
                 f'decoder_res_0_{i}')(jax.nn.relu(x))
        x = x + Unit(kw['bot_channels'], (1, 1, 1), (1, 1, 1), False,
                     f'decoder_res_1_{i}')(h)
      if kw.get('use_time_compression_2x'):
        x = hk.Conv3DTranspose(widths[-1], kernel, (2, 1, 1),
                               name='decoder_temporal')(x)
      outs = list(reversed([3] + widths[:-1]))
      for i, c in enumerate(outs):
        target = [s * d for s, d in zip(stride, x.shape[1:4])]
        x = hk.Conv3DTranspose(c, kernel, stride, target,
                               name=f'decoder_{i}')(x)
        if i < len(outs) - 1:
          x = jax.nn.relu(x)
      if kw.get('last_linearity'):
        x = getattr(jax.nn, kw['last_linearity'])(x)
      return x

    def __call__(self, x, is_training):
      quantized, codes = self.quantize(self.encode_embedding(x), is_training)
      return self.decode_embedding(quantized), codes

  return hk.transform_with_state(lambda x, t: Codec()(x, t))


# The reflect-padded ('VALID') variant, with the output and latent
# nonlinearities, without time compression.
VALID_KWARGS = dict(TINY_KWARGS, padding='VALID', use_time_compression_2x=False,
                    use_tanh=True, last_linearity='sigmoid')


@pytest.mark.parametrize('kwargs', [TINY_KWARGS, VALID_KWARGS],
                         ids=['same_time2x', 'valid_tanh_sigmoid'])
def test_output_identical_to_a_haiku_network_of_the_releases_layout(
    tmp_path, kwargs):
  hk = pytest.importorskip('haiku')
  forward = _haiku_reference(hk, kwargs)
  apply = jax.jit(forward.apply, static_argnums=4)
  video = jax.random.uniform(jax.random.key(0), (2, 4, 16, 16, 3))
  params, state = jax.jit(forward.init, static_argnums=2)(
      jax.random.key(1), video, True)
  if kwargs is TINY_KWARGS:
    # Haiku's own paths are the ones the hand-written fixture lists.
    hand_params, hand_state = tiny_release_arrays()
    shapes = lambda t: jax.tree.map(np.shape, jax.tree.map(np.asarray, t))
    assert shapes(params) == shapes(hand_params)
    assert shapes(state) == shapes(hand_state)
  # One training step moves the codebooks and their EMA off their init.
  _, state = apply(params, state, None, video, True)
  params = jax.tree.map(
      lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape),
      params)
  path = write_release(tmp_path / 'hk.pkl', jax.device_get(params),
                       jax.device_get(state), kwargs)
  workdir = str(tmp_path / 'run')
  importer.import_release(path, workdir, base_config())
  codec = frozen.load_frozen_codec(workdir, with_params=True)

  (hk_recon, hk_codes), _ = apply(params, state, None, video, False)
  codes = codec.encode(video)
  np.testing.assert_array_equal(codes, hk_codes)
  np.testing.assert_allclose(codec.decode_latents(codec.codes_to_latents(
      codes)), hk_recon, rtol=1e-5, atol=1e-6)

  # A training step updates the codebooks as Haiku's EMA does.
  _, hk_state = apply(params, state, None, video, True)
  model = network.build_release_codec(codec.model_config)
  _, updated = model.apply(dict(codec.variables), video, train=True,
                           mutable=['vq_ema'])
  for i in range(2):
    np.testing.assert_allclose(
        updated['vq_ema']['quantizer']['codebook'][i],
        hk_state[f'{P}/~/vqvae_{i}']['embeddings'].T, rtol=1e-5, atol=1e-6)


def test_the_binary_imports_and_refuses_a_pickle_from_elsewhere(tmp_path):
  params, state = tiny_release_arrays()
  path = write_release(tmp_path / 'cr.pkl', params, state)
  args = ['--config=experiments/configs/codec.py:tiny', '--mode=import']
  run_main(args + [f'--workdir={tmp_path}/run',
                   f'--config.release.pickle={path}'])
  assert frozen.load_frozen_codec(str(tmp_path / 'run')).model_config[
      'architecture'] == 'release'
  with open(tmp_path / 'other.pkl', 'wb') as f:
    pickle.dump({'weights': [1, 2, 3]}, f)
  proc = run_main(args + [f'--workdir={tmp_path}/other',
                          f'--config.release.pickle={tmp_path}/other.pkl'],
                  check=False)
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert 'other.pkl' in proc.stderr
  assert not os.path.exists(tmp_path / 'other' / 'config.json')


def test_an_imported_codec_fine_tunes_and_resumes_as_the_release_network(
    imported, data_dir, tmp_path):
  """`--mode=train` from (and of) an imported run trains the release network
  from its weights, whatever preset `--config` names."""
  source, params, _ = imported
  config = codec_configs.get_config('tiny')  # cvision's own VQ-VAE preset.
  config.data.data_dir = data_dir
  config.train.steps = 2
  config.train.eval_every = 0
  config.train.init_from.workdir = source
  workdir = str(tmp_path / 'fine_tuned')
  modes.MODES['train'](config, workdir)
  tuned = frozen.load_frozen_codec(workdir, with_params=True)
  assert tuned.model_config.architecture == 'release'
  kernel = tuned.variables['params']['conv_0']['conv']['kernel']
  start = params[f'{ENC}/conv_0/conv3_d']['w']
  assert kernel.shape == start.shape
  assert 0 < np.abs(np.asarray(kernel) - start).max() < 0.1  # Moved a little.
  # Resuming the fine-tuned run (any preset again) goes on from step 2.
  config.train.steps = 3
  config.train.init_from.workdir = ''
  modes.MODES['train'](config, workdir)
  assert frozen.load_frozen_codec(workdir).step == 3
