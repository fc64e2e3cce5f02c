"""Mesh construction and rule-based parameter shardings."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import pytest
from jax.sharding import PartitionSpec as P

from cvision.core import sharding


def _mesh_config(shape, axes=('data', 'model')):
  return ml_collections.ConfigDict({'shape': shape, 'axes': axes})


def test_minus_one_takes_all_devices():
  mesh = sharding.make_mesh(_mesh_config((-1, 1)))
  assert mesh.shape == {'data': jax.device_count(), 'model': 1}


@pytest.mark.parametrize('shape, axes, message', [
    ((3, 5), ('data', 'model'), r'needs 15 devices'),
    ((-1, -1), ('data', 'model'), r'at most one -1'),
    ((-1,), ('batch',), r"must contain 'data'"),
    ((-1, 1), ('data',), r'same length'),
])
def test_bad_mesh_configs_are_named(shape, axes, message):
  with pytest.raises(ValueError, match=message):
    sharding.make_mesh(_mesh_config(shape, axes))


def test_batch_size_must_divide_over_data_axis():
  devices = jax.devices()[:1]
  mesh = sharding.make_mesh(_mesh_config((1, 1)), devices)
  sharding.check_batch_size(3, mesh)  # One device: any size works.


def test_rules_map_logical_names_and_leave_the_rest_replicated():
  mesh = sharding.make_mesh(_mesh_config((-1, 1)))
  boxed = {
      'kernel': nn.Partitioned(jax.ShapeDtypeStruct((4, 6), jnp.float32),
                               names=('embed_in', 'embed_out')),
      'bias': jax.ShapeDtypeStruct((6,), jnp.float32),
  }
  shardings = sharding.state_shardings(boxed, mesh, [('embed_out', 'model')])
  assert shardings['kernel'].spec == P(None, 'model')
  assert shardings['bias'].spec == P()
  replicated = sharding.state_shardings(boxed, mesh, [])
  assert replicated['kernel'].spec == P(None, None)
