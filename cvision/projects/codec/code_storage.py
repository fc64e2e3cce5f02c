"""How a code dataset stores its `codes`: raw (zlib) or entropy-coded.

`code_storage='entropy'` writes each example's codes as the bytes of
`entropy_coding.encode` through a TFDS feature connector, so the decoding is
TFDS's own feature decoding: `builder.as_data_source(...)[i]['codes']` (what
`data_pipelines.sources.load_source` and grain's read threads call) is the
`[T, H, W, N]` array again, equal to what raw storage returns, and no reader
changes. TFDS finds the class from the name it writes in `features.json`
(`cvision.projects.codec.code_storage.EntropyCodedCodes`), importing this
module on first read.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds

from cvision.projects.codec import entropy_coding

RAW, ENTROPY = 'raw', 'entropy'
STORAGES = (RAW, ENTROPY)


class EntropyCodedCodes(tfds.features.FeatureConnector):
  """`[T, H, W, N]` integer codes, stored as `entropy_coding` bytes."""

  def __init__(self, *, shape: Sequence[int], dtype, doc=None):
    super().__init__(doc=doc)
    self._shape = tuple(int(d) for d in shape)
    self._dtype = np.dtype(dtype)

  def get_tensor_info(self):
    return tfds.features.TensorInfo(shape=self._shape, dtype=self._dtype)

  def get_serialized_info(self):
    return tfds.features.TensorInfo(shape=(), dtype=np.object_)

  def encode_example(self, example_data) -> bytes:
    codes = np.asarray(example_data)
    if codes.shape != self._shape or codes.dtype != self._dtype:
      raise ValueError(f'Codes of shape {codes.shape} {codes.dtype} for a '
                       f'feature of {self._shape} {self._dtype}.')
    return entropy_coding.encode(codes)

  def decode_example_np(self, example_data) -> np.ndarray:
    return entropy_coding.decode(example_data)

  def decode_example(self, tfexample_data):
    raise NotImplementedError(
        'Entropy-coded codes are read with as_data_source (numpy), not '
        'tf.data.')

  def to_json_content(self):
    return {'shape': list(self._shape), 'dtype': self._dtype.name}

  @classmethod
  def from_json_content(cls, value, doc=None) -> 'EntropyCodedCodes':
    return cls(shape=value['shape'], dtype=value['dtype'], doc=doc)


def codes_feature(storage: str, code_shape: Sequence[int], code_dtype):
  """The TFDS feature of `codes` for `storage` ('raw' or 'entropy')."""
  if storage == ENTROPY:
    return EntropyCodedCodes(shape=code_shape, dtype=code_dtype)
  if storage == RAW:
    return tfds.features.Tensor(shape=tuple(code_shape),
                                dtype=np.dtype(code_dtype), encoding='zlib')
  raise ValueError(f'code_storage={storage!r}; expected one of {STORAGES}.')
