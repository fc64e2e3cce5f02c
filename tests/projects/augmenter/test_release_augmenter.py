"""Importing the compressed_vision release's augmentation network (the flip).

No release file may be downloaded, so the pickles here are written in the
release's layout at a tiny size: the codec of
`tests/projects/codec/test_release_import.py` and an augmentation network
whose Haiku paths, names and shapes are those the release's
`NeuralTransformation` creates (listed by hand below), random values. Where
dm-haiku is installed, a Haiku network written here from the release's
structure gives the reference outputs (output identity).
"""
import json
import os
import pickle

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cvision import projects
from cvision.projects.augmenter import downstream
from cvision.projects.augmenter import frozen
from cvision.projects.augmenter import modes as augmenter_modes
from cvision.projects.augmenter.release import config as release_config
from cvision.projects.augmenter.release import importer
from cvision.projects.augmenter.release import network
from cvision.projects.codec import frozen as frozen_codec
from cvision.projects.codec import modes as codec_modes
from cvision.projects.codec.release import importer as codec_importer
from cvision.projects.codec.release import safe_pickle
from experiments.configs import augmenter as augmenter_configs
from experiments.configs import codec as codec_configs
from experiments.configs import s3d as s3d_configs
from tests.conftest import run_main
from tests.projects.codec import test_release_import as codec_release

NT = 'neural_transformation'
XL = f'{NT}/transformer_xl'
# An MLP of 6, 5 hidden units; 2 blocks of 2 heads, keys of 3, values of 4,
# a feed-forward of 7: every size distinct, so a transposed or misplaced
# array cannot fit.
TINY_AUGM_KWARGS = {'channels': (6, 5), 'num_hidden_layers': 2,
                    'num_attention_heads': 2, 'key_size': 3, 'value_size': 4,
                    'intermediate_size': 7}
# The tiny release codec (2 strided layers, time halved) turns the tiny
# 8x32x32 clips into 4x8x8 codes of 2 x 4 = 8 channels.
C = 8
FRAMES, CELLS = 4, 64
D_MODEL = 2 * C


def tiny_augm_params(seed=0, kwargs=None):
  """`augm_params` in the release's Haiku layout for TINY_AUGM_KWARGS."""
  kw = dict(TINY_AUGM_KWARGS, **(kwargs or {}))
  rng = np.random.default_rng(seed)

  def normal(*shape):
    return (rng.normal(size=shape) * 0.3).astype(np.float32)

  heads = kw['num_attention_heads']
  sizes = [1, *kw['channels'], C]  # The flip: one parameter per clip.
  # Positive MLP biases: no ReLU of the tiny MLP is dead for every input,
  # so the flip parameter reaches the output.
  params = {f'{NT}/mlp/~/linear_{i}': {'w': normal(a, b),
                                       'b': np.abs(normal(b)) + 0.1}
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}
  params[XL] = {'position_embedding': normal(FRAMES, CELLS, D_MODEL)}
  for i in range(kw['num_hidden_layers']):
    for axis in ('time', 'space'):
      attn = f'{XL}/h{i}_{axis}_attn'
      params[f'{attn}/query'] = {'w': normal(D_MODEL, heads * kw['key_size'])}
      params[f'{attn}/key'] = {'w': normal(D_MODEL, heads * kw['key_size'])}
      params[f'{attn}/value'] = {
          'w': normal(D_MODEL, heads * kw['value_size'])}
      params[f'{attn}/linear'] = {
          'w': normal(heads * kw['value_size'], D_MODEL), 'b': normal(D_MODEL)}
    for norm in ('ln_time', 'ln_space', 'ln_2'):
      params[f'{XL}/h{i}_{norm}'] = {'scale': 1 + normal(D_MODEL),
                                     'offset': normal(D_MODEL)}
    params[f'{XL}/h{i}_mlp/linear'] = {
        'w': normal(D_MODEL, kw['intermediate_size']),
        'b': normal(kw['intermediate_size'])}
    params[f'{XL}/h{i}_mlp/linear_1'] = {
        'w': normal(kw['intermediate_size'], D_MODEL), 'b': normal(D_MODEL)}
  params[f'{XL}/ln_f'] = {'scale': 1 + normal(D_MODEL),
                          'offset': normal(D_MODEL)}
  return params


def augm_config_dict(kwargs=None, network_name='transformer'):
  return ml_collections.ConfigDict({'experiment_kwargs': {'config': {
      'augmentation': {'network': network_name,
                       'kwargs': dict(kwargs or TINY_AUGM_KWARGS)},
      'data': {'num_frames': 8}}}})


def write_release(path, augm_params, augm_config=None, augm_state=None,
                  seed=0):
  """A release flip file: the tiny codec and `augm_params`."""
  params, state = codec_release.tiny_release_arrays(seed)
  return codec_release.write_release(
      path, params, state, augm_params=augm_params,
      augm_state={} if augm_state is None else augm_state,
      augm_config=augm_config or augm_config_dict())


def flip_config(codec_workdir):
  config = augmenter_configs.get_config('tiny,flip')
  config.codec.workdir = codec_workdir
  return config


def import_both(path, tmp):
  """The codec, then the augmentation network, of one release file."""
  codec_workdir = str(tmp / 'codec')
  codec_importer.import_release(path, codec_workdir,
                                codec_configs.get_config('tiny'))
  workdir = str(tmp / 'flip')
  importer.import_release_augmenter(path, workdir, flip_config(codec_workdir))
  return codec_workdir, workdir


@pytest.fixture(scope='module')
def imported(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('release_flip')
  augm_params = tiny_augm_params()
  path = write_release(tmp / 'flip.pkl', augm_params)
  codec_workdir, workdir = import_both(path, tmp)
  return path, codec_workdir, workdir, augm_params


def _latents(batch=2, frames=FRAMES, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(
      size=(batch, frames, 8, 8, C)), jnp.float32)


def test_every_release_array_lands_in_its_flax_variable(imported):
  _, _, workdir, hk = imported
  p = frozen.load_frozen_augmenter(workdir).params
  for i, name in enumerate(['mlp_0', 'mlp_1', 'mlp_out']):
    np.testing.assert_array_equal(p[name]['kernel'],
                                  hk[f'{NT}/mlp/~/linear_{i}']['w'])
    np.testing.assert_array_equal(p[name]['bias'],
                                  hk[f'{NT}/mlp/~/linear_{i}']['b'])
  t = p['transformer']
  np.testing.assert_array_equal(t['position_embedding'],
                                hk[XL]['position_embedding'])
  for i in range(2):
    block = t[f'block_{i}']
    for axis in ('time', 'space'):
      attn = f'{XL}/h{i}_{axis}_attn'
      for name in ('query', 'key', 'value'):
        assert set(block[f'{axis}_attention'][name]) == {'kernel'}  # No bias.
        np.testing.assert_array_equal(
            block[f'{axis}_attention'][name]['kernel'],
            hk[f'{attn}/{name}']['w'])
      np.testing.assert_array_equal(block[f'{axis}_attention']['out']['bias'],
                                    hk[f'{attn}/linear']['b'])
    for flax_name, hk_name in (('ln_time', 'ln_time'),
                               ('ln_space', 'ln_space'), ('ln_ffw', 'ln_2')):
      np.testing.assert_array_equal(block[flax_name]['scale'],
                                    hk[f'{XL}/h{i}_{hk_name}']['scale'])
      np.testing.assert_array_equal(block[flax_name]['bias'],
                                    hk[f'{XL}/h{i}_{hk_name}']['offset'])
    np.testing.assert_array_equal(block['ffw_in']['kernel'],
                                  hk[f'{XL}/h{i}_mlp/linear']['w'])
    np.testing.assert_array_equal(block['ffw_out']['kernel'],
                                  hk[f'{XL}/h{i}_mlp/linear_1']['w'])
  np.testing.assert_array_equal(t['ln_out']['bias'], hk[f'{XL}/ln_f']['offset'])
  # One Flax variable per release array.
  assert len(jax.tree.leaves(p)) == sum(len(v) for v in hk.values()) == 49


def test_imported_workdir_is_an_ordinary_flip_augmenter(imported):
  path, codec_workdir, workdir, _ = imported
  augmenter = frozen.load_frozen_augmenter(workdir)
  assert (augmenter.family, augmenter.latent_channels,
          augmenter.param_dim) == ('flip', C, 1)
  assert augmenter.codec_workdir == codec_workdir
  assert augmenter.model_config.release.to_dict() == {
      'mlp_features': [6, 5], 'num_layers': 2, 'num_heads': 2, 'key_size': 3,
      'value_size': 4, 'ffw_size': 7, 'position_frames': FRAMES,
      'position_cells': CELLS}
  with open(os.path.join(workdir, 'config.json')) as f:
    record = json.load(f)['release_import']
  assert record['pickle'] == os.path.abspath(path)
  assert record['inert_options'] == {'hidden_size': 128, 'num_heads': 4,
                                     'lambda_v': 0.0001}
  codec = frozen_codec.load_frozen_codec(codec_workdir, with_params=True)
  augmenter.check_codec(codec)
  # The flip goes through the codec's own latents, back to a video.
  video = np.random.default_rng(1).integers(0, 256, (1, 8, 32, 32, 3),
                                            dtype=np.uint8)
  latents = codec.codes_to_latents(codec.encode_videos(video))
  assert latents.shape == (1, FRAMES, 8, 8, C)
  flipped = frozen.apply_learned_augmentation(
      augmenter, codec.encode_videos(video), np.ones((1, 1), np.float32),
      codebook=codec.codebook)
  assert flipped.shape == latents.shape
  assert codec.decode_latents(flipped).shape == (1, 8, 32, 32, 3)
  assert not np.allclose(flipped, augmenter.apply(latents, np.zeros((1, 1))))


def test_s3d_code_augmentation_flips_with_the_imported_network(imported):
  _, codec_workdir, workdir, _ = imported
  config = s3d_configs.get_config().code_augment
  config.update({'train': 'learned', 'eval': 'learned', 'eval_views': 2,
                 'augmenter_workdir': workdir})
  codec = frozen_codec.load_frozen_codec(codec_workdir)
  aug = downstream.from_config(config, codec=codec)
  augmenter = aug.augmenter
  x = _latents()
  plain, mirrored = aug.eval_inputs(x)
  np.testing.assert_allclose(plain, augmenter.apply(x, np.zeros((2, 1))),
                             rtol=1e-6)
  np.testing.assert_allclose(mirrored, augmenter.apply(x, np.ones((2, 1))),
                             rtol=1e-6)
  assert aug.eval_view_flipped() == [False, True]
  trained, flipped = aug.train_input(x, jax.random.key(0))
  assert trained.shape == x.shape and flipped.shape == (2,)


def test_clips_off_the_training_grid(imported):
  _, _, workdir, _ = imported
  augmenter = frozen.load_frozen_augmenter(workdir)
  p = np.ones((1, 1), np.float32)
  # Longer clips go through in windows of the table's 4 frames; shorter ones
  # read its first rows.
  x = _latents(batch=1, frames=8)
  out = augmenter.apply(x, p)
  np.testing.assert_allclose(out[:, :4], augmenter.apply(x[:, :4], p),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out[:, 4:], augmenter.apply(x[:, 4:], p),
                             rtol=1e-5, atol=1e-6)
  assert augmenter.apply(x[:, :2], p).shape == (1, 2, 8, 8, C)
  with pytest.raises(ValueError, match=r'64 cells .* 4x4 = 16 cells'):
    augmenter.apply(x[:, :, :4, :4], p)


# -- Bad files and settings: named, nothing written. ------------------------


def _refused(tmp_path, match, error=importer.ReleaseAugmenterImportError,
             config=None, **file_kwargs):
  path = write_release(tmp_path / 'bad.pkl',
                       file_kwargs.pop('augm_params', tiny_augm_params()),
                       **file_kwargs)
  codec_workdir = str(tmp_path / 'codec')
  if not os.path.exists(codec_workdir):
    codec_importer.import_release(path, codec_workdir,
                                  codec_configs.get_config('tiny'))
  workdir = tmp_path / 'run'
  with pytest.raises(error, match=match):
    importer.import_release_augmenter(
        path, str(workdir), config or flip_config(codec_workdir))
  assert not os.path.exists(workdir / 'config.json')


def test_unused_missing_and_misshapen_arrays_are_named(tmp_path):
  extra = tiny_augm_params()
  extra[f'{XL}/h2_ln_2'] = {'scale': np.ones(D_MODEL, np.float32)}
  _refused(tmp_path, r'h2_ln_2/scale', augm_params=extra)
  missing = tiny_augm_params()
  del missing[f'{XL}/h1_space_attn/linear']['b']
  _refused(tmp_path, r"h1_space_attn/linear'/'b'", augm_params=missing)
  misshapen = tiny_augm_params()
  misshapen[f'{XL}/h0_mlp/linear_1']['w'] = np.zeros((D_MODEL, 7), np.float32)
  _refused(tmp_path, r"block_0'\]\['ffw_out'\]\['kernel'\]",
           augm_params=misshapen)
  _refused(tmp_path, r'does not use: neural_transformation/~/state/x',
           augm_state={f'{NT}/~/state': {'x': np.zeros(2)}})


def test_unknown_and_unsupported_options_are_named(tmp_path):
  for kwargs, match in (({'chanels': (6, 5)}, 'chanels'),
                        ({'output_video_shape': (8, 8, C)},
                         'output_video_shape')):
    _refused(tmp_path, match,
             augm_config=augm_config_dict(dict(TINY_AUGM_KWARGS, **kwargs)))
  _refused(tmp_path, r"network='resnet'.*only 'transformer'",
           augm_config=augm_config_dict(network_name='resnet'))


def test_a_codec_only_file_and_another_codec_are_refused(tmp_path):
  params, state = codec_release.tiny_release_arrays()
  codec_only = codec_release.write_release(tmp_path / 'cr.pkl', params, state)
  with pytest.raises(importer.ReleaseAugmenterImportError,
                     match='cr.pkl holds no augmentation network'):
    importer.import_release_augmenter(codec_only, str(tmp_path / 'a'),
                                      flip_config(''))
  # A codec imported from another file (other weights) is not this one's.
  other_codec = str(tmp_path / 'other_codec')
  codec_importer.import_release(codec_only, other_codec,
                                codec_configs.get_config('tiny'))
  path = write_release(tmp_path / 'flip.pkl', tiny_augm_params())
  with pytest.raises(importer.ReleaseAugmenterImportError,
                     match=r'imported from .*cr.pkl, not from .*flip.pkl'):
    importer.import_release_augmenter(path, str(tmp_path / 'b'),
                                      flip_config(other_codec))
  with pytest.raises(ValueError, match='import that codec first'):
    importer.import_release_augmenter(path, str(tmp_path / 'c'),
                                      flip_config(''))
  assert not any(os.path.exists(tmp_path / d) for d in 'abc')


def test_a_family_other_than_the_networks_is_refused(tmp_path):
  config = augmenter_configs.get_config('tiny,crop')
  config.codec.workdir = str(tmp_path / 'codec')
  path = write_release(tmp_path / 'bad.pkl', tiny_augm_params())
  codec_importer.import_release(path, config.codec.workdir,
                                codec_configs.get_config('tiny'))
  _refused(tmp_path, r"takes 1 parameter\(s\) per clip; "
           r"augment.family='crop' has 4", config=config)


def test_modes_use_an_imported_runs_own_model(imported, tmp_path):
  _, codec_workdir, workdir, _ = imported
  config = flip_config(codec_workdir)
  assert 'architecture' not in config.model  # cvision's own network.
  run = release_config.run_config(config, workdir)
  assert run.model.architecture == 'release'
  assert run.model.release.position_cells == CELLS
  assert 'architecture' not in config.model  # Left as it was.
  # Any other run keeps the config's model (checked at restore).
  assert release_config.run_config(config, str(tmp_path)) is config


def test_an_existing_run_is_not_overwritten(imported):
  path, codec_workdir, workdir, _ = imported
  before = open(os.path.join(workdir, 'config.json')).read()
  with pytest.raises(FileExistsError, match='already holds a run'):
    importer.import_release_augmenter(path, workdir,
                                      flip_config(codec_workdir))
  assert open(os.path.join(workdir, 'config.json')).read() == before


class _Hostile:

  def __reduce__(self):
    return (os.system, ('touch /tmp/cvision_release_flip_pwned',))


def test_a_hostile_pickle_is_refused_naming_the_class(tmp_path):
  augm = tiny_augm_params()
  augm[XL]['position_embedding'] = _Hostile()
  path = write_release(tmp_path / 'evil.pkl', augm)
  with pytest.raises(safe_pickle.ReleaseFileError,
                     match=r'evil\.pkl names (posix|os)\.system'):
    importer.import_release_augmenter(path, str(tmp_path / 'run'),
                                      flip_config(str(tmp_path / 'codec')))
  assert not os.path.exists('/tmp/cvision_release_flip_pwned')


def test_import_mode_of_the_augmenter(tmp_path):
  path = write_release(tmp_path / 'flip.pkl', tiny_augm_params())
  codec_workdir = str(tmp_path / 'codec')
  codec_importer.import_release(path, codec_workdir,
                                codec_configs.get_config('tiny'))
  config = flip_config(codec_workdir)
  with pytest.raises(ValueError, match='--config.release.pickle'):
    augmenter_modes.MODES['import'](config, str(tmp_path / 'run'))
  config.release.pickle = path
  out = augmenter_modes.MODES['import'](config, str(tmp_path / 'run'))
  assert out['family'] == 'flip'
  assert frozen.load_frozen_augmenter(str(tmp_path / 'run')).latent_channels == C


# -- Output identity against Haiku, where it is installed. ------------------


def _haiku_reference(hk, kw):
  """The release's NeuralTransformation in Haiku, written from its structure.

  The module names and call order are the release's, so its parameter paths
  are too; dropout at the release's rate 0.0 (it runs in training mode).
  """
  heads, key_size, value_size = (kw['num_attention_heads'], kw['key_size'],
                                 kw['value_size'])

  def dropout(x):
    return hk.dropout(hk.next_rng_key(), 0.0, x)

  def layer_norm(name):
    return hk.LayerNorm(axis=-1, create_scale=True, create_offset=True,
                        name=name)

  class Attention(hk.Module):

    def __init__(self, axis, name):
      super().__init__(name=name)
      self.axis = axis

    def __call__(self, x):
      b, t, l, d = x.shape

      def project(size, name):
        return hk.Linear(heads * size, with_bias=False, name=name)(x).reshape(
            b, t, l, heads, size)

      q, k, v = (project(key_size, 'query'), project(key_size, 'key'),
                 project(value_size, 'value'))
      if self.axis == 'time':
        w = jax.nn.softmax(jnp.einsum('btlhd,bTlhd->blhtT', q, k)
                           * key_size**-0.5)
        out = jnp.einsum('blhtT,bTlhd->btlhd', dropout(w), v)
      else:
        w = jax.nn.softmax(jnp.einsum('btlhd,btLhd->bthlL', q, k)
                           * key_size**-0.5)
        out = jnp.einsum('bthlL,btLhd->btlhd', dropout(w), v)
      return hk.Linear(d)(out.reshape(b, t, l, heads * value_size))

  class DenseBlock(hk.Module):

    def __call__(self, x):
      y = jax.nn.gelu(hk.Linear(kw['intermediate_size'])(x))
      return hk.Linear(x.shape[-1])(dropout(y))

  class TransformerXL(hk.Module):

    def __init__(self, length):
      super().__init__(name='transformer_xl')
      self.length = length

    def __call__(self, h):
      positions = hk.get_parameter(
          'position_embedding', list(self.length) + [h.shape[-1]],
          init=hk.initializers.TruncatedNormal(stddev=0.02))
      h = dropout(h + positions[:h.shape[1], :h.shape[2]])
      for i in range(kw['num_hidden_layers']):
        h = h + dropout(Attention('time', f'h{i}_time_attn')(
            layer_norm(f'h{i}_ln_time')(h)))
        h = h + dropout(Attention('space', f'h{i}_space_attn')(
            layer_norm(f'h{i}_ln_space')(h)))
        h = h + dropout(DenseBlock(name=f'h{i}_mlp')(
            layer_norm(f'h{i}_ln_2')(h)))
      return layer_norm('ln_f')(h)

  class NeuralTransformation(hk.Module):

    def __call__(self, video, augmentation):
      b, t, c = video.shape[0], video.shape[1], video.shape[-1]
      mlp = hk.nets.MLP(tuple(kw['channels']) + (c,))
      e = mlp(augmentation.reshape(b, -1)).reshape(b, 1, 1, c)
      tokens = video.reshape(b, t, -1, c)
      e = e.repeat(tokens.shape[1], 1).repeat(tokens.shape[2], 2)
      out = TransformerXL((tokens.shape[1], tokens.shape[2]))(
          jnp.concatenate((e, tokens), -1))[..., -c:]
      return out.reshape(video.shape)

  return hk.transform(lambda v, p: NeuralTransformation()(v, p))


def test_output_identical_to_a_haiku_network_of_the_releases_layout(tmp_path):
  hk = pytest.importorskip('haiku')
  forward = _haiku_reference(hk, TINY_AUGM_KWARGS)
  # One clip twice, unflipped and flipped.
  latents = jnp.tile(_latents(batch=1), (2, 1, 1, 1, 1))
  flips = jnp.array([[0.0], [1.0]])
  # Haiku's own paths and shapes are the ones the hand-written fixture lists
  # (from shapes alone: running Haiku's init costs seconds).
  shapes = lambda t: jax.tree.map(lambda x: tuple(x.shape), t)
  assert shapes(jax.eval_shape(forward.init, jax.random.key(1), latents,
                               flips)) == shapes(tiny_augm_params())
  # The fixture's random values, not an init's (unit scales, zero offsets
  # and biases would hide mistakes).
  params = tiny_augm_params(seed=5)
  path = write_release(tmp_path / 'hk.pkl', params)
  _, workdir = import_both(path, tmp_path)
  augmenter = frozen.load_frozen_augmenter(workdir)
  expected = jax.jit(forward.apply)(params, jax.random.key(3), latents, flips)
  out = augmenter.apply(latents, flips)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
  # The flip parameter reaches the output.
  assert not np.allclose(out[0], out[1], atol=1e-3)


def test_module_names_follow_the_release_kwargs():
  assert release_config.module_name('transformer', {}) == NT
  assert release_config.module_name('transformer', {'name': 'flip'}) == 'flip'
  fields = release_config.network_fields('transformer', {}, (16, 1024))
  # The release's defaults: 1 attention head (its num_heads is unused).
  assert (fields['num_heads'], fields['mlp_features'],
          fields['ffw_size']) == (1, (64, 64, 64), 128)
  model = network.ReleaseAugmentationNetwork(**fields, dtype=jnp.float32)
  assert importer.latent_grid(model.position_cells) == (32, 32)
  assert importer.latent_grid(12) == (3, 4)


@pytest.mark.slow
def test_s3d_trains_and_evaluates_on_codes_flipped_by_the_release_network(
    imported, data_dir, tmp_path):
  """The imported codec encodes the tiny clips; S3D trains on their codes
  with learned flips and evaluates the clip and its flip (2-4 minutes
  on 2 shared cores, most of it compiling S3D's steps)."""
  _, codec_workdir, workdir, _ = imported
  encode = codec_configs.get_config('tiny')
  encode.data.data_dir = data_dir
  encode.encode.output_dir = str(tmp_path / 'codes')
  codec_modes.encode(encode, codec_workdir)
  config = s3d_configs.get_config('tiny,codes,learned_flips_eval')
  config.data.data_dir = data_dir
  config.data.dataset_dir = str(tmp_path / 'codes')
  config.codec.workdir = codec_workdir
  config.code_augment.augmenter_workdir = workdir
  config.train.steps = 1
  s3d_workdir = str(tmp_path / 's3d')
  assert projects.train(config, s3d_workdir)['step'] == 1
  projects.modes(config)['eval'](config, s3d_workdir)
  with open(os.path.join(s3d_workdir, 'eval', 's3d_test.json')) as f:
    result = json.load(f)
  assert [r['num_clips'] for r in result['rows']] == [1, 2]
  assert all(np.isfinite(r['loss']) for r in result['rows'])


def test_the_binary_refuses_a_codec_only_file_in_one_line(tmp_path):
  params, state = codec_release.tiny_release_arrays()
  path = codec_release.write_release(tmp_path / 'cr.pkl', params, state)
  proc = run_main(['--config=experiments/configs/augmenter.py:tiny,flip',
                   '--mode=import', f'--workdir={tmp_path}/run',
                   f'--config.release.pickle={path}',
                   f'--config.codec.workdir={tmp_path}/codec'], check=False)
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert 'cr.pkl holds no augmentation network' in proc.stderr
  assert not os.path.exists(tmp_path / 'run' / 'config.json')


@pytest.mark.slow
def test_the_augmenter_evaluates_and_fine_tunes_the_imported_network(
    data_dir, tmp_path):
  path = write_release(tmp_path / 'flip.pkl', tiny_augm_params())
  codec_workdir, workdir = import_both(path, tmp_path)
  config = flip_config(codec_workdir)  # cvision's architecture: replaced.
  config.data.data_dir = data_dir
  projects.modes(config)['eval'](config, workdir)
  with open(os.path.join(workdir, 'eval', 'augmenter_test.json')) as f:
    (row,) = json.load(f)['rows']
  assert row['family'] == 'flip' and row['num_videos'] == 4
  for key in ('ssim', 'ssim_plain', 'ssim_code_space'):
    assert -1 <= row[key] <= 1
  before = frozen.load_frozen_augmenter(workdir).params
  # Fine-tuning from the imported weights goes through the core.
  config = release_config.run_config(config, workdir)
  config.train.steps = 1
  projects.train(config, workdir)
  after = frozen.load_frozen_augmenter(workdir)
  assert after.step == 1
  assert not np.allclose(after.params['mlp_out']['kernel'],
                         before['mlp_out']['kernel'])
