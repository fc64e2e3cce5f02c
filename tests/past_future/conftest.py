"""A tiny dataset of long-video codes, written once per session."""
import pytest

TINY_CHUNK_FRAMES = 4  # experiments/configs/past_future.py:tiny
TINY_CHUNKS = 6


def _write_long_codes(codec_workdir, output_dir, videos_per_split):
  # pylint: disable=g-import-not-at-top
  from cvision.codec import frozen
  from data_pipelines import long_video_codes as lvc
  from data_pipelines.generated import long_world
  codec = frozen.load_frozen_codec(codec_workdir, with_params=True)
  metadata, grid = lvc.codec_metadata(codec, (32, 32))
  frames = TINY_CHUNK_FRAMES * TINY_CHUNKS
  splits = {s: lvc.generated_sources(long_world.TINY, s, n, frames, 8)
            for s, n in videos_per_split.items()}
  lvc.write_long_video_codes(
      output_dir=output_dir, splits=splits, encode=lvc.codec_encoder(codec),
      code_grid=grid, num_codebooks=metadata['num_codebooks'],
      codebook_size=metadata['codebook_size'],
      metadata={**metadata, 'fps': 25})
  return output_dir


@pytest.fixture(scope='session')
def tiny_long_codes(tiny_codec_run, tmp_path_factory):
  """Generated 32x32 walks of 6 chunks of 4 frames, as tiny-codec codes.

  2 train videos and 1 test video; codes `[24, 8, 8, 2]` uint8 (K=32).
  """
  return _write_long_codes(tiny_codec_run,
                           str(tmp_path_factory.mktemp('long_codes')),
                           {'train': 2, 'test': 1})


@pytest.fixture(scope='session')
def tiny_long_codes_test_only(tiny_codec_run, tmp_path_factory):
  """The same test video as `tiny_long_codes`, in a dataset with no train
  split (a held-out set a user evaluates on)."""
  return _write_long_codes(tiny_codec_run,
                           str(tmp_path_factory.mktemp('long_codes_test')),
                           {'test': 1})
