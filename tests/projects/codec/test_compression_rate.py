"""Compression-rate formula, code grid shapes and storage dtypes."""
import ml_collections
import numpy as np
import pytest

from cvision.projects.codec import compression_rate as cr_lib
from cvision.projects.codec import task as codec_task


def test_hand_computed_case():
  # Raw: 16*64*64 pixels * 3 channels * 8 bits = 1,572,864 bits.
  # Codes: 16*16*16 locations * N=2 * log2(256)=8 bits = 65,536 bits.
  # CR = 1,572,864 / 65,536 = 24.
  assert cr_lib.compression_rate((16, 64, 64), (16, 16, 16), 2, 256) == 24.0


def test_explicit_channels_and_non_power_of_two_codebook():
  # (T, H, W, C) with C=3 is the same as (T, H, W).
  assert cr_lib.compression_rate((4, 8, 8, 3), (4, 2, 2), 1, 16) == (
      4 * 8 * 8 * 3 * 8 / (4 * 2 * 2 * 1 * 4))  # = 96.
  # log2(1000) bits, not rounded up: the paper's formula.
  assert cr_lib.compression_rate((1, 8, 8), (1, 1, 1), 1, 1000) == (
      pytest.approx(1536 / np.log2(1000)))


@pytest.mark.parametrize('code_shape, n, k, expected', [
    # 256x256 inputs, raw bits per frame 256*256*24 = 1,572,864.
    ((32, 16, 16), 2, 256, 384.0),  # /(16*16*2*8 = 4096).
    ((32, 16, 16), 2, 4096, 256.0),  # /(16*16*2*12 = 6144).
    ((32, 16, 16), 2, 8192, 1572864 / 6656),  # 236.3, paper B.2.
    ((32, 16, 16), 1, 8192, 1572864 / 3328),  # 472.6, "CR~475".
    ((32, 64, 64), 1, 8192, 1572864 / 53248),  # 29.5, "CR~30".
    ((4, 32, 32), 4, 8192, 8 * 1572864 / (32 * 32 * 4 * 13)),  # B.2 time.
])
def test_paper_settings(code_shape, n, k, expected):
  cr = cr_lib.compression_rate((32, 256, 256), code_shape, n, k)
  assert cr == pytest.approx(expected)


def test_config_presets_reach_the_paper_rates():
  from experiments.configs import codec as codec_config  # pylint: disable=g-import-not-at-top
  rates = {
      name: codec_task.model_compression_rate(
          codec_config.get_config(name).model, (32, 256, 256))
      for name in ('cr30', 'cr236', 'cr256', 'cr384', 'cr475', 'cr768',
                   'cr236_time')
  }
  assert rates['cr384'] == pytest.approx(384.0)
  assert rates['cr768'] == pytest.approx(768.0)
  small = {name: codec_task.model_compression_rate(
      codec_config.get_config(name).model, shape)
           for name, shape in (('cpu', (16, 64, 64)), ('cpu30', (16, 64, 64)),
                               ('gpu30', (16, 64, 64)), ('tiny', (8, 32, 32)))}
  assert small == {'cpu': 96.0, 'cpu30': 32.0, 'gpu30': 32.0, 'tiny': 38.4}
  assert rates['cr30'] == pytest.approx(29.5, abs=0.1)
  assert rates['cr236'] == pytest.approx(236.3, abs=0.1)
  assert rates['cr256'] == pytest.approx(256.0)
  assert rates['cr475'] == pytest.approx(472.6, abs=0.1)
  assert rates['cr236_time'] == pytest.approx(236.3, abs=0.1)


def test_code_grid_shape():
  config = ml_collections.ConfigDict(
      dict(num_strided_blocks=4, space_to_depth=1, temporal_stride=1))
  assert cr_lib.code_grid_shape((32, 256, 256), config) == (32, 16, 16)
  config.update(num_strided_blocks=2, space_to_depth=2, temporal_stride=4)
  assert cr_lib.code_grid_shape((16, 64, 64, 3), config) == (4, 8, 8)
  # Plain mappings work too.
  assert cr_lib.code_grid_shape((5, 8, 8), {
      'num_strided_blocks': 1, 'space_to_depth': 1, 'temporal_stride': 1}) == (
          5, 4, 4)


def test_code_grid_shape_errors_name_the_dimension():
  config = {'num_strided_blocks': 3, 'space_to_depth': 1,
            'temporal_stride': 1}
  with pytest.raises(ValueError, match='H=100'):
    cr_lib.code_grid_shape((8, 100, 64), config)
  with pytest.raises(ValueError, match='T=5'):
    cr_lib.code_grid_shape((5, 64, 64), dict(config, temporal_stride=2))
  with pytest.raises(ValueError, match='num_strided_blocks'):
    cr_lib.code_grid_shape((8, 64, 64), {})
  with pytest.raises(ValueError, match='space_to_depth'):
    cr_lib.code_grid_shape((8, 64, 64), {'num_strided_blocks': 3})


@pytest.mark.parametrize('args, bad', [
    (((16, 64, 64), (16, 16, 16), 2, 1), 'codebook_size'),
    (((16, 64, 64), (16, 16, 16), 0, 256), 'num_codebooks'),
    (((16, -64, 64), (16, 16, 16), 2, 256), r'input_shape\[1\]'),
    (((16, 64, 64), (16, 16), 2, 256), 'code_shape'),
    (((16, 64, 64), (16, 0, 16), 2, 256), r'code_shape\[1\]'),
    (((16, 64, 64), (16, 16, 16), 2.5, 256), 'num_codebooks'),
])
def test_invalid_inputs_raise(args, bad):
  with pytest.raises(ValueError, match=bad):
    cr_lib.compression_rate(*args)


def test_code_dtype():
  assert cr_lib.code_dtype(2) == np.uint8
  assert cr_lib.code_dtype(256) == np.uint8
  assert cr_lib.code_dtype(257) == np.uint16
  assert cr_lib.code_dtype(8192) == np.uint16
  assert cr_lib.code_dtype(65536) == np.uint16
  assert cr_lib.code_dtype(65537) == np.uint32
  with pytest.raises(ValueError, match='codebook_size'):
    cr_lib.code_dtype(0)


def test_storage_rate_counts_dtype_bits():
  # K=8192 indices take 16 bits on disk instead of 13.
  paper = cr_lib.compression_rate((32, 256, 256), (32, 16, 16), 2, 8192)
  stored = cr_lib.storage_compression_rate((32, 256, 256), (32, 16, 16), 2,
                                           8192)
  assert stored == pytest.approx(paper * 13 / 16)
