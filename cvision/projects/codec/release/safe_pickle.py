"""Reading a release pickle without running what an unknown pickle names.

Unpickling calls whatever class or function the file names, so a file from
elsewhere could run any code. `load_release_file` resolves only an
allow-list: numpy arrays, scalars and dtypes, the ml_collections config
types, a few builtins, and the array wrapper older jax versions pickled
(rebuilt here as a plain numpy array). Anything else is refused with an
error naming the class and the file. Then the top level must be the
release's dict (`params`, `state`, `config`, `augm_params`, `augm_state`,
`augm_config`).

The standard library's `pickle.Unpickler.find_class` hook is the documented
way to restrict unpickling ("Restricting Globals" in the pickle docs); no
library of the stack does this.
"""
from __future__ import annotations

import pickle
from typing import Any

import ml_collections
import numpy as np

RELEASE_KEYS = ('params', 'state', 'config', 'augm_params', 'augm_state',
                'augm_config')


class ReleaseFileError(ValueError):
  """A file is not a release checkpoint, or holds what may not be loaded."""


def _rebuild_jax_array(fun, args, array_state, *unused_aval_state):
  """Older jax's pickled arrays (`_reconstruct_array`), as numpy.

  `fun` itself went through the allow-list (numpy's `_reconstruct`).
  """
  array = fun(*args)
  array.__setstate__(array_state)
  return np.asarray(array)


def _numpy_multiarray(name: str):
  from numpy._core import multiarray  # pylint: disable=g-import-not-at-top
  return getattr(multiarray, name)


_CONFIG_TYPES = {
    'ConfigDict': ml_collections.ConfigDict,
    'FrozenConfigDict': ml_collections.FrozenConfigDict,
    'FieldReference': ml_collections.FieldReference,
}

# (module, name) -> the object to use.
_ALLOWED: dict[tuple[str, str], Any] = {
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): np.dtype,
    ('collections', 'OrderedDict'): __import__('collections').OrderedDict,
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('builtins', 'complex'): complex,
    ('builtins', 'slice'): slice,
    # Protocol-2 pickles of bytes go through _codecs.encode(str, 'latin1').
    ('_codecs', 'encode'): __import__('codecs').encode,
}
for _module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
  for _name in ('_reconstruct', 'scalar'):
    _ALLOWED[(_module, _name)] = _numpy_multiarray(_name)
for _module in ('ml_collections.config_dict.config_dict',
                'ml_collections.config_dict', 'ml_collections'):
  for _name, _cls in _CONFIG_TYPES.items():
    _ALLOWED[(_module, _name)] = _cls
for _module in ('jax._src.array', 'jax._src.device_array',
                'jax.interpreters.xla', 'jax.interpreters.pxla'):
  _ALLOWED[(_module, '_reconstruct_array')] = _rebuild_jax_array


class _AllowListUnpickler(pickle.Unpickler):

  def __init__(self, file, path: str):
    super().__init__(file)
    self._path = path

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    raise ReleaseFileError(
        f'{self._path} names {module}.{name}, which a release checkpoint does '
        'not hold; refusing to load it (unpickling could run its code).')


def load_release_file(path: str) -> dict[str, Any]:
  """The release checkpoint dict in `path`, safely unpickled.

  Raises:
    FileNotFoundError: no such file.
    ReleaseFileError: not a pickle, a class outside the allow-list, or not
      the release's dict (naming the missing keys).
  """
  with open(path, 'rb') as f:
    try:
      data = _AllowListUnpickler(f, path).load()
    except ReleaseFileError:
      raise
    except Exception as e:  # Corrupt or not a pickle at all.
      raise ReleaseFileError(
          f'{path} is not a readable pickle ({type(e).__name__}: {e}).') from e
  if not isinstance(data, dict):
    raise ReleaseFileError(f'{path} holds a {type(data).__name__}, not the '
                           f'release checkpoint dict with keys {RELEASE_KEYS}.')
  missing = [k for k in RELEASE_KEYS if k not in data]
  if missing:
    raise ReleaseFileError(f'{path} is not a compressed_vision release '
                           f'checkpoint: keys {missing} are missing (it has '
                           f'{sorted(map(str, data))}).')
  return {k: data[k] for k in RELEASE_KEYS}
