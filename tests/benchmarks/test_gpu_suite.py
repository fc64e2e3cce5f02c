"""benchmarks/gpu_suite.sh: its time budget; (slow) every stage, tiny sizes."""
import os
import subprocess

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_SUITE = os.path.join(_ROOT, 'benchmarks', 'gpu_suite.sh')
_STAGES = ('environment', 'dataset', 'codec_train', 'aug_train', 'aug_eval',
           'codec_throughput', 'augmenter_cost', 's3d_speed',
           'codec_training', 'encode_prefetch', 'input_throughput')


def _run(tmp_path, **env):
  out = tmp_path / 'out'
  result = subprocess.run(
      ['bash', _SUITE, str(out), str(tmp_path / 'runs')],
      env={**os.environ, 'JAX_PLATFORMS': 'cpu', 'SUITE_SMOKE': '1', **env},
      capture_output=True, text=True, timeout=1800, check=False)
  assert result.returncode == 0, result.stderr
  return out, (out / 'suite.log').read_text()


def test_stages_that_the_budget_cannot_cover_are_skipped(tmp_path):
  out, log = _run(tmp_path, SUITE_BUDGET='30')
  # Every stage's limit (60 s and up) exceeds a 30 s budget: none runs.
  for stage in _STAGES:
    assert f'== {stage}: skipped (' in log
  assert 'exit' not in log
  assert sorted(os.listdir(out)) == ['suite.log']


@pytest.mark.slow
def test_tiny_pass_runs_every_stage_and_brings_back_the_report(tmp_path):
  out, log = _run(tmp_path, SUITE_BUDGET='3000', CODEC_LIMIT='600',
                  AUG_LIMIT='600', AUG_EVAL_LIMIT='600', BENCH_LIMIT='600',
                  INPUT_LIMIT='600')
  for stage in _STAGES:
    assert f'== {stage}: exit 0 after' in log, log[-3000:]
  assert {'suite.log', 'codec_metrics.jsonl', 'aug_metrics.jsonl',
          'augmenter_test.md', 'crop_grid.png'} <= set(os.listdir(out))
  assert '| crop |' in (out / 'augmenter_test.md').read_text()
