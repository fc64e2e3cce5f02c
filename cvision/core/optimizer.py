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
  warmup = int(config.get('warmup_steps', 0))
  if config.schedule == 'constant':
    main = optax.constant_schedule(config.learning_rate)
  else:
    main = optax.cosine_decay_schedule(
        config.learning_rate, max(total_steps - warmup, 1),
        alpha=config.get('end_value_fraction', 0.0))
  if warmup <= 0:
    return main
  ramp = optax.linear_schedule(0.0, config.learning_rate, warmup)
  return optax.join_schedules([ramp, main], [warmup])


def make_optimizer(config: ml_collections.ConfigDict,
                   total_steps: int) -> optax.GradientTransformation:
  """Clipping (optional) then Adam, AdamW or SGD with momentum.

  Args:
    config: `config.optimizer` with `name`, `learning_rate`, `schedule`,
      optional `warmup_steps`, `weight_decay`, `grad_clip_norm` (0 = off),
      `b1`, `b2`, `momentum`, `nesterov`.
    total_steps: the length of the run, for decaying schedules.
  """
  if config.name not in _OPTIMIZERS:
    raise ValueError(f'optimizer.name={config.name!r}: expected one of '
                     f'{_OPTIMIZERS}.')
  lr = make_schedule(config, total_steps)
  weight_decay = float(config.get('weight_decay', 0.0))
  if config.name == 'adam':
    opt = optax.adam(lr, b1=config.get('b1', 0.9), b2=config.get('b2', 0.999))
    if weight_decay:
      # Plain Adam with weight decay means L2 added to the gradient.
      opt = optax.chain(optax.add_decayed_weights(weight_decay), opt)
  elif config.name == 'adamw':
    opt = optax.adamw(lr, b1=config.get('b1', 0.9), b2=config.get('b2', 0.999),
                      weight_decay=weight_decay)
  else:
    opt = optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.sgd(lr, momentum=config.get('momentum', 0.9),
                  nesterov=config.get('nesterov', False)))
  clip = float(config.get('grad_clip_norm', 0.0))
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
