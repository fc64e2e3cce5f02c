"""Run by tests/core/test_model_parallel.py with 8 CPU devices; prints JSON.

`step`: one train step of the tiny codec on a `(8, 1)` mesh and on a
`(4, 2)` mesh whose `model` axis shards the conv output channels; the losses,
the largest parameter difference, and the per-device bytes XLA's memory
analysis gives for the compiled state of each.
`memory PRESET...`: the per-device bytes of the paper-size codec's and
S3D's train state (parameters and Adam moments) under both meshes, from the
compiled initialisation alone (nothing is trained).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

# pylint: disable=g-import-not-at-top
import jax
import jax.numpy as jnp
import numpy as np

from cvision import projects
from cvision.core import optimizer as optimizer_lib
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from experiments.configs import codec as codec_configs
from experiments.configs import s3d as s3d_configs

MESHES = {'8x1': (8, 1), '4x2': (4, 2)}


def _mesh_config(config, shape):
  config = config.copy_and_resolve_references()
  config.mesh.shape = shape
  if shape[1] == 1:
    config.sharding.logical_axis_rules = ()
  return config


def _state_bytes(task, tx, spec, config, mesh):
  """Per-device bytes of the compiled, sharded train state (XLA's count)."""
  boxed = train_step_lib.abstract_train_state(task, tx, spec, config.seed)
  shardings = sharding.state_shardings(
      boxed, mesh, list(config.sharding.logical_axis_rules))
  # pylint: disable-next=protected-access
  boxed_init = train_step_lib._boxed_init
  init = jax.jit(lambda rng: sharding.unbox(boxed_init(task, tx, spec, rng)),
                 out_shardings=shardings)
  compiled = init.lower(jax.random.PRNGKey(config.seed)).compile()
  return int(compiled.memory_analysis().output_size_in_bytes)


def step():
  base = codec_configs.get_config('tiny,model_parallel')
  batch = {'video': np.random.default_rng(0).integers(
      0, 256, (8, 8, 32, 32, 3), dtype=np.uint8)}
  spec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch.items()}
  out = {}
  for name, shape in MESHES.items():
    config = _mesh_config(base, shape)
    mesh = sharding.make_mesh(config.mesh)
    task = projects.build_task(config)
    tx = optimizer_lib.make_optimizer(config.optimizer, config.train.steps)
    state, shardings = train_step_lib.create_train_state(
        task, tx, spec, config.seed, mesh,
        list(config.sharding.logical_axis_rules))
    step_fn = train_step_lib.make_train_step(
        task, tx, state_shardings=shardings, mesh=mesh)
    global_batch = jax.device_put(batch, sharding.batch_sharding(mesh))
    state, metrics = step_fn(state, global_batch)
    sharded = [str(s.spec) for s in jax.tree.leaves(shardings.params)
               if 'model' in str(s.spec)]
    out[name] = {
        'loss': float(metrics['loss']),
        'params': jax.tree.map(lambda x: np.asarray(x).tolist(),
                               jax.device_get(state.params)),
        'sharded_leaves': len(sharded),
        'state_bytes': _state_bytes(task, tx, spec, config, mesh),
    }
  a, b = (jax.tree.leaves(out[n].pop('params')) for n in MESHES)
  out['max_param_diff'] = max(float(np.max(np.abs(np.asarray(x) - y)))
                              for x, y in zip(a, b))
  return out


def memory(presets):
  out = {}
  for preset in presets:
    project, name = preset.split(':')
    configs = {'codec': codec_configs, 's3d': s3d_configs}[project]
    base = configs.get_config(f'{name},model_parallel')
    shape = {'codec': (8, 32, 256, 256, 3), 's3d': (8, 32, 224, 224, 3)}[
        project]
    out[preset] = {}
    for mesh_name, mesh_shape in MESHES.items():
      config = _mesh_config(base, mesh_shape)
      mesh = sharding.make_mesh(config.mesh)
      task = projects.build_task(config)
      spec = {k: jax.ShapeDtypeStruct(shape if k == 'video' else (8,),
                                      jnp.uint8 if k == 'video' else jnp.int32)
              for k in task.input_keys}
      tx = optimizer_lib.make_optimizer(config.optimizer, config.train.steps)
      out[preset][mesh_name] = _state_bytes(task, tx, spec, config, mesh)
  return out


if __name__ == '__main__':
  assert jax.device_count() == 8, jax.devices()
  result = step() if sys.argv[1] == 'step' else memory(sys.argv[2:])
  print('RESULT ' + json.dumps(result))
