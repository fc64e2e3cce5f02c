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

import os
from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds

from cvision.projects.codec import entropy_coding

RAW, ENTROPY = 'raw', 'entropy'
STORAGES = (RAW, ENTROPY)


class EntropyCodedCodes(tfds.features.FeatureConnector):
  """`[T, H, W, N]` integer codes, stored as `entropy_coding` bytes.

  With a `prior` (`entropy_coding.fit_prior` on the dataset's first clips)
  the prior is saved beside the dataset as TFDS feature metadata
  (`<feature>.entropy_prior.npz`, like a ClassLabel's names file) and
  loaded with the dataset; `features.json` keeps its fingerprint.
  """

  def __init__(self, *, shape: Sequence[int], dtype,
               prior: entropy_coding.Prior | None = None,
               prior_fingerprint: int | None = None, doc=None):
    super().__init__(doc=doc)
    self._shape = tuple(int(d) for d in shape)
    self._dtype = np.dtype(dtype)
    self._prior = prior
    self._prior_fingerprint = (prior.fingerprint() if prior is not None
                               else prior_fingerprint)
    self._prior_problem = ''  # Why load_metadata found no usable prior.

  def get_tensor_info(self):
    return tfds.features.TensorInfo(shape=self._shape, dtype=self._dtype)

  def get_serialized_info(self):
    return tfds.features.TensorInfo(shape=(), dtype=np.object_)

  def encode_example(self, example_data) -> bytes:
    codes = np.asarray(example_data)
    if codes.shape != self._shape or codes.dtype != self._dtype:
      raise ValueError(f'Codes of shape {codes.shape} {codes.dtype} for a '
                       f'feature of {self._shape} {self._dtype}.')
    return entropy_coding.encode(codes, self._prior)

  def decode_example_np(self, example_data) -> np.ndarray:
    if self._prior is None and self._prior_fingerprint is not None:
      raise FileNotFoundError(self._prior_problem or (
          'These codes need their entropy prior; read the dataset with '
          'tfds.builder_from_directory, which loads it.'))
    return entropy_coding.decode(example_data, self._prior)

  def decode_example(self, tfexample_data):
    raise NotImplementedError(
        'Entropy-coded codes are read with as_data_source (numpy), not '
        'tf.data.')

  @staticmethod
  def _prior_path(data_dir, feature_name) -> str:
    return os.path.join(str(data_dir),
                        f'{feature_name or "codes"}.entropy_prior.npz')

  def save_metadata(self, data_dir, feature_name=None) -> None:
    if self._prior is not None:
      path = self._prior_path(data_dir, feature_name)
      self._prior.save(path + '.tmp')
      os.replace(path + '.tmp', path)

  def load_metadata(self, data_dir, feature_name=None) -> None:
    # TFDS runs this in a thread pool whose exceptions it drops: a problem
    # is kept and raised by the first decode instead.
    if self._prior_fingerprint is None:
      return
    path = self._prior_path(data_dir, feature_name)
    if not os.path.exists(path):
      self._prior_problem = (f'{path} is missing: the codes of {data_dir} '
                             'were entropy-coded with it.')
      return
    prior = entropy_coding.Prior.load(path)
    if prior.fingerprint() != self._prior_fingerprint:
      self._prior_problem = (f'{path} is not the prior these codes were '
                             'coded with (fingerprints differ).')
      return
    self._prior = prior

  def to_json_content(self):
    return {'shape': list(self._shape), 'dtype': self._dtype.name,
            'prior_fingerprint': self._prior_fingerprint}

  @classmethod
  def from_json_content(cls, value, doc=None) -> 'EntropyCodedCodes':
    return cls(shape=value['shape'], dtype=value['dtype'],
               prior_fingerprint=value.get('prior_fingerprint'), doc=doc)


def codes_feature(storage: str, code_shape: Sequence[int], code_dtype,
                  prior: entropy_coding.Prior | None = None):
  """The TFDS feature of `codes` for `storage` ('raw' or 'entropy')."""
  if storage == ENTROPY:
    return EntropyCodedCodes(shape=code_shape, dtype=code_dtype, prior=prior)
  if prior is not None:
    raise ValueError('An entropy prior needs code_storage=\'entropy\'.')
  if storage == RAW:
    return tfds.features.Tensor(shape=tuple(code_shape),
                                dtype=np.dtype(code_dtype), encoding='zlib')
  raise ValueError(f'code_storage={storage!r}; expected one of {STORAGES}.')
