"""A `(4, 2)` mesh whose `model` axis shards the widest layers (the
`model_parallel` presets) takes the step of a `(8, 1)` mesh in about half
the per-device state memory (XLA's memory analysis of the compiled state).

Each test runs tests/core/model_parallel_probe.py with 8 CPU devices.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

PROBE = os.path.join(REPO_ROOT, 'tests', 'core', 'model_parallel_probe.py')


def _probe(*args):
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=8')
  proc = subprocess.run([sys.executable, PROBE, *args], capture_output=True,
                        text=True, env=env, cwd=REPO_ROOT, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')][-1]
  return json.loads(line[len('RESULT '):])


def test_model_axis_gives_the_same_step_in_less_memory():
  result = _probe('step')
  wide, narrow = result['4x2'], result['8x1']
  np.testing.assert_allclose(wide['loss'], narrow['loss'], rtol=1e-5)
  assert result['max_param_diff'] < 1e-5
  assert narrow['sharded_leaves'] == 0 and wide['sharded_leaves'] > 0
  # The tiny codec's last layer (3 channels) stays replicated: a bit more
  # than half.
  assert 0.45 < wide['state_bytes'] / narrow['state_bytes'] < 0.6


@pytest.mark.slow
def test_paper_size_codec_and_s3d_state_halves_per_device():
  # Compiles only the state's initialisation (about 30 s on 2 cores).
  result = _probe('memory', 'codec:cr236', 's3d:paper')
  for preset, sizes in result.items():
    ratio = sizes['4x2'] / sizes['8x1']
    assert 0.45 < ratio < 0.55, (preset, sizes)
