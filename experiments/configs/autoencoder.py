r"""A small video autoencoder on the generated moving-digits clips.

The core's smoke test (no results page):
  python experiments/main.py --config=experiments/configs/autoencoder.py \
      --workdir=/tmp/ae
Presets (after the colon, comma-separated): `tiny` (seconds, for tests).
"""
from experiments.configs import base


def _tiny(c):
  c.data.builder_kwargs.config = 'tiny'
  c.data.batch_size = 8
  c.model.channels = (4, 8)
  c.train.steps = 6
  c.train.log_every = 2
  c.train.checkpoint_every = 2
  c.train.eval_batches = 1


PRESETS = {'tiny': _tiny}


def get_config(arg: str | None = None):
  c = base.get_base_config()
  c.task = 'autoencoder'
  c.model.channels = (16, 32)
  c.data.batch_size = 16
  c.train.steps = 300
  c.train.log_every = 25
  c.train.checkpoint_every = 100
  c.optimizer.learning_rate = 2e-3
  for preset in base.parse_presets(arg, PRESETS):
    PRESETS[preset](c)
  return c
