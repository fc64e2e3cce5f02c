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
  cell cannot take it). With a `Prior` fitted on a dataset (`fit_prior`),
  the index is coded instead given the cell's previous index and the index
  of codebook n - 1 at the same cell, tables no single clip could learn.
Every context depends only on earlier frames (and lower codebooks), so a
frame decodes in a few vectorised steps and the probabilities adapt between
frames (counts with a Krichevsky-Trofimov start of 1/2), with nothing
stored but the counts' starting point. The arithmetic (range) coding is
`constriction`'s, a maintained library, rather than our own. Codes the
models cannot shrink (uniformly random ones) are stored raw.

The byte string is self-describing: a header (magic, version, dtype, shape
and alphabet as varints, the prior's fingerprint, CRC-32 of the indices,
payload length) then the payload. `decode` restores shape and dtype exactly
(big-endian input comes back little-endian, same values) and raises a
`ValueError` naming the problem on a truncated or corrupt string. Measured
on `cpu`-codec codes: `docs/benchmarks.md`.
"""
from __future__ import annotations

import dataclasses
import functools
import struct
import zlib

import constriction
import numpy as np

MAGIC = b'CE'
VERSION = 1
# Alphabets up to this size are coded as the value range [lo, lo + K); wider
# (sparse int32) ones as the table of the values that occur.
_MAX_RANGE_ALPHABET = 1 << 16
_KT_COUNT = 0.5  # Krichevsky-Trofimov: near-optimal for adaptive counts.
_ALPHABET_RANGE, _ALPHABET_TABLE, _ALPHABET_PRIOR = 0, 1, 2
_FIRST_FRAME_CONTEXT = 10  # Contexts 0..9: 2 (self changed) x 5 (neighbours).
_NUM_FLAG_CONTEXTS = 11
# magic, version, dtype kind ('u' or 'i') and bytes (not numpy's dtype char,
# whose 'l' is 4 bytes on some platforms and 8 on others).
_HEADER = struct.Struct('<2sBcB')
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
  # Shifted adds rather than np.pad: this runs once a frame, and np.pad's
  # overhead was a third of decoding a small clip.
  changed = changed.astype(np.int64)
  count = np.zeros_like(changed)
  count[1:] += changed[:-1]
  count[:-1] += changed[1:]
  count[:, 1:] += changed[:, :-1]
  count[:, :-1] += changed[:, 1:]
  return count


def _flag_contexts(previous_changed: np.ndarray | None,
                   shape: tuple[int, ...]) -> np.ndarray:
  if previous_changed is None:
    return np.full(shape, _FIRST_FRAME_CONTEXT, np.int64).ravel()
  contexts = (previous_changed.astype(np.int64) * 5 +
              _neighbours_changed(previous_changed))
  return contexts.ravel()


def _flag_probabilities(counts: np.ndarray, contexts: np.ndarray):
  """`[contexts, 2]` counts -> `[cells, 2]` (same, changed) weights.

  Models get exact counts (halves and integers), never normalised floats:
  constriction normalises them itself, identically on every machine, where
  a division's rounding could differ between numpy builds and break a
  decode.
  """
  return counts[contexts]


def _index_probabilities(counts_n: np.ndarray, excluded: np.ndarray | None):
  """One row per cell: the codebook's counts with `excluded` zeroed."""
  rows = np.repeat(counts_n[None], len(excluded), axis=0)
  rows[np.arange(len(excluded)), excluded] = 0.0
  return rows


class _Model:
  """The adaptive state shared, step for step, by encoder and decoder."""

  def __init__(self, alphabet_size: int, num_codebooks: int):
    self.flag_counts = np.full((_NUM_FLAG_CONTEXTS, 2), _KT_COUNT)
    self.index_counts = np.full((num_codebooks, alphabet_size), _KT_COUNT)

  # bincount rather than np.add.at: the same counts, several times faster.
  def update_flags(self, contexts, changed) -> None:
    self.flag_counts += np.bincount(
        2 * contexts + changed, minlength=self.flag_counts.size).reshape(
            self.flag_counts.shape)

  def update_indices(self, codebooks, ranks) -> None:
    size = self.index_counts.shape[1]
    self.index_counts += np.bincount(
        codebooks * size + ranks, minlength=self.index_counts.size).reshape(
            self.index_counts.shape)


def _index_model(model: _Model, prior: 'Prior | None', n: int,
                 cells: np.ndarray, frame: np.ndarray,
                 previous: np.ndarray | None):
  """(model, per-cell probabilities or None) for codebook `n`'s `cells`.

  `frame` holds this frame's indices of codebooks `< n` already (the
  decoder decodes them first), so codebook n may condition on n - 1.
  """
  if prior is None:
    if previous is None:
      return _categorical(model.index_counts[n]), None
    return _categorical(), _index_probabilities(model.index_counts[n],
                                                previous.ravel()[cells])
  if n == 0:
    rows = (np.repeat(prior.first[None, 0], len(cells), axis=0)
            if previous is None else
            prior.transition[0][previous.ravel()[cells]])
  else:
    rows = prior.cross[n][frame[cells - 1]]
    if previous is not None:
      rows = rows * prior.transition[n][previous.ravel()[cells]]
  if previous is not None:
    rows = rows.copy()
    rows[np.arange(len(cells)), previous.ravel()[cells]] = 0.0
  return _categorical(), rows


def _code_frames(ranks: np.ndarray | None, shape, alphabet_size: int,
                 coder, decoding: bool,
                 prior: 'Prior | None' = None) -> np.ndarray:
  """Runs the frame loop; encodes `ranks` or decodes into a new array.

  Encoder and decoder share this loop so that their contexts and
  probabilities are the same by construction.
  """
  num_frames, height, width, num_codebooks = shape
  out = np.empty(shape, np.int64) if decoding else ranks
  model = _Model(alphabet_size, num_codebooks)
  codebook_of_cell = np.broadcast_to(
      np.arange(num_codebooks), (height, width, num_codebooks)).ravel()
  in_codebook = [codebook_of_cell == n for n in range(num_codebooks)]
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
             np.zeros(contexts.shape, np.int64))
    for n in range(num_codebooks):
      cells = np.flatnonzero(changed & in_codebook[n])
      if not len(cells):
        continue
      index_model, rows = _index_model(model, prior, n, cells, frame,
                                       previous)
      if decoding:
        frame[cells] = (coder.decode(index_model, len(cells)) if rows is None
                        else coder.decode(index_model, rows))
      elif rows is None:
        coder.encode(frame[cells].astype(np.int32), index_model)
      else:
        coder.encode(frame[cells].astype(np.int32), index_model, rows)
    if previous is not None:
      model.update_flags(contexts, changed)
    model.update_indices(codebook_of_cell[changed], frame[changed])
    frame = frame.reshape(height, width, num_codebooks)
    if decoding:
      out[t] = frame
    previous = frame
    previous_changed = changed.reshape(height, width, num_codebooks)
  return out


# A prior fitted on a dataset's codes: most of the rate left after the
# flags is the changed indices, close to uniform alone (log2 K bits) but
# predictable from the cell's previous index and from the other codebooks'
# index at the same cell; no clip is long enough to learn K x K tables, so
# they are fitted once per dataset and shared by its clips.
MAX_PRIOR_CODEBOOK = 4096  # K x K tables, and K rows a coded cell.
_BACKOFF = 8.0  # Pseudo-counts of the marginal in each table row.


@dataclasses.dataclass(frozen=True)
class Prior:
  """Probabilities of indices `0 .. K-1` fitted on a dataset's codes.

  first: `[N, K]` marginal of each codebook (a clip's first frame).
  transition: `[N, K, K]` P(index | the cell's previous index) over changed
    cells, the previous index itself excluded.
  cross: `[N, K, K]` P(index of codebook n | index of codebook n - 1 at the
    same cell and frame); `cross[0]` unused.
  Each is stored as integer weights (probability * 2**20, at least 1, as
  float64): products of two are exact, so encoder and decoder build the
  same rows on any machine.
  """
  first: np.ndarray
  transition: np.ndarray
  cross: np.ndarray

  @property
  def codebook_size(self) -> int:
    return self.first.shape[1]

  @property
  def num_codebooks(self) -> int:
    return self.first.shape[0]

  @functools.cached_property
  def _fingerprint(self) -> int:
    crc = 0
    for table in (self.first, self.transition, self.cross):
      crc = zlib.crc32(np.ascontiguousarray(table, '<f8').tobytes(), crc)
    return crc

  def fingerprint(self) -> int:
    """CRC-32 of the tables: a clip names the prior it needs."""
    return self._fingerprint

  def save(self, path: str) -> None:
    with open(path, 'wb') as f:
      np.savez_compressed(f, first=self.first, transition=self.transition,
                          cross=self.cross)

  @classmethod
  def load(cls, path: str) -> 'Prior':
    with np.load(path) as tables:
      return cls(first=tables['first'], transition=tables['transition'],
                 cross=tables['cross'])


def _smoothed(counts: np.ndarray, marginal: np.ndarray) -> np.ndarray:
  """Rows of counts backed off to `marginal`, normalised."""
  rows = counts + _BACKOFF * marginal
  return rows / rows.sum(axis=-1, keepdims=True)


def fit_prior(clips, codebook_size: int) -> Prior:
  """Fits a `Prior` on `[T, H, W, N]` codes (e.g. a train split's clips)."""
  k = int(codebook_size)
  if not 2 <= k <= MAX_PRIOR_CODEBOOK:
    raise ValueError(f'A prior needs 2 <= codebook_size <= '
                     f'{MAX_PRIOR_CODEBOOK}, got {codebook_size}.')
  first = transition = cross = None
  for clip in clips:
    clip = _check_codes(clip).astype(np.int64)
    if clip.size and (clip.min() < 0 or clip.max() >= k):
      raise ValueError(f'Codes in [{clip.min()}, {clip.max()}] do not fit '
                       f'codebook_size={k}.')
    n = clip.shape[3]
    if first is None:
      first, transition, cross = (np.zeros((n, k)), np.zeros((n, k, k)),
                                  np.zeros((n, k, k)))
    elif n != first.shape[0]:
      raise ValueError(f'Clips of {n} and {first.shape[0]} codebooks.')
    codebook = np.broadcast_to(np.arange(n), clip.shape)
    np.add.at(first, (codebook.ravel(), clip.ravel()), 1)
    changed = clip[1:] != clip[:-1]
    np.add.at(transition, (codebook[1:][changed], clip[:-1][changed],
                           clip[1:][changed]), 1)
    np.add.at(cross, (codebook[..., 1:].ravel(), clip[..., :-1].ravel(),
                      clip[..., 1:].ravel()), 1)
  if first is None:
    raise ValueError('fit_prior needs at least one clip.')
  marginal = (first + 0.5) / (first + 0.5).sum(axis=1, keepdims=True)
  def weights(p):
    return np.maximum(1.0, np.round(p * 2.0**20))

  return Prior(first=weights(marginal),
               transition=weights(_smoothed(transition, marginal[:, None])),
               cross=weights(_smoothed(cross, marginal[:, None])))


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


def _check_prior(prior: Prior, codes: np.ndarray) -> None:
  if codes.shape[3] != prior.num_codebooks:
    raise ValueError(f'Codes of {codes.shape[3]} codebooks for a prior of '
                     f'{prior.num_codebooks}.')
  if codes.size and (codes.min() < 0 or codes.max() >= prior.codebook_size):
    raise ValueError(f'Codes in [{codes.min()}, {codes.max()}] do not fit '
                     f'the prior of codebook_size={prior.codebook_size}.')


def encode(codes: np.ndarray, prior: Prior | None = None) -> bytes:
  """`[T, H, W, N]` integer codes (any integer dtype) -> bytes.

  `decode(encode(codes))` equals `codes` in values, shape and dtype; with
  a `prior` (`fit_prior`), `decode(encode(codes, prior), prior)` does.
  """
  codes = _check_codes(codes)
  if prior is not None:
    _check_prior(prior, codes)
    mode, table, lo, size = _ALPHABET_PRIOR, None, 0, prior.codebook_size
  else:
    mode, table, lo, size = _alphabet(codes)
  # Varints: a clip's header is ~17 bytes, 0.07 bits an index of a
  # 16x8x8x2 clip, where fixed 8-byte fields cost 0.3.
  parts = [_HEADER.pack(MAGIC, VERSION, codes.dtype.kind.encode('ascii'),
                        codes.dtype.itemsize),
           *map(_varint, codes.shape), bytes([mode]), _varint(_zigzag(lo)),
           _varint(size)]
  if table is not None:
    parts.append(table.astype('<i8').tobytes())
  if prior is not None:
    parts.append(_CRC.pack(prior.fingerprint()))
  method, payload = _RANGE_CODED, b''
  if codes.size and size > 1:
    ranks = (np.searchsorted(table, codes) if table is not None else
             codes.astype(np.int64) - lo)
    coder = constriction.stream.queue.RangeEncoder()
    _code_frames(ranks, codes.shape, size, coder, decoding=False,
                 prior=prior)
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


def decode(data: bytes, prior: Prior | None = None) -> np.ndarray:
  """Bytes of `encode` -> the codes, shape and dtype as they were encoded.

  Codes encoded with a prior need the same prior (checked by fingerprint).
  """
  reader = _Reader(bytes(data))
  magic, version, kind, itemsize = reader.unpack(_HEADER, 'header')
  if magic != MAGIC:
    raise ValueError(f'Not entropy-coded codes: starts with {magic!r}, '
                     f'expected {MAGIC!r}.')
  if version != VERSION:
    raise ValueError(f'Entropy-coded codes of version {version}; this reader '
                     f'knows version {VERSION}.')
  try:
    dtype = np.dtype(f'<{kind.decode("ascii")}{itemsize}')
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
  elif mode == _ALPHABET_PRIOR:
    (fingerprint,) = reader.unpack(_CRC, 'prior fingerprint')
    if prior is None:
      raise ValueError('These codes were entropy-coded with a prior; pass '
                       'it to decode (the dataset\'s entropy prior).')
    if fingerprint != prior.fingerprint() or size != prior.codebook_size:
      raise ValueError('These codes were entropy-coded with another prior '
                       f'(fingerprint {fingerprint:08x}, this one '
                       f'{prior.fingerprint():08x}).')
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
      ranks = _code_frames(None, shape, size, decoder, decoding=True,
                           prior=prior if mode == _ALPHABET_PRIOR else None)
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


def stored_compression_rate(raw_bytes: int, codes,
                            prior: Prior | None = None) -> float:
  """Raw video bytes over the bytes of `encode` on each clip's codes.

  `codes`: the `[T, H, W, N]` codes of those videos, one array a clip, as
  a code dataset stores them (headers included), so the codec's rate is
  measured in bytes like H.264's.
  """
  stored = sum(len(encode(c, prior)) for c in codes)
  if stored == 0:
    raise ValueError('No codes to measure.')
  return raw_bytes / stored
