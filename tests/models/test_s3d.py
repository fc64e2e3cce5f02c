"""Tests for cvision.models.s3d (tiny widths; shapes via jax.eval_shape)."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvision.models import code_embedding
from cvision.models import s3d

RGB_THW = (8, 64, 64)
GRIDS = {'rgb': RGB_THW, 'quarter': (8, 16, 16), 'eighth': (8, 8, 8)}
# Channels a code net sees: N * D of the codec (any value works).
IN_CHANNELS = {'rgb': 3, 'quarter': 8, 'eighth': 16}
WIDTH = 0.125
NUM_CLASSES = 5


# Modules carry no defaults (the configs do); these are the test's own.
_TEST_FIELDS = dict(width_multiplier=WIDTH, min_channels=8, gating=False,
                    stem=s3d.StemConfig(), head='video', dropout_rate=0.5,
                    input_projection=0, input_correlation=0,
                    input_correlation_only=False)


def _s3d(num_classes=NUM_CLASSES, **overrides):
  return s3d.S3D(num_classes, **{**_TEST_FIELDS, **overrides})


def _model(grid, **kwargs):
  stem = s3d.stem_for_input(GRIDS[grid], RGB_THW)
  return _s3d(stem=stem, **kwargs)


def _shapes(model, thw, channels, batch=2):
  """(logits, endpoints) shapes and abstract variables, without compute."""
  x = jax.ShapeDtypeStruct((batch, *thw, channels), jnp.float32)
  variables = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False), x)
  out = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=False, return_features=True),
      variables, x)
  return out, variables


def test_stem_tables():
  rgb = s3d.stem_for_input((32, 224, 224))
  assert rgb == s3d.StemConfig()
  assert rgb.strides == ((2, 2, 2), (1, 2, 2), (1, 2, 2), (2, 2, 2))
  quarter = s3d.stem_for_input((32, 56, 56))
  assert quarter.strides == ((2, 1, 1), (1, 1, 1), (1, 2, 2), (2, 2, 2))
  eighth = s3d.stem_for_input((32, 28, 28))
  assert eighth.strides == ((2, 1, 1), (1, 1, 1), (1, 1, 1), (2, 2, 2))
  assert (eighth.conv1_channels, eighth.conv2_channels) == (64, 64)
  custom = s3d.stem_for_input((32, 28, 28), conv1_channels=128,
                              conv2_channels=96)
  assert (custom.conv1_channels, custom.conv2_channels) == (128, 96)


@pytest.mark.parametrize('thw, rgb, match', [
    ((32, 448, 448), (32, 224, 224), 'larger'),
    ((32, 75, 75), (32, 224, 224), 'power of two'),
    ((16, 56, 56), (32, 224, 224), 'time'),
    ((32, 56, 28), (32, 224, 224), 'different factors'),
])
def test_stem_for_input_rejects_unmatchable_grids(thw, rgb, match):
  with pytest.raises(ValueError, match=match):
    s3d.stem_for_input(thw, rgb)


def test_code_nets_reproduce_rgb_internal_shapes():
  (_, rgb_ends), _ = _shapes(_model('rgb'), GRIDS['rgb'], 3)
  for grid in ('quarter', 'eighth'):
    (_, ends), _ = _shapes(_model(grid), GRIDS[grid], IN_CHANNELS[grid])
    # From the second max-pool on (all of Mixed_3b..5c) shapes are identical.
    after_stem = [k for k in rgb_ends if k.startswith(('Mixed', 'MaxPool_4',
                                                        'MaxPool_5'))]
    assert 'Mixed_3b' in after_stem and len(after_stem) == 11
    for key in after_stem + ['features', 'pre_logits']:
      assert ends[key].shape == rgb_ends[key].shape, (grid, key)
  # 256 * 0.125 channels, with the two 32-channel branches clamped to 8.
  assert rgb_ends['Mixed_3b'].shape == (2, 4, 8, 8, 40)
  assert rgb_ends['features'].shape == (2, 1, 2, 2, 128)  # 1024 * 0.125
  assert s3d.output_thw(RGB_THW) == (1, 2, 2)


@pytest.mark.parametrize('grid', list(GRIDS))
@pytest.mark.parametrize('head', ['video', 'frame'])
def test_output_shapes(grid, head):
  (logits, ends), _ = _shapes(_model(grid, head=head), GRIDS[grid],
                              IN_CHANNELS[grid], batch=3)
  t = GRIDS[grid][0]
  expected = (3, NUM_CLASSES) if head == 'video' else (3, t, NUM_CLASSES)
  assert logits.shape == expected
  assert logits.dtype == jnp.float32
  assert ends['features'].shape[1:4] == (1, 2, 2)


@pytest.mark.parametrize('t', [8, 12, 16])
def test_frame_head_length_equals_input_frames(t):
  model = _s3d(head='frame')
  (logits, ends), _ = _shapes(model, (t, 32, 32), 3, batch=1)
  assert logits.shape == (1, t, NUM_CLASSES)
  assert ends['features'].shape[1] == s3d.output_thw((t, 32, 32))[0]


def test_upsample_time_is_nearest_repeat():
  x = jnp.arange(3.)[None, :, None]  # [1, T'=3, 1]
  np.testing.assert_array_equal(
      s3d.upsample_time(x, 6)[0, :, 0], [0, 0, 1, 1, 2, 2])
  np.testing.assert_array_equal(
      s3d.upsample_time(x, 4)[0, :, 0], [0, 0, 1, 2])


def _paths(tree):
  return {'/'.join(k.key for k in path)
          for path, _ in jax.tree_util.tree_leaves_with_path(nn.unbox(tree))}


def test_gating_adds_only_gate_params():
  _, plain = _shapes(_model('rgb'), RGB_THW, 3)
  _, gated = _shapes(_model('rgb', gating=True), RGB_THW, 3)
  plain, gated = _paths(plain['params']), _paths(gated['params'])
  assert plain < gated
  gate_modules = {p.rsplit('/', 2)[0] for p in gated - plain}
  assert all(p.endswith('gate') for p in gate_modules)
  # One after Conv3d_2c, one per branch of the nine mixed blocks.
  assert len(gate_modules) == 1 + 9 * 4
  assert len(gated - plain) == 2 * len(gate_modules)  # Kernel and bias.


def test_params_have_logical_axis_names():
  _, variables = _shapes(_model('rgb', gating=True), RGB_THW, 3)
  specs = nn.get_partition_spec(variables)['params']
  conv = specs['Conv3d_1a_7x7']['spatial']['conv']['kernel']
  assert tuple(conv) == s3d.CONV_AXES
  assert tuple(specs['logits']['kernel']) == s3d.CLASSIFIER_AXES
  gate = specs['Mixed_3b']['Branch_0_gate']['dense']['kernel']
  assert tuple(gate) == s3d.GATE_AXES
  assert tuple(specs['Mixed_5c']['Branch_3_1x1']['bn']['scale']) == (
      'embed_out',)


def _numpy_init(model, x):
  """Variables with `model.init`'s shapes, filled on the host.

  `model.init` on this 2-core CPU spends ~40 s compiling ~120 threefry
  initialisers; the shapes are what matter here (init itself is covered by
  the eval_shape tests), so use fan-in scaled normals, BN scale 1, rest 0.
  """
  rng = np.random.default_rng(1)
  abstract = nn.unbox(jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False), x))

  def fill(path, leaf):
    name = path[-1].key
    if leaf.ndim > 1:  # Conv and dense kernels: [..., fan_in, fan_out].
      fan_in = np.prod(leaf.shape[:-1])
      return rng.normal(size=leaf.shape).astype(np.float32) / np.sqrt(fan_in)
    return np.full(leaf.shape, name in ('scale', 'var'), np.float32)

  return jax.tree_util.tree_map_with_path(fill, abstract)


def test_adam_lowers_cross_entropy_on_codes():
  """Codes at 1/4 of a (8, 64, 64) pixel grid -> embedding -> S3D-G."""
  rng = np.random.default_rng(0)
  books = rng.normal(size=(2, 16, 4)).astype(np.float32)  # N=2, K=16, D=4.
  # A 16x16 grid keeps 2x2 positions at the end: with 1x1 and a batch of 4,
  # BatchNorm statistics are too noisy for a few steps to make progress.
  codes = rng.integers(0, 16, size=(4, 8, 16, 16, 2)).astype(np.uint16)
  labels = np.array([0, 1, 2, 3])
  model = _s3d(4, gating=True, dropout_rate=0.,
                  stem=s3d.stem_for_input((8, 16, 16), RGB_THW))
  embed = code_embedding.CodeEmbedding(codebooks=books)
  x = embed.apply({}, codes)
  variables = _numpy_init(model, x)
  params, batch_stats = variables['params'], variables['batch_stats']
  tx = optax.adam(1e-2)
  opt_state = tx.init(params)

  def loss_fn(params, batch_stats):
    logits, new_state = model.apply(
        {'params': params, 'batch_stats': batch_stats}, x, train=True,
        mutable=['batch_stats'])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return loss.mean(), new_state['batch_stats']

  # Optimisation level 0 halves XLA's CPU compile time of this deep graph.
  @functools.partial(jax.jit,
                     compiler_options={'xla_backend_optimization_level': 0})
  def step(params, batch_stats, opt_state):
    (loss, batch_stats), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(params, batch_stats)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  losses = []
  for _ in range(6):
    params, batch_stats, opt_state, loss = step(params, batch_stats,
                                                opt_state)
    losses.append(float(loss))
  assert np.isfinite(losses).all()
  assert losses[-1] < losses[0] - 0.3, losses
  # Running statistics were updated by the train-mode passes.
  mean0 = variables['batch_stats']['Mixed_3b']['Branch_0_1x1']['bn']['mean']
  mean = batch_stats['Mixed_3b']['Branch_0_1x1']['bn']['mean']
  assert not np.allclose(mean0, mean)


def test_input_projection_narrows_what_the_stem_reads():
  """A wide embedding is projected to `input_projection` channels first."""
  model = _model('quarter', input_projection=4)
  (logits, ends), variables = _shapes(model, GRIDS['quarter'], 256)
  assert logits.shape == (2, NUM_CLASSES)
  assert ends['Input_projection_1x1x1'].shape == (2, 8, 16, 16, 4)
  params = variables['params']
  assert params['Input_projection_1x1x1']['kernel'].shape == (256, 4)
  # The stem's first conv now reads 4 channels, not 256.
  (_, plain_ends), plain = _shapes(_model('quarter'), GRIDS['quarter'], 256)
  first = lambda p: jax.tree.leaves(p['Conv3d_1a_7x7'])
  assert max(x.size for x in first(params)) * 64 == max(
      x.size for x in first(plain['params']))
  for name in ('Conv3d_1a_7x7', 'Mixed_5c'):
    assert ends[name].shape == plain_ends[name].shape


def test_input_correlation_adds_channels_and_keeps_shapes():
  model = _model('quarter', input_correlation=1)
  (_, ends), variables = _shapes(model, GRIDS['quarter'], 8)
  (_, plain_ends), plain = _shapes(_model('quarter'), GRIDS['quarter'], 8)
  # The first (1x7x7) kernel reads 8 + 9 channels instead of 8.
  first = lambda v: _first_kernel(v, 'Conv3d_1a_7x7').shape
  assert first(variables)[-2] == 17 and first(plain)[-2] == 8
  for name in ('Conv3d_1a_7x7', 'Mixed_5c'):
    assert ends[name].shape == plain_ends[name].shape


def test_input_correlation_only_reads_the_correlations_alone():
  model = _model('quarter', input_correlation=1, input_correlation_only=True)
  (_, ends), variables = _shapes(model, GRIDS['quarter'], 8)
  # The first kernel reads the 9 correlations and none of the 8 channels
  # they were computed from (the cosine itself is tested in
  # test_code_embedding).
  assert _first_kernel(variables, 'Conv3d_1a_7x7').shape[-2] == 9
  (_, plain_ends), _ = _shapes(_model('quarter'), GRIDS['quarter'], 8)
  assert ends['Mixed_5c'].shape == plain_ends['Mixed_5c'].shape
  with pytest.raises(ValueError, match='needs input_correlation >= 1'):
    _shapes(_model('quarter', input_correlation_only=True),
            GRIDS['quarter'], 8)


def _first_kernel(variables, layer):
  kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(
      variables['params'][layer]) if 'kernel' in jax.tree_util.keystr(path)]
  return kernels[0]


def test_full_first_conv_keeps_shapes_with_one_7x7x7_kernel():
  stem = s3d.stem_for_input(GRIDS['quarter'], RGB_THW, conv1_separable=False)
  assert stem.strides == s3d.stem_for_input(GRIDS['quarter'], RGB_THW).strides
  model = _s3d(stem=stem)
  (_, ends), variables = _shapes(model, GRIDS['quarter'], 8)
  (_, sep_ends), sep = _shapes(_model('quarter'), GRIDS['quarter'], 8)
  for name in ('Conv3d_1a_7x7', 'MaxPool_2a_3x3', 'features'):
    assert ends[name].shape == sep_ends[name].shape, name
  first = nn.unbox(variables['params']['Conv3d_1a_7x7'])
  assert first['conv']['kernel'].shape == (7, 7, 7, 8, 8)  # 64 * 0.125 out.
  assert set(nn.unbox(sep['params']['Conv3d_1a_7x7'])) == {'spatial',
                                                           'temporal'}
  small = s3d.stem_for_input(GRIDS['quarter'], RGB_THW, conv1_separable=False,
                             conv1_kernel=(3, 3, 3))
  model = _s3d(stem=small)
  (_, small_ends), variables = _shapes(model, GRIDS['quarter'], 8)
  first = nn.unbox(variables['params']['Conv3d_1a_7x7'])
  assert first['conv']['kernel'].shape == (3, 3, 3, 8, 8)
  assert small_ends['features'].shape == ends['features'].shape
  with pytest.raises(ValueError, match='conv1_kernel'):
    s3d.StemConfig(conv1_kernel=(3, 3))


@pytest.mark.slow  # Trains two stems: ~1.5 min on 2 cores.
def test_full_first_conv_can_tell_the_direction_of_a_shift():
  """One linear filter over (t, x) responds to rightward, not leftward motion.

  The kernel sums the input along the space-time diagonal x = t; a dot
  moving right one cell a frame lies on it, the same dot moving left crosses
  it once. A separable conv applies its ReLU before mixing time, so no
  single filter of it is such a diagonal.
  """
  t, w = 8, 16
  stem = s3d.StemConfig((1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1),
                        conv1_separable=False)
  model = _s3d(stem=stem)
  dot = lambda step: np.stack([np.eye(w)[None, (4 + step * i) % w]
                               for i in range(t)])  # [T, 1, W]
  x = np.zeros((2, t, 1, w, 1), np.float32)
  x[0, :, 0, :, 0] = dot(1)[:, 0]
  x[1, :, 0, :, 0] = dot(-1)[:, 0]
  variables = model.init(jax.random.key(0), jnp.asarray(x), train=False)
  kernel = np.zeros((7, 7, 7, 1, 8), np.float32)
  for i in range(7):
    kernel[i, 3, i, 0, :] = 1.0  # Offsets (dt, dx) = (i - 3, i - 3).
  params = nn.unbox(variables['params'])
  params['Conv3d_1a_7x7']['conv']['kernel'] = jnp.asarray(kernel)
  _, ends = model.apply({**variables, 'params': params}, jnp.asarray(x),
                        train=False, return_features=True)
  peak = np.asarray(ends['Conv3d_1a_7x7']).max(axis=(1, 2, 3, 4))
  np.testing.assert_allclose(peak[0], 7 / np.sqrt(1 + 1e-3), rtol=1e-5)
  np.testing.assert_allclose(peak[1], 1 / np.sqrt(1 + 1e-3), rtol=1e-5)
