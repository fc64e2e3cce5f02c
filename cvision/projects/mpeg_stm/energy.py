r"""Operation counts and energy of hybrid (dense + spiking) networks.

Dense layers cost multiply-accumulates (MACs); a layer whose input is binary
spikes costs only accumulates (ACs), one per synaptic operation that a spike
actually triggers: `ACs = spike rate x synaptic ops`, the rate measured on
data. Energy uses the 45 nm CMOS figures the paper uses (Horowitz 2014):

    E = 4.6 pJ x MACs + 0.9 pJ x ACs

Modules record their counts with `record(module, macs=..., acs=...)` into the
`costs` collection (`[B]` per example, summed over calls); `totals` sums a
`costs` tree into per-example MACs and ACs, and `energy_joules` prices them.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

PJ_PER_MAC = 4.6
PJ_PER_AC = 0.9
COLLECTION = 'costs'


def conv_macs(output_spatial: Sequence[int], kernel_size: Sequence[int],
              in_features: int, out_features: int,
              feature_group_count: int = 1) -> int:
  """MACs of one conv producing `output_spatial` positions (one example)."""
  return (math.prod(output_spatial) * math.prod(kernel_size)
          * in_features // feature_group_count * out_features)


def dense_macs(tokens: int, in_features: int, out_features: int) -> int:
  """MACs of a dense layer applied to `tokens` vectors (one example)."""
  return tokens * in_features * out_features


def attention_macs(num_queries: int, num_keys: int, dim: int) -> int:
  """MACs of softmax attention itself: `Q K^T` and the weighted sum of V.

  The projections are dense layers; count them with `dense_macs`.
  """
  return 2 * num_queries * num_keys * dim


def energy_joules(macs, acs):
  """Energy in joules of `macs` MACs and `acs` ACs (numbers or arrays)."""
  return (macs * PJ_PER_MAC + acs * PJ_PER_AC) * 1e-12


def record(module: nn.Module, *, batch_size: int, macs=0.0, acs=0.0) -> None:
  """Adds per-example `macs` and `acs` (scalars or `[B]`) to `costs`.

  A no-op unless the `costs` collection is mutable in this `apply`.
  """
  for name, value in (('macs', macs), ('acs', acs)):
    value = jnp.broadcast_to(jnp.asarray(value, jnp.float32), (batch_size,))
    module.sow(COLLECTION, name, value, init_fn=lambda: 0.0,
               reduce_fn=lambda total, new: total + new)


def totals(costs: Any) -> dict[str, jax.Array]:
  """Sums a `costs` collection into `{'macs': [B], 'acs': [B]}`."""
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(costs):
    name = getattr(path[-1], 'key', None)
    if name in ('macs', 'acs'):
      out[name] = out.get(name, 0.0) + leaf
  return {'macs': out.get('macs', jnp.zeros(())),
          'acs': out.get('acs', jnp.zeros(()))}


def xla_flops(fn, *args) -> float:
  """FLOPs XLA's cost model counts for `fn(*args)` (a cross-check)."""
  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis.get('flops', 0.0))
