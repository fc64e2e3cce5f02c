"""Reading parts of another run's checkpoint (frozen models, warm starts)."""
import jax.numpy as jnp
import numpy as np
import pytest

from cvision.core import checkpointing
from tests.core import test_warm_start as saved_runs


def _run(tmp_path, step=7):
  params = {'encoder': {'kernel': jnp.arange(12.0).reshape(3, 4)},
            'decoder': {'bias': jnp.full((5,), 3.0)}}
  collections = {'codebook': {'embedding': jnp.full((2, 4), 0.5)}}
  saved_runs._save(tmp_path, saved_runs._state(params, collections, step),
                   task='codec')


def test_reads_only_the_selected_subtrees_as_numpy(tmp_path):
  _run(tmp_path)
  saved = checkpointing.read_saved_variables(
      str(tmp_path), expect_task='codec',
      select=lambda tree: {'collections': tree['collections'],
                           'params': {'decoder': tree['params']['decoder']}})
  assert (saved.step, saved.task) == (7, 'codec')
  assert saved.directory == str(tmp_path / 'checkpoints')
  # Nothing but what was asked for: no encoder, no optimizer state.
  assert set(saved.variables) == {'collections', 'params'}
  assert set(saved.variables['params']) == {'decoder'}
  bias = saved.variables['params']['decoder']['bias']
  assert isinstance(bias, np.ndarray)
  np.testing.assert_array_equal(bias, np.full((5,), 3.0))
  np.testing.assert_array_equal(
      saved.variables['collections']['codebook']['embedding'],
      np.full((2, 4), 0.5))


def test_default_reads_params_and_collections_of_the_latest_step(tmp_path):
  _run(tmp_path, step=7)
  saved = checkpointing.read_saved_variables(str(tmp_path))
  assert saved.step == 7
  assert set(saved.variables) == {'params', 'collections'}
  np.testing.assert_array_equal(saved.variables['params']['encoder']['kernel'],
                                np.arange(12.0).reshape(3, 4))


def test_errors_name_the_run_the_step_and_the_task(tmp_path):
  _run(tmp_path)
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match="holds a 'codec' run, not 'augmenter'"):
    checkpointing.read_saved_variables(str(tmp_path), expect_task='augmenter')
  with pytest.raises(FileNotFoundError,
                     match=r'step 3 .*\[7\]\)\. Re-encode'):
    checkpointing.read_saved_variables(str(tmp_path), step=3,
                                       missing_step_hint='Re-encode.')
  with pytest.raises(FileNotFoundError, match='No checkpoints in'):
    checkpointing.read_saved_variables(str(tmp_path / 'missing'))
  (tmp_path / 'empty' / 'checkpoints').mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match='No checkpoint in'):
    checkpointing.read_saved_variables(str(tmp_path / 'empty'))
