"""Optimizer and learning-rate schedule from config, built with optax."""
from __future__ import annotations

from typing import Any, Callable

import jax
import ml_collections
import optax

_OPTIMIZERS = ('adam', 'adamw', 'sgd')
_SCHEDULES = ('constant', 'cosine')


def make_schedule(config: ml_collections.ConfigDict,
                  total_steps: int) -> optax.Schedule:
  """Linear warm-up, then constant or cosine decay to `end_value`."""
  if config.schedule not in _SCHEDULES:
    raise ValueError(f'optimizer.schedule={config.schedule!r}: expected one '
                     f'of {_SCHEDULES}.')
  warmup = int(config.warmup_steps)
  if config.schedule == 'constant':
    main = optax.constant_schedule(config.learning_rate)
  else:
    main = optax.cosine_decay_schedule(
        config.learning_rate, max(total_steps - warmup, 1),
        alpha=config.end_value_fraction)
  if warmup <= 0:
    return main
  ramp = optax.linear_schedule(0.0, config.learning_rate, warmup)
  return optax.join_schedules([ramp, main], [warmup])


def make_optimizer(config: ml_collections.ConfigDict,
                   total_steps: int) -> optax.GradientTransformation:
  """Clipping (optional) then Adam, AdamW or SGD with momentum.

  Args:
    config: `config.optimizer` (its fields and defaults:
      experiments/configs/base.py).
    total_steps: the length of the run, for decaying schedules.
  """
  if config.name not in _OPTIMIZERS:
    raise ValueError(f'optimizer.name={config.name!r}: expected one of '
                     f'{_OPTIMIZERS}.')
  lr = make_schedule(config, total_steps)
  weight_decay = float(config.weight_decay)
  if config.name == 'adam':
    opt = optax.adam(lr, b1=config.b1, b2=config.b2)
    if weight_decay:
      # Plain Adam with weight decay means L2 added to the gradient.
      opt = optax.chain(optax.add_decayed_weights(weight_decay), opt)
  elif config.name == 'adamw':
    opt = optax.adamw(lr, b1=config.b1, b2=config.b2,
                      weight_decay=weight_decay)
  else:
    opt = optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.sgd(lr, momentum=config.momentum,
                  nesterov=config.nesterov))
  clip = float(config.grad_clip_norm)
  if clip > 0:
    opt = optax.chain(optax.clip_by_global_norm(clip), opt)
  return opt


def freeze(tx: optax.GradientTransformation,
           frozen: Callable[[Any], Any] | None
           ) -> optax.GradientTransformation:
  """`tx` for the trainable parameters; no update at all for the frozen ones.

  Args:
    tx: the optimizer.
    frozen: None (everything trains), or `params -> tree of bool`, True for
      the parameters that must not change (`Task.frozen`).
  """
  if frozen is None:
    return tx
  # optax.partition keeps optimizer state for the 'train' group only.
  return optax.partition(
      {'train': tx, 'frozen': optax.set_to_zero()},
      lambda params: jax.tree.map(lambda f: 'frozen' if f else 'train',
                                  frozen(params)))
