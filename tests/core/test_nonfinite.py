"""A non-finite loss is caught at its step and nothing non-finite is saved.

The run: w starts at 1 and plain SGD (lr 0.3) on log(w) steps it to 0.7,
0.271, then -0.834 (step 3), so the loss of step 4 is log(negative) = NaN.
Checkpoints every 2 steps and logs every 5: before the on-device check, the
NaN was seen only at step 5, after step 4's NaN state had been saved.
"""
import os

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from cvision.core import trainer
from cvision.core.task import Task
from experiments.configs import autoencoder as autoencoder_configs


def _log_w_task():
  def init(rng, batch):
    del rng, batch
    return {'params': {'w': jnp.ones(())}}

  def loss(params, collections, batch, rng):
    del rng
    # The batch takes part (with weight 0) so the step reads real input.
    value = jnp.log(params['w']) + 0.0 * jnp.mean(batch['video'])
    return value, ({'loss': value}, collections)

  def evaluate(params, collections, batch):
    del collections
    return {'w': jnp.full(batch['video'].shape[:1], params['w'])}

  return Task(name='log_w', init=init, loss=loss, evaluate=evaluate,
              input_keys=('video',))


def _config(data_dir):
  config = autoencoder_configs.get_config('tiny')
  config.data.data_dir = data_dir
  config.optimizer.update(name='sgd', learning_rate=0.3, momentum=0.0,
                          schedule='constant')
  config.train.update(steps=8, log_every=5, checkpoint_every=2, eval_every=0)
  return config


def _saved_w(workdir):
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  steps = sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())
  with ocp.StandardCheckpointer() as checkpointer:
    return {step: float(checkpointer.restore(
        os.path.join(ckpt_dir, str(step), 'state'))['params']['w'])
            for step in steps}


def test_nan_is_caught_at_its_step_and_never_saved(tmp_path, data_dir):
  workdir = str(tmp_path / 'run')
  with pytest.raises(trainer.NonFiniteLossError,
                     match=r'not finite at step 4.*last good checkpoint is '
                     r'step 2 in'):
    trainer.train_and_evaluate(_log_w_task(), _config(data_dir), workdir)
  saved = _saved_w(workdir)
  assert sorted(saved) == [2]  # Step 4's checkpoint was never written.
  np.testing.assert_allclose(saved[2], 0.7 - 0.3 / 0.7, rtol=1e-5)
