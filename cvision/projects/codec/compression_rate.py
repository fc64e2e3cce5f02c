"""Compression rates of neural codes (paper Sec. 3.2 and Appendix E.2).

A video of T x H x W RGB uint8 pixels holds T*H*W*3*8 bits. The codec stores a
grid of T_c x H_c x W_c locations with N codebook indices each, every index
naming one of K entries, i.e. log2(K) bits. The compression rate (CR) is

  CR = (T * H * W * 3 * 8) / (T_c * H_c * W_c * N * log2(K)).

This is the paper's definition: it counts log2(K) bits per index, the entropy
bound of a uniform code. Indices written to disk take a whole unsigned integer
(`code_dtype`), which `storage_compression_rate` accounts for.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def _positive_int(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f'{name} must be a positive int, got {value!r}.')
  if value < 1:
    raise ValueError(f'{name} must be a positive int, got {value!r}.')
  return int(value)


def _shape(name: str, shape: Sequence[int], ranks: tuple[int, ...]) -> tuple[
    int, ...]:
  shape = tuple(shape)
  if len(shape) not in ranks:
    raise ValueError(
        f'{name} must have {" or ".join(map(str, ranks))} entries, got '
        f'{shape!r}.')
  return tuple(_positive_int(f'{name}[{i}]', d) for i, d in enumerate(shape))


def _input_bits(input_shape: Sequence[int]) -> int:
  """Bits of a uint8 video of shape (T, H, W) (3 channels) or (T, H, W, C)."""
  shape = _shape('input_shape', input_shape, (3, 4))
  channels = shape[3] if len(shape) == 4 else 3
  return math.prod(shape[:3]) * channels * 8


def _check_codebook(num_codebooks: int, codebook_size: int) -> None:
  _positive_int('num_codebooks', num_codebooks)
  _positive_int('codebook_size', codebook_size)
  if codebook_size < 2:
    # log2(1) = 0 bits: a one-entry codebook carries no information.
    raise ValueError(f'codebook_size must be >= 2, got {codebook_size!r}.')


def compression_rate(input_shape: Sequence[int], code_shape: Sequence[int],
                     num_codebooks: int, codebook_size: int) -> float:
  """Paper compression rate of a code grid.

  Args:
    input_shape: (T, H, W) of an RGB uint8 video, or (T, H, W, C).
    code_shape: (T_c, H_c, W_c), the code grid.
    num_codebooks: N, indices stored per grid location.
    codebook_size: K, entries per codebook (>= 2).

  Returns:
    CR = T*H*W*C*8 / (T_c*H_c*W_c*N*log2(K)) as a float.

  Raises:
    ValueError: naming the bad value when a shape or count is invalid.
  """
  _check_codebook(num_codebooks, codebook_size)
  code = _shape('code_shape', code_shape, (3,))
  code_bits = math.prod(code) * num_codebooks * math.log2(codebook_size)
  return _input_bits(input_shape) / code_bits


def code_dtype(codebook_size: int) -> np.dtype:
  """Smallest unsigned integer dtype that holds indices 0..K-1.

  Args:
    codebook_size: K >= 1.

  Returns:
    uint8 for K <= 256, uint16 for K <= 65536, else uint32.
  """
  k = _positive_int('codebook_size', codebook_size)
  for dtype in (np.uint8, np.uint16, np.uint32):
    if k - 1 <= np.iinfo(dtype).max:
      return np.dtype(dtype)
  raise ValueError(f'codebook_size {k} does not fit in uint32.')


def storage_compression_rate(input_shape: Sequence[int],
                             code_shape: Sequence[int], num_codebooks: int,
                             codebook_size: int) -> float:
  """Compression rate when each index is stored as `code_dtype(K)`.

  Same arguments as `compression_rate`; counts the dtype's bits (8, 16 or 32)
  per index instead of log2(K), e.g. K=8192 is stored in 16 bits, not 13.
  """
  _check_codebook(num_codebooks, codebook_size)
  code = _shape('code_shape', code_shape, (3,))
  bits = code_dtype(codebook_size).itemsize * 8
  return _input_bits(input_shape) / (math.prod(code) * num_codebooks * bits)


def _get(config: Any, key: str) -> Any:
  """Reads `key` from a ConfigDict, a dataclass-like object or a mapping."""
  try:
    return config[key]
  except (KeyError, TypeError, AttributeError):
    pass
  if not hasattr(config, key):
    raise ValueError(f'The model config has no {key!r} field.')
  return getattr(config, key)


def code_grid_shape(input_shape: Sequence[int],
                    config: Any) -> tuple[int, int, int]:
  """Code grid (T_c, H_c, W_c) the encoder produces for a (T, H, W) input.

  Args:
    input_shape: (T, H, W) (a trailing channel entry is ignored).
    config: the codec's model config (`config.model` of
      `experiments/configs/codec.py`) or the encoder module:
      `num_strided_blocks` E_s (spatial stride 2 each),
      `space_to_depth` p (1 = off; divides H and W by p) and
      `temporal_stride` s_t (1 = off; divides T by s_t).

  Returns:
    (T // s_t, H // (p * 2**E_s), W // (p * 2**E_s)).

  Raises:
    ValueError: when a stride does not divide its dimension, naming both.
  """
  shape = _shape('input_shape', input_shape, (3, 4))[:3]
  t, h, w = shape
  num_strided = _get(config, 'num_strided_blocks')
  if isinstance(num_strided, bool) or not isinstance(
      num_strided, (int, np.integer)) or num_strided < 0:
    raise ValueError(
        f'num_strided_blocks must be an int >= 0, got {num_strided!r}.')
  patch = _positive_int('space_to_depth', _get(config, 'space_to_depth'))
  t_stride = _positive_int('temporal_stride',
                           _get(config, 'temporal_stride'))
  spatial = patch * 2**int(num_strided)
  for name, size in (('H', h), ('W', w)):
    if size % spatial:
      raise ValueError(
          f'{name}={size} is not divisible by the spatial stride {spatial} '
          f'(space_to_depth={patch} x 2**num_strided_blocks={num_strided}).')
  if t % t_stride:
    raise ValueError(
        f'T={t} is not divisible by temporal_stride={t_stride}.')
  return t // t_stride, h // spatial, w // spatial
