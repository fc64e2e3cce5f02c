"""The memory's extra inference cost, counted by XLA."""
import pytest

from cvision.projects.collab_memory import modes as collab_memory
from experiments.configs import collab_memory as cm_configs

VIDEO = (16, 32, 32, 3)  # Tiny: 16 frames of 32x32.


def test_memory_adds_a_small_fraction_to_the_backbone_flops():
  cm = collab_memory.inference_flops(cm_configs.get_config('tiny,cm'), VIDEO)
  plain = collab_memory.inference_flops(
      cm_configs.get_config('tiny,multi_clip'), VIDEO)
  # Same backbone on the same test clips, whatever the head.
  assert plain['backbone'] == cm['backbone'] > 0
  # Without memory, the head (pool + classifier) is all that is added.
  assert plain['backbone'] <= plain['model'] < 1.01 * plain['backbone']
  # With it: more than the plain head, and a few percent of the backbone
  # (the memory clips are the test clips here: eval.memory_clips == num_clips).
  assert plain['model'] < cm['model'] < 1.1 * cm['backbone']


@pytest.mark.slow
def test_separate_memory_clips_cost_their_backbone_passes():
  config = cm_configs.get_config('tiny,cm')
  shared = collab_memory.inference_flops(config, VIDEO)
  config.eval.memory_clips = 2 * config.eval.num_clips
  separate = collab_memory.inference_flops(config, VIDEO)
  # Twice as many clips for the memory: about two more backbone passes'
  # worth per test pass.
  assert separate['model'] > 2.5 * shared['backbone']
