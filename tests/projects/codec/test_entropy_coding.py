"""Entropy-coded code tensors: exact round trips, rates, errors, storage."""
import json
import os
import zlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from cvision.projects.codec import code_dataset
from cvision.projects.codec import entropy_coding
from data_pipelines import build


def _temporal_codes(shape, codebook_size, change_rate, dtype, seed=0):
  """Codes where each cell keeps its index with probability 1 - change_rate."""
  rng = np.random.default_rng(seed)
  codes = np.empty(shape, np.int64)
  codes[0] = rng.integers(0, codebook_size, shape[1:])
  for t in range(1, shape[0]):
    changed = rng.random(shape[1:]) < change_rate
    codes[t] = np.where(changed, rng.integers(0, codebook_size, shape[1:]),
                        codes[t - 1])
  return codes.astype(dtype)


def _round_trip(codes):
  data = entropy_coding.encode(codes)
  decoded = entropy_coding.decode(data)
  assert decoded.dtype == codes.dtype
  assert decoded.shape == codes.shape
  np.testing.assert_array_equal(decoded, codes)
  return data


@pytest.mark.parametrize('dtype,codebook_size', [
    (np.uint8, 256), (np.uint16, 8192), (np.uint16, 65536), (np.int32, 300),
    (np.int64, 40), (np.uint32, 1000), (np.int8, 100), (np.int16, 5000)])
def test_every_dtype_round_trips_exactly(dtype, codebook_size):
  codes = _temporal_codes((12, 4, 5, 2), codebook_size, 0.3, dtype)
  _round_trip(codes)


def test_sparse_and_negative_int32_values_round_trip():
  rng = np.random.default_rng(1)
  extremes = np.array([np.iinfo(np.int32).min, -1, 0, np.iinfo(np.int32).max],
                      np.int32)
  codes = rng.choice(extremes, (6, 3, 3, 2)).astype(np.int32)
  _round_trip(codes)
  _round_trip(rng.integers(-2**31, 2**31 - 1, (5, 3, 3, 1)).astype(np.int32))


def test_big_endian_input_round_trips_values():
  codes = _temporal_codes((8, 3, 3, 2), 1000, 0.5, np.dtype('>u2'))
  decoded = entropy_coding.decode(entropy_coding.encode(codes))
  np.testing.assert_array_equal(decoded, codes)


def test_a_long_video_round_trips_fast_and_beats_zlib():
  # 3000 frames of a 4x4x2 grid, 5% of cells changing a frame: the flag
  # entropy H(0.05) = 0.29 bits plus 0.05 * 8 bits a new index is the bound.
  codes = _temporal_codes((3000, 4, 4, 2), 256, 0.05, np.uint8)
  data = _round_trip(codes)
  bits = 8 * len(data) / codes.size
  bound = (-0.05 * np.log2(0.05) - 0.95 * np.log2(0.95)) + 0.05 * 8
  assert bound < bits < bound + 0.05
  assert bits < 0.8 * 8 * len(zlib.compress(codes.tobytes(), 9)) / codes.size


def test_constant_codes_cost_almost_nothing():
  codes = np.full((500, 8, 8, 2), 7, np.uint16)
  data = _round_trip(codes)
  assert len(data) < 40  # The header; one symbol needs no payload.
  moving = np.zeros((500, 8, 8, 2), np.uint8)
  moving[::2] = 1  # Every cell changes every frame, to one of 2 values.
  assert len(_round_trip(moving)) < 0.02 * moving.size


def test_random_codes_cost_at_most_their_raw_bytes_and_a_header():
  codes = np.random.default_rng(2).integers(0, 256, (16, 8, 8, 2),
                                            dtype=np.uint8)
  data = _round_trip(codes)
  assert len(data) <= codes.nbytes + 24
  assert entropy_coding.bits_per_index(codes) == 8 * len(data) / codes.size


def test_static_codes_cost_less_than_changing_ones():
  static = _temporal_codes((16, 8, 8, 2), 256, 0.05, np.uint8)
  changing = _temporal_codes((16, 8, 8, 2), 256, 0.5, np.uint8)
  assert (entropy_coding.bits_per_index(static) <
          entropy_coding.bits_per_index(changing) < 8)


@pytest.mark.parametrize('shape', [(0, 4, 4, 2), (5, 0, 4, 2), (3, 2, 2, 0),
                                   (1, 1, 1, 1), (1, 8, 8, 2), (7, 1, 1, 1)])
def test_empty_and_single_cell_edge_cases(shape):
  codes = _temporal_codes(shape, 50, 0.5, np.uint16) if 0 not in shape else (
      np.zeros(shape, np.uint16))
  _round_trip(codes)
  assert entropy_coding.bits_per_index(np.zeros((0, 1, 1, 1), np.uint8)) == 0


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match=r'must be \[T, H, W, N\]'):
    entropy_coding.encode(np.zeros((4, 4, 4), np.uint8))
  with pytest.raises(ValueError, match='integer array, got dtype float32'):
    entropy_coding.encode(np.zeros((1, 1, 1, 1), np.float32))


def test_truncated_and_corrupt_bytes_give_clear_errors():
  codes = _temporal_codes((16, 8, 8, 2), 256, 0.2, np.uint8)
  data = entropy_coding.encode(codes)
  for cut in (0, 3, 10, len(data) - 1):
    with pytest.raises(ValueError, match='truncated'):
      entropy_coding.decode(data[:cut])
  with pytest.raises(ValueError, match='Not entropy-coded codes'):
    entropy_coding.decode(b'XX' + data[2:])
  with pytest.raises(ValueError, match='bytes after the end'):
    entropy_coding.decode(data + b'\0')
  flipped = bytearray(data)
  flipped[len(data) // 2] ^= 0x10  # Inside the range coder's payload.
  with pytest.raises(ValueError, match='Corrupt entropy-coded codes'):
    entropy_coding.decode(bytes(flipped))


# The code dataset: entropy storage reads back what raw storage does.


def _fake_encode(video):
  """[B, T, H, W, 3] -> [B, T, H/4, W/4, 2] block means."""
  b, t, h, w, _ = video.shape
  blocks = video.reshape(b, t, h // 4, 4, w // 4, 4, 3).mean(axis=(3, 5))
  return np.stack([blocks[..., 0], blocks[..., 1] // 16], -1).astype(np.uint8)


@pytest.fixture(scope='module')
def datasets(tmp_path_factory):
  source = build.build_dataset('moving_digits',
                               str(tmp_path_factory.mktemp('src')),
                               config='tiny')
  out = {}
  for name, storage, prior_clips in (('raw', 'raw', 0),
                                     ('entropy', 'entropy', 0),
                                     ('entropy_prior', 'entropy', 16)):
    out[name] = str(tmp_path_factory.mktemp(name))
    code_dataset.write_code_dataset(
        source_builder=source, splits=['train', 'test'],
        output_dir=out[name], encode=_fake_encode, code_shape=(8, 8, 8, 2),
        code_dtype=np.uint8,
        metadata={'compression_rate': 24.0, 'input_shape': [8, 32, 32, 3],
                  'codebook_size': 256},
        batch_size=8, examples_per_shard=32, code_storage=storage,
        entropy_prior_clips=prior_clips)
  return out


@pytest.mark.parametrize('name', ['entropy', 'entropy_prior'])
def test_entropy_storage_reads_back_the_raw_indices(datasets, name):
  raw = tfds.builder_from_directory(datasets['raw'])
  entropy = tfds.builder_from_directory(datasets[name])
  assert entropy.info.features['codes'].np_dtype == np.uint8
  assert entropy.info.features['codes'].shape == (8, 8, 8, 2)
  for split in ('train', 'test'):
    raw_source = raw.as_data_source(split)
    entropy_source = entropy.as_data_source(split)
    assert len(entropy_source) == len(raw_source)
    for i in range(len(raw_source)):
      a, b = raw_source[i], entropy_source[i]
      assert b['codes'].dtype == np.uint8
      np.testing.assert_array_equal(b['codes'], a['codes'])
      assert b['label'] == a['label']


def _metadata(directory):
  with open(os.path.join(directory, 'metadata.json')) as f:
    return json.load(f)


def test_metadata_records_bytes_per_pixel_and_stored_cr(datasets):
  for name, directory in datasets.items():
    metadata = _metadata(directory)
    assert metadata.get('code_storage', 'raw') == name.split('_')[0]
    on_disk = code_dataset.storage_bytes(directory)
    assert metadata['stored_bytes'] == on_disk
    pixels = (64 + 16) * 8 * 32 * 32  # train + test examples.
    assert metadata['stored_bytes_per_pixel'] == pytest.approx(
        on_disk / pixels)
    assert metadata['stored_compression_rate'] == pytest.approx(
        3 * pixels / on_disk)
    assert metadata['stored_bits_per_index'] == pytest.approx(
        8 * on_disk / ((64 + 16) * 8 * 8 * 8 * 2))
    # The examples alone: less than the 64 KiB-padded files.
    assert 0 < metadata['record_bytes'] < on_disk
    assert metadata['record_compression_rate'] == pytest.approx(
        3 * pixels / metadata['record_bytes'])
  raw, entropy, prior = (_metadata(datasets[s])
                         for s in ('raw', 'entropy', 'entropy_prior'))
  assert prior['record_bytes'] < entropy['record_bytes'] < raw['record_bytes']


def test_a_prior_dataset_needs_its_prior_file(datasets, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  copy = str(tmp_path / 'copy')
  shutil.copytree(datasets['entropy_prior'], copy)
  os.remove(os.path.join(copy, 'codes.entropy_prior.npz'))
  with pytest.raises(FileNotFoundError, match='entropy_prior.npz is missing'):
    tfds.builder_from_directory(copy).as_data_source('test')[0]


def test_a_prior_needs_entropy_storage(datasets, tmp_path):
  source = tfds.builder_from_directory(
      _metadata(datasets['raw'])['source_dir'])
  with pytest.raises(ValueError, match="entropy_prior_clips needs"):
    code_dataset.write_code_dataset(
        source_builder=source, splits=['test'], output_dir=str(tmp_path),
        encode=_fake_encode, code_shape=(8, 8, 8, 2), code_dtype=np.uint8,
        metadata={'codebook_size': 256}, batch_size=8,
        entropy_prior_clips=4)


def test_unknown_storage_is_named(tmp_path):
  from cvision.projects.codec import code_storage  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="code_storage='lz4'"):
    code_storage.codes_feature('lz4', (1, 1, 1, 1), np.uint8)


# A prior fitted on a dataset: tables no single clip can learn.


def _correlated_codes(num_clips, seed):
  """Clips whose codebook 1 is a function of codebook 0 at the same cell,
  and whose changed cells move to a fixed successor index."""
  successor = np.random.default_rng(123).permutation(64)  # Every clip's.
  rng = np.random.default_rng(seed)
  clips = []
  for _ in range(num_clips):
    first = rng.integers(0, 64, (1, 4, 4))
    frames = [first]
    for _ in range(11):
      changed = rng.random((1, 4, 4)) < 0.3
      frames.append(np.where(changed, successor[frames[-1]], frames[-1]))
    zero = np.concatenate(frames)
    clips.append(np.stack([zero, (zero * 7 + 3) % 64], -1).astype(np.uint8))
  return clips


def test_a_prior_round_trips_and_lowers_the_rate():
  prior = entropy_coding.fit_prior(_correlated_codes(64, 0), 64)
  held_out = _correlated_codes(16, 1)
  alone = with_prior = 0
  for codes in held_out:
    data = entropy_coding.encode(codes, prior)
    decoded = entropy_coding.decode(data, prior)
    assert decoded.dtype == codes.dtype
    np.testing.assert_array_equal(decoded, codes)
    alone += len(entropy_coding.encode(codes))
    with_prior += len(data)
  # Codebook 1 and every changed index are determined: only flags and the
  # first frame's codebook 0 are left.
  assert with_prior < 0.6 * alone


def test_a_prior_saves_and_loads_and_a_wrong_one_is_named(tmp_path):
  prior = entropy_coding.fit_prior(_correlated_codes(8, 0), 64)
  path = str(tmp_path / 'prior.npz')
  prior.save(path)
  loaded = entropy_coding.Prior.load(path)
  assert loaded.fingerprint() == prior.fingerprint()
  codes = _correlated_codes(1, 3)[0]
  data = entropy_coding.encode(codes, prior)
  np.testing.assert_array_equal(entropy_coding.decode(data, loaded), codes)
  with pytest.raises(ValueError, match='coded with a prior; pass it'):
    entropy_coding.decode(data)
  other = entropy_coding.fit_prior(_correlated_codes(8, 5), 64)
  with pytest.raises(ValueError, match='with another prior'):
    entropy_coding.decode(data, other)
  with pytest.raises(ValueError, match='do not fit the prior'):
    entropy_coding.encode(np.full((2, 1, 1, 2), 64, np.uint8), prior)
  with pytest.raises(ValueError, match='codebook_size <= 4096'):
    entropy_coding.fit_prior([codes], 8192)
