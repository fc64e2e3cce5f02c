"""Warm start (stage-wise training): which leaves are copied, kept, refused."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvision.core import checkpointing
from cvision.core import warm_start
from cvision.core.train_state import TrainState


def _state(params, collections, step=0):
  return TrainState(step=jnp.asarray(step, jnp.int32), params=params,
                    opt_state=optax.adam(1e-3).init(params),
                    collections=collections, rng=jax.random.key_data(
                        jax.random.key(0)))


def _save(directory, state, task='stage1'):
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      state)
  checkpointer = checkpointing.Checkpointer(
      str(directory / 'checkpoints'), keep=2, task_name=task,
      abstract_state=abstract)
  checkpointer.save(state, force=True)
  checkpointer.close()


def _stage1(tmp_path, step=7):
  params = {'backbone': {'kernel': jnp.full((3, 4), 2.0)},
            'head': {'bias': jnp.full((5,), 3.0)}}
  collections = {'batch_stats': {'mean': jnp.full((4,), 0.5)}}
  _save(tmp_path, _state(params, collections, step))


def _stage2_state(head_classes=5):
  params = {'backbone': {'kernel': jnp.zeros((3, 4))},
            'head': {'bias': jnp.zeros((head_classes,))},
            'memory': {'proj': jnp.ones((4, 2))}}
  collections = {'batch_stats': {'mean': jnp.zeros((4,))}}
  return _state(params, collections, step=0)


def test_copies_shared_leaves_keeps_new_ones_and_resets_the_optimizer(
    tmp_path):
  _stage1(tmp_path)
  fresh = _stage2_state()
  state, report = warm_start.warm_start(fresh, str(tmp_path))
  np.testing.assert_array_equal(state.params['backbone']['kernel'],
                                np.full((3, 4), 2.0))
  np.testing.assert_array_equal(state.params['head']['bias'],
                                np.full((5,), 3.0))
  np.testing.assert_array_equal(state.collections['batch_stats']['mean'],
                                np.full((4,), 0.5))
  # The new part keeps its initial values; step and optimizer are fresh.
  np.testing.assert_array_equal(state.params['memory']['proj'],
                                np.ones((4, 2)))
  assert int(state.step) == 0
  assert state.opt_state is fresh.opt_state
  assert report.step == 7
  assert set(report.copied) == {"params['backbone']['kernel']",
                                "params['head']['bias']",
                                "collections['batch_stats']['mean']"}
  assert report.kept == ["params['memory']['proj']"]


def test_a_shape_mismatch_names_the_leaf_unless_skipped(tmp_path):
  _stage1(tmp_path)
  with pytest.raises(warm_start.WarmStartError,
                     match=r"params\['head'\]\['bias'\].*\(5,\).*\(8,\)"):
    warm_start.warm_start(_stage2_state(head_classes=8), str(tmp_path))
  state, report = warm_start.warm_start(
      _stage2_state(head_classes=8), str(tmp_path), skip_mismatched=True)
  assert report.skipped == ["params['head']['bias']"]
  np.testing.assert_array_equal(state.params['head']['bias'], np.zeros(8))
  np.testing.assert_array_equal(state.params['backbone']['kernel'],
                                np.full((3, 4), 2.0))


def test_a_run_of_another_model_or_an_empty_folder_is_refused(tmp_path):
  _stage1(tmp_path / 'a')
  other = _state({'encoder': {'w': jnp.zeros((2,))}}, {})
  with pytest.raises(warm_start.WarmStartError, match='shares no parameter'):
    warm_start.warm_start(other, str(tmp_path / 'a'))
  with pytest.raises(warm_start.WarmStartError, match='no checkpoints/'):
    warm_start.warm_start(other, str(tmp_path / 'missing'))
  with pytest.raises(warm_start.WarmStartError, match='step 3'):
    warm_start.warm_start(_stage2_state(), str(tmp_path / 'a'), step=3)


def test_params_under_nests_a_whole_model_as_a_submodule(tmp_path):
  # An S3D classification run -> the 'backbone' of a bigger model; the
  # source's classifier has no place in the new model and is not read in.
  backbone = {'conv': {'kernel': jnp.full((2, 3), 4.0)}}
  _save(tmp_path, _state({**backbone, 'logits': {'bias': jnp.ones((8,))}},
                         {'batch_stats': {'mean': jnp.full((3,), 0.25)}}))
  fresh = _state({'backbone': {'conv': {'kernel': jnp.zeros((2, 3))}},
                  'head': {'bias': jnp.zeros((8,))}},
                 {'batch_stats': {'mean': jnp.zeros((3,))}})
  # Without nesting no path matches.
  with pytest.raises(warm_start.WarmStartError, match='shares no parameter'):
    warm_start.warm_start(
        _state({'backbone': {'conv': {'kernel': jnp.zeros((2, 3))}}}, {}),
        str(tmp_path))
  state, report = warm_start.warm_start(fresh, str(tmp_path),
                                        params_under='backbone')
  np.testing.assert_array_equal(state.params['backbone']['conv']['kernel'],
                                np.full((2, 3), 4.0))
  np.testing.assert_array_equal(state.params['head']['bias'], np.zeros(8))
  np.testing.assert_array_equal(state.collections['batch_stats']['mean'],
                                np.full((3,), 0.25))
  assert report.kept == ["params['head']['bias']"]
