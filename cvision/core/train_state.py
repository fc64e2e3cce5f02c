"""The one train state every model trains with."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as one pytree.

  Attributes:
    step: scalar int32, the number of optimizer updates applied.
    params: the trainable parameters (float32, unboxed).
    opt_state: the optax optimizer state.
    collections: mutable model state other than parameters (batch statistics,
      codebook EMA statistics, ...), keyed by collection name.
    rng: the base PRNG key; the step's key is `fold_in(rng, step)`, so
      randomness is a function of (seed, step) and a resumed run repeats it.
  """
  step: jax.Array
  params: PyTree
  opt_state: PyTree
  collections: PyTree
  rng: jax.Array

  def variables(self) -> dict[str, PyTree]:
    """The Flax variables dict: `{'params': ..., **collections}`."""
    return {'params': self.params, **self.collections}
