"""Long videos written as codes, chunk by chunk, and read back."""
import numpy as np
import pytest

from cvision.projects.codec import frozen
from cvision.projects.codec import long_video_codes as lvc
from data_pipelines import video_io
from data_pipelines.generated import long_world

from tests.conftest import TINY_CHUNK_FRAMES, TINY_CHUNKS


def _source(dataset_dir, split):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.builder_from_directory(dataset_dir).as_data_source(split=split)


def test_dataset_holds_each_video_as_streamed_codes(tiny_long_codes,
                                                    tiny_codec_run):
  train, test = _source(tiny_long_codes, 'train'), _source(tiny_long_codes,
                                                           'test')
  assert (len(train), len(test)) == (2, 1)
  example = test[0]
  frames = TINY_CHUNK_FRAMES * TINY_CHUNKS
  assert example['codes'].shape == (frames, 8, 8, 2)
  assert example['codes'].dtype == np.uint8
  assert int(example['video_index']) == lvc.SPLIT_SEED_OFFSETS['test']
  assert sorted(int(e['video_index']) for e in train) == [0, 1]
  # The same as encoding the generated frames 8 at a time.
  codec = frozen.load_frozen_codec(tiny_codec_run, with_params=True)
  encode = lvc.codec_encoder(codec)
  expected = np.concatenate([encode(chunk[None])[0] for chunk in
                             long_world.generate_long_world_chunks(
                                 long_world.TINY, 2_000_000, frames, 8)])
  np.testing.assert_array_equal(example['codes'], expected)
  metadata = frozen.code_dataset_metadata(tiny_long_codes)
  assert metadata['frames'] == frames
  assert metadata['codec_workdir'] == codec.workdir


def _fake_encode(video):
  """The tiny codec's shapes without its cost: 4x4 pixels per code."""
  return np.stack([video[..., ::4, ::4, 0], video[..., ::4, ::4, 1]],
                  axis=-1).astype(np.int32) // 8


def _write(output_dir, splits, **metadata):
  return lvc.write_long_video_codes(
      output_dir=output_dir, splits=splits, encode=_fake_encode,
      code_grid=(8, 8), num_codebooks=2, codebook_size=32,
      metadata={'fps': 25, **metadata})


def test_writing_resumes_and_refuses_other_settings(tmp_path):
  splits = {'test': lvc.generated_sources(long_world.TINY, 'test', 2, 12, 5)}
  out = str(tmp_path / 'codes')
  assert _write(out, splits) == {'test': 2}
  assert _write(out, splits) == {'test': 0}  # Both files exist: skipped.
  codes = _source(out, 'test')[1]['codes']
  assert codes.shape == (12, 8, 8, 2) and codes.max() < 32
  with pytest.raises(ValueError, match='other settings'):
    _write(out, splits, fps=30)
  mixed = {'train': lvc.generated_sources(long_world.TINY, 'train', 1, 8, 4),
           'test': splits['test']}
  with pytest.raises(ValueError, match='one length'):
    _write(str(tmp_path / 'mixed'), mixed)


def test_video_files_are_cut_to_a_common_length_of_whole_chunks(tmp_path):
  paths = []
  for i, frames in enumerate((30, 27)):
    video = np.concatenate(list(long_world.generate_long_world_chunks(
        long_world.TINY, i, frames, frames)))
    paths.append(str(tmp_path / f'walk{i}.mp4'))
    video_io.write_video(paths[-1], video, fps=25, crf=10)
  sources = lvc.file_sources(paths, size=(32, 32), chunk_frames=8,
                             multiple_of=4)
  assert [s.num_frames for s in sources] == [24, 24]
  out = str(tmp_path / 'codes')
  _write(out, {'test': sources})
  data = _source(out, 'test')
  assert [data[i]['codes'].shape for i in range(2)] == [(24, 8, 8, 2)] * 2
  with pytest.raises(ValueError, match='fewer than one chunk'):
    lvc.file_sources(paths, size=(32, 32), chunk_frames=8, multiple_of=40)


def test_a_stream_shorter_than_announced_is_an_error():
  short = lvc.VideoSource(
      index=0, num_frames=20, name='short.mp4',
      chunks=lambda: iter([np.zeros((8, 32, 32, 3), np.uint8)]))
  with pytest.raises(ValueError, match='short.mp4 gave 8 frames'):
    lvc.encode_video(short, _fake_encode, np.uint8)
