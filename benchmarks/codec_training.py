r"""Codec training throughput: step time, XLA's FLOPs per step, MFU.

  python benchmarks/codec_training.py                       # codec.py:cpu
  nice -n 10 python benchmarks/codec_training.py --presets=cpu,cr256

Each preset's train step is the one `--mode=train` runs (`cvision.core.
train_step.make_train_step` on the codec task, the preset's optimizer), on
clips of the preset's training shape (`cpu`: random 4-frame crops of 64x64;
the paper presets: 32x256x256), batch `--batch` (default 1 at the paper
presets, the preset's own at `cpu`). Random data: speed does not depend on
it. The step is timed in interleaved rounds across presets
(`benchmarks/rounds.py`, median and spread), its floating-point operations
counted by XLA on the compiled program (`cost_analysis`), so

  achieved TFLOP/s = FLOPs per step / median step time,
  MFU = achieved / the device's peak.

Peaks: this machine's CPU is measured here (a float32 matmul's rate, the
best of a few calls: what XLA reaches on this CPU's dense kernel); the
accelerators' are their datasheets' dense figures for the compute dtype the
paper presets train in (bf16), for a run there (`gpu_suite.sh`) and for the
"step time at 100 % and 40 % MFU" columns, which say what a step would take.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import rounds as rounds_lib
from cvision.core import optimizer as optimizer_lib
from cvision.core import sharding
from cvision.core import train_step as train_step_lib
from cvision.projects.codec import task as codec_task
from experiments.configs import codec as codec_config

_PRESETS = flags.DEFINE_list('presets', ['cpu'], 'codec.py presets.')
_BATCH = flags.DEFINE_integer('batch', 0, 'Batch (0: the preset\'s own at '
                              'CPU presets, 1 at the paper presets).')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Timed rounds.')
_WARMUP = flags.DEFINE_integer('warmup', 1, 'Untimed steps first (the step '
                               'is compiled ahead; 0 saves a paper-size '
                               'step of minutes on a CPU).')
_DTYPE = flags.DEFINE_string('compute_dtype', '', 'Compute dtype (default: '
                             'float32 on a CPU, where bf16 is no faster, '
                             'else the preset\'s).')

# Dense peak TFLOP/s: (name, TFLOP/s, what).
ACCELERATOR_PEAKS = (
    ('H100 SXM', 989.0, 'bf16 dense'),
    ('TPU v4', 275.0, 'bf16'),
    ('TPU v5e', 197.0, 'bf16'),
)


# moving_digits config of a preset -> its clips' (T, H, W).
CLIP_SHAPES = {'tiny': (8, 32, 32), 'small': (16, 64, 64),
               'paper': (32, 256, 256)}


def cpu_matmul_tflops(size: int = 2048, calls: int = 5) -> float:
  """This CPU's float32 matmul rate, best of `calls`, in TFLOP/s."""
  x = jnp.ones((size, size), jnp.float32)
  matmul = jax.jit(lambda a: a @ a)
  jax.block_until_ready(matmul(x))
  best = float('inf')
  for _ in range(calls):
    start = time.perf_counter()
    jax.block_until_ready(matmul(x))
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best / 1e12


def device_peak_tflops() -> tuple[float, str]:
  """The peak of the device running this, and where it comes from."""
  kind = jax.devices()[0].device_kind
  if jax.default_backend() == 'cpu':
    return cpu_matmul_tflops(), 'this CPU, measured f32 matmul'
  for name, peak, what in ACCELERATOR_PEAKS:
    if name.split()[0].lower() in kind.lower() and (
        name.split()[-1].lower() in kind.lower()):
      return peak, f'{name} {what} (datasheet)'
  return float('nan'), f'{kind}: no peak in the table'


def make_step(preset: str, batch: int, dtype: str):
  """(a train step with no arguments, its compiled program, clip shape)."""
  config = codec_config.get_config(preset)
  dataset = config.data.builder_kwargs.config
  t, h, w = CLIP_SHAPES[dataset]
  t = config.data.train_clip_frames or t
  batch = batch or (1 if dataset == 'paper' else config.data.batch_size)
  config.train.compute_dtype = dtype or config.train.compute_dtype
  task = codec_task.build_task(config)
  mesh = sharding.make_mesh(config.mesh)
  spec = {'video': jax.ShapeDtypeStruct((batch, t, h, w, 3), jnp.uint8)}
  tx = optimizer_lib.make_optimizer(config.optimizer, config.train.steps)
  state, shardings = train_step_lib.create_train_state(
      task, tx, spec, 0, mesh, list(config.sharding.logical_axis_rules))
  step = train_step_lib.make_train_step(
      task, tx, state_shardings=shardings, mesh=mesh,
      compute_dtype_name=config.train.compute_dtype)
  video = jax.device_put(
      np.random.default_rng(0).integers(0, 256, spec['video'].shape,
                                        dtype=np.uint8),
      sharding.batch_sharding(mesh))
  program = rounds_lib.compiled(step, state, {'video': video})
  holder = {'state': state}

  def call():
    # The state is donated: carry the new one into the next call.
    holder['state'], metrics = program(holder['state'], {'video': video})
    return metrics

  return call, program, (batch, t, h, w), config.train.compute_dtype


def main(argv):
  del argv
  on_cpu = jax.default_backend() == 'cpu'
  dtype = _DTYPE.value or ('float32' if on_cpu else '')
  peak, peak_what = device_peak_tflops()
  print(f'device: {jax.devices()[0].device_kind} ({jax.default_backend()}); '
        f'peak {peak:.3f} TFLOP/s ({peak_what}); {_ROUNDS.value} '
        f'interleaved rounds; load {rounds_lib.load()}')
  rows = {p: make_step(p, _BATCH.value, dtype) for p in _PRESETS.value}
  timings = rounds_lib.interleaved(
      {p: call for p, (call, _, _, _) in rows.items()}, _ROUNDS.value,
      warmup=_WARMUP.value)
  accel = ' | '.join(f'{n} s at 100% / 40% MFU' for n, _, _ in
                     ACCELERATOR_PEAKS)
  print(f'| preset | clips (B, T, H, W) | dtype | step s (median) | spread s '
        f'| clips/s | GFLOP/step | step MiB | TFLOP/s | MFU | {accel} |')
  print('|---|---|---|' + '---:|' * (8 + len(ACCELERATOR_PEAKS)))
  for preset, (_, program, shape, row_dtype) in rows.items():
    t = timings[preset]
    flop = rounds_lib.gflop(program) * 1e9
    achieved = flop / t.median / 1e12
    ideal = ' | '.join(f'{flop / (p * 1e12):.3g} / {flop / (0.4 * p * 1e12):.3g}'
                       for _, p, _ in ACCELERATOR_PEAKS)
    print(f'| {preset} | {shape} | {row_dtype} | {t.median:.3f} | {t.spread} '
          f'| {shape[0] / t.median:.3f} | {flop / 1e9:.1f} | '
          f'{rounds_lib.memory_mib(program):.0f} | {achieved:.4f} | '
          f'{achieved / peak:.1%} | {ideal} |')
  print(f'load at the end {rounds_lib.load()}')


if __name__ == '__main__':
  app.run(main)
