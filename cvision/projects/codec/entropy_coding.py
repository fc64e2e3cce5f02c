"""Lossless entropy coding of code index tensors `[T, H, W, N]`, using time.

Most code cells repeat from one frame to the next on static content, which
the nominal `log2(K)` bits per index ignores. Frame by frame, each cell is
coded as:
* a "same as one frame earlier" flag, whose probability is adapted per
  context: whether the cell changed one frame earlier, and how many of its
  4 spatial neighbours (same codebook) changed one frame earlier;
* for changed cells (and every cell of the first frame), the index in
  `0 .. K-1` (its rank in the alphabet), with an adaptive categorical model
  per codebook `n`; the cell's own previous index is excluded (a changed
  cell cannot take it).
Every context depends only on earlier frames, so a frame decodes in one
vectorised step and the probabilities adapt between frames (counts with a
Krichevsky-Trofimov prior of 1/2), with nothing stored but the counts'
starting point. The arithmetic (range) coding is `constriction`'s, a
maintained library, rather than our own.

The byte string is self-describing: a header (magic, version, dtype, shape,
alphabet, CRC-32 of the indices, payload length) then the range coder's
32-bit words. `decode` restores shape and dtype exactly and raises a
`ValueError` naming the problem on a truncated or corrupt string.
"""
from __future__ import annotations

import struct
import zlib

import constriction
import numpy as np

MAGIC = b'CE'
VERSION = 1
# Alphabets up to this size are coded as the value range [lo, lo + K); wider
# (sparse int32) ones as the table of the values that occur.
_MAX_RANGE_ALPHABET = 1 << 16
_PRIOR = 0.5  # Krichevsky-Trofimov: near-optimal for adaptive counts.
_ALPHABET_RANGE, _ALPHABET_TABLE = 0, 1
_FIRST_FRAME_CONTEXT = 10  # Contexts 0..9: 2 (self changed) x 5 (neighbours).
_NUM_FLAG_CONTEXTS = 11
_HEADER = struct.Struct('<2sBc')  # magic, version, numpy dtype char.
_CRC = struct.Struct('<I')  # CRC-32 of the indices (little-endian bytes).
# Incompressible codes (uniformly random, say) are stored as their raw
# bytes rather than paying the models' learning cost on top.
_RANGE_CODED, _STORED = 0, 1


def _categorical(probabilities: np.ndarray | None = None):
  if probabilities is None:
    return constriction.stream.model.Categorical(perfect=False)
  return constriction.stream.model.Categorical(probabilities, perfect=False)


def _neighbours_changed(changed: np.ndarray) -> np.ndarray:
  """`[H, W, N] bool -> [H, W, N]` count of changed 4-neighbours (0..4)."""
  padded = np.pad(changed.astype(np.int8), ((1, 1), (1, 1), (0, 0)))
  return (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] +
          padded[1:-1, 2:])


def _flag_contexts(previous_changed: np.ndarray | None,
                   shape: tuple[int, ...]) -> np.ndarray:
  if previous_changed is None:
    return np.full(shape, _FIRST_FRAME_CONTEXT, np.int64).ravel()
  contexts = (previous_changed.astype(np.int64) * 5 +
              _neighbours_changed(previous_changed))
  return contexts.ravel()


def _flag_probabilities(counts: np.ndarray, contexts: np.ndarray):
  """`[contexts, 2]` counts -> `[cells, 2]` (same, changed) probabilities."""
  return counts[contexts] / counts[contexts].sum(axis=1, keepdims=True)


def _index_probabilities(counts_n: np.ndarray, excluded: np.ndarray | None):
  """One row per cell: the codebook's counts with `excluded` zeroed."""
  rows = np.repeat(counts_n[None], len(excluded), axis=0)
  rows[np.arange(len(excluded)), excluded] = 0.0
  return rows


class _Model:
  """The adaptive state shared, step for step, by encoder and decoder."""

  def __init__(self, alphabet_size: int, num_codebooks: int):
    self.flag_counts = np.full((_NUM_FLAG_CONTEXTS, 2), _PRIOR)
    self.index_counts = np.full((num_codebooks, alphabet_size), _PRIOR)

  def update_flags(self, contexts, changed) -> None:
    np.add.at(self.flag_counts, (contexts, changed.astype(np.int64)), 1)

  def update_indices(self, codebooks, ranks) -> None:
    np.add.at(self.index_counts, (codebooks, ranks), 1)


def _code_frames(ranks: np.ndarray | None, shape, alphabet_size: int,
                 coder, decoding: bool) -> np.ndarray:
  """Runs the frame loop; encodes `ranks` or decodes into a new array.

  Encoder and decoder share this loop so that their contexts and
  probabilities are the same by construction.
  """
  num_frames, height, width, num_codebooks = shape
  out = np.empty(shape, np.int64) if decoding else ranks
  model = _Model(alphabet_size, num_codebooks)
  codebook_of_cell = np.broadcast_to(
      np.arange(num_codebooks), (height, width, num_codebooks)).ravel()
  previous, previous_changed = None, None
  family = _categorical()
  for t in range(num_frames):
    contexts = _flag_contexts(previous_changed, (height, width, num_codebooks))
    if previous is None:
      changed = np.ones(contexts.shape, bool)
    else:
      flag_probabilities = _flag_probabilities(model.flag_counts, contexts)
      if decoding:
        changed = coder.decode(family, flag_probabilities).astype(bool)
      else:
        changed = (out[t] != previous).ravel()
        coder.encode(changed.astype(np.int32), family, flag_probabilities)
    frame = (out[t].ravel().copy() if not decoding else
             previous.ravel().copy() if previous is not None else
             np.empty(contexts.shape, np.int64))
    for n in range(num_codebooks):
      cells = np.flatnonzero(changed & (codebook_of_cell == n))
      if not len(cells):
        continue
      if previous is None:
        model_n = _categorical(model.index_counts[n])
        if decoding:
          frame[cells] = coder.decode(model_n, len(cells))
        else:
          coder.encode(frame[cells].astype(np.int32), model_n)
        continue
      probabilities = _index_probabilities(model.index_counts[n],
                                           previous.ravel()[cells])
      if decoding:
        frame[cells] = coder.decode(family, probabilities)
      else:
        coder.encode(frame[cells].astype(np.int32), family, probabilities)
    if previous is not None:
      model.update_flags(contexts, changed)
    model.update_indices(codebook_of_cell[changed], frame[changed])
    frame = frame.reshape(height, width, num_codebooks)
    if decoding:
      out[t] = frame
    previous = frame
    previous_changed = changed.reshape(height, width, num_codebooks)
  return out


def _check_codes(codes) -> np.ndarray:
  codes = np.asarray(codes)
  if not np.issubdtype(codes.dtype, np.integer):
    raise ValueError(f'Codes must be an integer array, got dtype '
                     f'{codes.dtype}.')
  if codes.ndim != 4:
    raise ValueError(f'Codes must be [T, H, W, N], got shape {codes.shape}.')
  if codes.dtype == np.uint64 and codes.size and codes.max() > np.iinfo(
      np.int64).max:
    raise ValueError('uint64 codes above 2**63 - 1 are not supported.')
  return codes


def _alphabet(codes: np.ndarray) -> tuple[int, np.ndarray | None, int, int]:
  """(mode, table, lo, size): how indices map to ranks `0 .. size-1`."""
  if not codes.size:
    return _ALPHABET_RANGE, None, 0, 0
  lo, hi = int(codes.min()), int(codes.max())
  if hi - lo + 1 <= _MAX_RANGE_ALPHABET:
    return _ALPHABET_RANGE, None, lo, hi - lo + 1
  table = np.unique(codes).astype(np.int64)
  return _ALPHABET_TABLE, table, 0, len(table)


def encode(codes: np.ndarray) -> bytes:
  """`[T, H, W, N]` integer codes (any integer dtype) -> bytes.

  `decode(encode(codes))` equals `codes` in values, shape and dtype.
  """
  codes = _check_codes(codes)
  mode, table, lo, size = _alphabet(codes)
  # Varints: a clip's header is ~17 bytes, 0.07 bits an index of a
  # 16x8x8x2 clip, where fixed 8-byte fields cost 0.3.
  parts = [_HEADER.pack(MAGIC, VERSION, codes.dtype.char.encode('ascii')),
           *map(_varint, codes.shape), bytes([mode]), _varint(_zigzag(lo)),
           _varint(size)]
  if table is not None:
    parts.append(table.astype('<i8').tobytes())
  method, payload = _RANGE_CODED, b''
  if codes.size and size > 1:
    ranks = (np.searchsorted(table, codes) if table is not None else
             codes.astype(np.int64) - lo)
    coder = constriction.stream.queue.RangeEncoder()
    _code_frames(ranks, codes.shape, size, coder, decoding=False)
    payload = coder.get_compressed().astype('<u4').tobytes()
    raw = _little_endian(codes).tobytes()
    if len(raw) <= len(payload):
      method, payload = _STORED, raw
  crc = zlib.crc32(_little_endian(codes).tobytes())
  parts += [_CRC.pack(crc), bytes([method]), _varint(len(payload)), payload]
  return b''.join(parts)


def _varint(value: int) -> bytes:
  """LEB128: 7 bits a byte, high bit set on all bytes but the last."""
  out = bytearray()
  while True:
    byte, value = value & 0x7F, value >> 7
    out.append(byte | (0x80 if value else 0))
    if not value:
      return bytes(out)


def _zigzag(value: int) -> int:
  return 2 * value if value >= 0 else -2 * value - 1


def _unzigzag(value: int) -> int:
  return value // 2 if value % 2 == 0 else -(value + 1) // 2


def _little_endian(codes: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(codes, codes.dtype.newbyteorder('<'))


class _Reader:
  """Reads the header field by field, naming what is missing."""

  def __init__(self, data: bytes):
    self.data, self.pos = data, 0

  def take(self, size: int, what: str) -> bytes:
    if self.pos + size > len(self.data):
      raise ValueError(f'Entropy-coded codes are truncated: {len(self.data)} '
                       f'bytes end inside the {what}.')
    chunk = self.data[self.pos:self.pos + size]
    self.pos += size
    return chunk

  def unpack(self, layout: struct.Struct, what: str) -> tuple:
    return layout.unpack(self.take(layout.size, what))

  def varint(self, what: str) -> int:
    value, shift = 0, 0
    while True:
      (byte,) = self.take(1, what)
      value |= (byte & 0x7F) << shift
      shift += 7
      if not byte & 0x80:
        return value
      if shift > 70:
        raise ValueError(f'Corrupt entropy-coded codes: bad {what}.')


def decode(data: bytes) -> np.ndarray:
  """Bytes of `encode` -> the codes, shape and dtype as they were encoded."""
  reader = _Reader(bytes(data))
  magic, version, dtype_char = reader.unpack(_HEADER, 'header')
  if magic != MAGIC:
    raise ValueError(f'Not entropy-coded codes: starts with {magic!r}, '
                     f'expected {MAGIC!r}.')
  if version != VERSION:
    raise ValueError(f'Entropy-coded codes of version {version}; this reader '
                     f'knows version {VERSION}.')
  try:
    dtype = np.dtype(dtype_char.decode('ascii'))
  except (TypeError, UnicodeDecodeError) as e:
    raise ValueError(f'Corrupt entropy-coded codes: bad dtype ({e}).') from e
  if not np.issubdtype(dtype, np.integer):
    raise ValueError(f'Corrupt entropy-coded codes: dtype {dtype} in the '
                     'header, expected an integer dtype.')
  shape = tuple(reader.varint('shape') for _ in range(4))
  (mode,) = reader.take(1, 'alphabet')
  lo = _unzigzag(reader.varint('alphabet'))
  size = reader.varint('alphabet')
  table = None
  if mode == _ALPHABET_TABLE:
    table = np.frombuffer(reader.take(8 * size, 'alphabet table'), '<i8')
  elif mode != _ALPHABET_RANGE:
    raise ValueError(f'Corrupt entropy-coded codes: alphabet mode {mode}.')
  (crc,) = reader.unpack(_CRC, 'checksum')
  (method,) = reader.take(1, 'payload method')
  payload_bytes = reader.varint('payload length')
  payload = reader.take(payload_bytes, 'payload')
  if reader.pos != len(reader.data):
    raise ValueError(f'Corrupt entropy-coded codes: '
                     f'{len(reader.data) - reader.pos} bytes after the end.')
  count = int(np.prod(shape))
  if count == 0:
    codes = np.zeros(shape, dtype)
  elif size == 1:
    codes = np.full(shape, table[0] if table is not None else lo, dtype)
  elif method == _STORED:
    if payload_bytes != count * dtype.itemsize:
      raise ValueError(f'Corrupt entropy-coded codes: {payload_bytes} stored '
                       f'bytes for {count} indices of {dtype}.')
    codes = np.frombuffer(payload, dtype.newbyteorder('<')).astype(
        dtype).reshape(shape)
  elif method == _RANGE_CODED:
    if size == 0 or payload_bytes == 0 or payload_bytes % 4:
      raise ValueError(f'Corrupt entropy-coded codes: a payload of '
                       f'{payload_bytes} bytes for {count} indices.')
    decoder = constriction.stream.queue.RangeDecoder(
        np.frombuffer(payload, '<u4').astype(np.uint32))
    try:
      ranks = _code_frames(None, shape, size, decoder, decoding=True)
    except (ValueError, RuntimeError, IndexError) as e:
      raise ValueError(f'Corrupt entropy-coded codes: {e}') from e
    ranks = np.clip(ranks, 0, size - 1)  # Corrupt payloads: caught by the CRC.
    values = table[ranks] if table is not None else ranks + lo
    codes = values.astype(dtype)
  else:
    raise ValueError(f'Corrupt entropy-coded codes: payload method {method}.')
  if zlib.crc32(_little_endian(codes).tobytes()) != crc:
    raise ValueError('Corrupt entropy-coded codes: the decoded indices fail '
                     'their CRC-32 check.')
  return codes


def bits_per_index(codes: np.ndarray) -> float:
  """Measured bits per index of `encode(codes)`, header included."""
  codes = _check_codes(codes)
  if not codes.size:
    return 0.0
  return 8 * len(encode(codes)) / codes.size


def stored_compression_rate(raw_bytes: int, codes) -> float:
  """Raw video bytes over the bytes of `encode` on each clip's codes.

  `codes`: the `[T, H, W, N]` codes of those videos, one array a clip, as
  a code dataset stores them (headers included), so the codec's rate is
  measured in bytes like H.264's.
  """
  stored = sum(len(encode(c)) for c in codes)
  if stored == 0:
    raise ValueError('No codes to measure.')
  return raw_bytes / stored
