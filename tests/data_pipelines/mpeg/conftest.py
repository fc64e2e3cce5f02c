"""Fixtures of the MPEG tests: one encoded clip, one tiny GOP dataset."""
import numpy as np
import pytest

from data_pipelines.generated import moving_digits as md
from data_pipelines.mpeg import encoding
from data_pipelines.mpeg import extract

TRANSLATE_RIGHT = 0
CLIP = md.MovingDigitsConfig(num_frames=24, height=64, width=64)


def first_example_of_class(config, label, seed=7):
  for index in range(200):
    example = md.generate_example(config, seed, index)
    if example['label'] == label:
      return example
  raise AssertionError(f'no example of class {label}')


@pytest.fixture(scope='session')
def right_moving_clip():
  """24 frames of 64x64, a digit moving right, as MPEG-4 bytes + frames."""
  example = first_example_of_class(CLIP, TRANSLATE_RIGHT)
  return example['video'], encoding.encode_mpeg4(example['video'])


@pytest.fixture(scope='session')
def right_moving_gops(right_moving_clip):
  return extract.extract_gops(right_moving_clip[1], keep_decoded=True,
                              allow_reencode=False)


