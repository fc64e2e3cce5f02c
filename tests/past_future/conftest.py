"""A tiny dataset of long-video codes, written once per session."""
import pytest

TINY_CHUNK_FRAMES = 4  # experiments/configs/past_future.py:tiny
TINY_CHUNKS = 6


@pytest.fixture(scope='session')
def tiny_long_codes(tiny_codec_run, tmp_path_factory):
  """Generated 32x32 walks of 6 chunks of 4 frames, as tiny-codec codes.

  2 train videos and 1 test video; codes `[24, 8, 8, 2]` uint8 (K=32).
  """
  # pylint: disable=g-import-not-at-top
  from cvision.codec import frozen
  from data_pipelines import long_video_codes as lvc
  from data_pipelines.generated import long_world
  output_dir = str(tmp_path_factory.mktemp('long_codes'))
  codec = frozen.load_frozen_codec(tiny_codec_run, with_params=True)
  metadata, grid = lvc.codec_metadata(codec, (32, 32))
  frames = TINY_CHUNK_FRAMES * TINY_CHUNKS
  splits = {s: lvc.generated_sources(long_world.TINY, s, n, frames, 8)
            for s, n in (('train', 2), ('test', 1))}
  lvc.write_long_video_codes(
      output_dir=output_dir, splits=splits, encode=lvc.codec_encoder(codec),
      code_grid=grid, num_codebooks=metadata['num_codebooks'],
      codebook_size=metadata['codebook_size'],
      metadata={**metadata, 'fps': 25})
  return output_dir
