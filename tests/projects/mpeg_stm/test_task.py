"""The mpeg_stm task and config presets, on the tiny GOP dataset."""
import json
import os

import jax
import numpy as np
import pytest

from cvision.projects.mpeg_stm import task as mpeg_stm
from data_pipelines import sources
from experiments.configs import mpeg_stm as configs
from tests.conftest import main_args, run_main


def _config(presets, data_dir):
  config = configs.get_config(presets)
  config.data.data_dir = data_dir
  return config


def test_presets_pick_inputs(mpeg_data_dir):
  keys = lambda p: mpeg_stm.build_task(_config(p, mpeg_data_dir)).input_keys
  assert keys('tiny') == ('i_frames', 'accumulated_motion_vectors',
                          'accumulated_residuals', 'label')
  assert keys('tiny,no_accumulation') == ('i_frames', 'motion_vectors',
                                          'residuals', 'label')
  assert keys('tiny,i_only') == ('i_frames', 'label')
  assert keys('tiny,i_r') == ('i_frames', 'accumulated_residuals', 'label')
  assert _config('tiny,convlstm', '').model.temporal_cell == 'lstm'
  assert _config('fixed_threshold', '').model.learn_dynamics is False
  assert _config('cross', '').experiment == 'cross'
  with pytest.raises(ValueError, match='Unknown preset'):
    configs.get_config('i_only,fast')


def test_dataset_dir_follows_data_dir(mpeg_data_dir):
  config = _config('tiny', mpeg_data_dir)
  assert config.data.dataset_dir == os.path.join(mpeg_data_dir, 'mpeg_gops',
                                                 'tiny', '1.0.0')


def test_loss_on_a_real_batch(mpeg_data_dir):
  config = _config('tiny', mpeg_data_dir)
  task = mpeg_stm.build_task(config)
  source = sources.load_source(config.data, 'train')
  batch = {k: np.stack([source[i][k] for i in range(2)])
           for k in task.input_keys}
  # Jitted: eagerly every op of the scans compiles on its own.
  variables = jax.jit(task.init)(jax.random.PRNGKey(0), batch)
  assert set(variables) == {'params'}  # Costs are outputs, not state.
  loss, (metrics, collections) = jax.jit(task.loss)(
      variables['params'], {}, batch, jax.random.PRNGKey(1))
  assert np.isfinite(loss) and set(metrics) == {'loss', 'top1'}
  assert collections == {}


def test_bad_model_field_is_named(mpeg_data_dir):
  config = _config('tiny', mpeg_data_dir)
  config.model.modalities = ('mv',)
  with pytest.raises(ValueError, match='modalities'):
    mpeg_stm.build_task(config)
  config = _config('tiny', mpeg_data_dir)
  config.model.stm_channels = 3
  with pytest.raises(ValueError, match='stm_channels'):
    mpeg_stm.build_task(config)


def test_same_videos_trains_and_evaluates_on_moving_digits_videos(tmp_path):
  config = 'experiments/configs/mpeg_stm.py:same_videos,tiny'
  run = str(tmp_path / 'run')
  data_dir = str(tmp_path / 'data')
  run_main(main_args(config, run, data_dir))
  run_main(main_args(config, run, data_dir, '--mode=eval',
                     '--config.eval.num_batches=0'))
  with open(os.path.join(run, 'eval', 'mpeg_stm_test.json')) as f:
    result = json.load(f)
  assert result['num_videos'] == 16  # moving_digits/tiny's test split.
  assert os.path.isdir(os.path.join(data_dir, 'mpeg_gops',
                                    'moving_digits_tiny', '1.0.0'))


@pytest.mark.slow
def test_binary_train_eval_table(tmp_path, mpeg_data_dir):
  config = 'experiments/configs/mpeg_stm.py:tiny'
  run = str(tmp_path / 'runs' / 'all')
  run_main(main_args(config, run, mpeg_data_dir))
  run_main(main_args(config, run, mpeg_data_dir, '--mode=eval'))
  with open(os.path.join(run, 'eval', 'mpeg_stm_test.md')) as f:
    table = f.read()
  assert 'I+MV+R (accumulated)' in table
  proc = run_main(main_args(config, str(tmp_path / 'runs'), mpeg_data_dir,
                            '--mode=table'))
  assert '| all |' in proc.stdout
