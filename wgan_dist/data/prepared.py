"""The prepared dataset format: writing it, opening and checking it, and reading its records.

A prepared dataset (docs/data.md) is a directory of shard files of fixed-length records plus a
`dataset.json` written last. Record i is at a computable offset, so a reader fetches exactly
the records it is asked for: the input pipeline keeps its order (a pure function of seed and
position) and each input pipeline reads only the examples of its share of each global batch;
nothing is listed, decoded or held in memory at start-up. Every record carries a CRC-32 of its
global index and bytes, checked on every read, so a changed, moved or swapped record names its
shard. Paths go through tf.io.gfile (local disks, cluster file systems, buckets, ram://).
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import threading
import zlib
from typing import Any, Iterator, Optional

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from wgan_dist.data import errors

FORMAT = 'wgan_dist.prepared'
FORMAT_VERSION = 1
METADATA = 'dataset.json'
_LABEL_BYTES = 4
_CRC_BYTES = 4
# Bounded read-ahead of the training stream: batches read in parallel, then batches kept ready.
READ_PARALLELISM = 4
READ_AHEAD_BATCHES = 2


class ShardError(errors.DataError):
  """A shard that is missing, truncated or altered; the message names it."""


def shard_name(index: int) -> str:
  return f'shard-{index:05d}.bin'


def record_bytes(image_shape: tuple[int, int, int], labelled: bool) -> int:
  return int(np.prod(image_shape)) + (_LABEL_BYTES if labelled else 0) + _CRC_BYTES


def fingerprint(image_shape: tuple[int, ...], labelled: bool, shard_sha256s: list[str]) -> str:
  """The dataset's content identity (docs/data.md): its layout and its shards' sha256s."""
  identity = {'format_version': FORMAT_VERSION, 'image_shape': list(image_shape),
              'labelled': bool(labelled), 'shards': list(shard_sha256s)}
  text = json.dumps(identity, sort_keys=True, separators=(',', ':'))
  return 'sha256:' + hashlib.sha256(text.encode('utf-8')).hexdigest()


def _index_bytes(index: int) -> bytes:
  # The CRC of record i starts from its index's bytes: a record moved or a shard swapped fails.
  return index.to_bytes(8, 'little', signed=True)


def _record_crcs(first_index: int, payload: np.ndarray) -> np.ndarray:
  """uint32 CRC-32 of each row of `payload` [n, bytes], started from the row's global index."""
  return np.array([zlib.crc32(row, zlib.crc32(_index_bytes(first_index + i)))
                   for i, row in enumerate(payload)], np.uint32)


class Writer:
  """Appends images (and labels) to shards of `images_per_shard` records; `close` writes
  dataset.json last, under a temporary name then renamed, so an interrupted write leaves a
  directory without one (which no reader takes for a dataset)."""

  def __init__(self, out_dir: str, image_shape: tuple[int, int, int], labelled: bool,
               images_per_shard: int):
    self.out_dir, self.image_shape, self.labelled = out_dir, tuple(image_shape), labelled
    self.images_per_shard = images_per_shard
    self.record_bytes = record_bytes(self.image_shape, labelled)
    self.count = 0
    self.shards: list[dict[str, Any]] = []
    self.label_counts: list[int] = []
    self._file = None
    self._hash = None
    tf.io.gfile.makedirs(out_dir)

  def _close_shard(self) -> None:
    if self._file is not None:
      self._file.close()
      self.shards[-1]['sha256'] = self._hash.hexdigest()
      self._file = None

  def append(self, images: np.ndarray, labels: Optional[np.ndarray] = None) -> None:
    """images uint8 [n, H, W, C]; labels int [n] when labelled."""
    if images.dtype != np.uint8 or images.shape[1:] != self.image_shape:
      raise ValueError(f'expected uint8 images of shape {self.image_shape}, got '
                       f'{images.dtype} {images.shape[1:]}')
    if (labels is not None) != self.labelled:
      raise ValueError('labels must be given exactly when the dataset is labelled')
    count = len(images)
    records = np.empty((count, self.record_bytes), np.uint8)
    pixels = int(np.prod(self.image_shape))
    records[:, :pixels] = images.reshape(count, pixels)
    if self.labelled:
      labels = np.asarray(labels).astype('<i4')
      records[:, pixels:pixels + _LABEL_BYTES] = labels.view(np.uint8).reshape(count, 4)
      top = int(labels.max()) + 1 if count else 0
      self.label_counts += [0] * max(0, top - len(self.label_counts))
      for label, n in zip(*np.unique(labels, return_counts=True)):
        self.label_counts[int(label)] += int(n)
    records[:, -_CRC_BYTES:] = _record_crcs(self.count, records[:, :-_CRC_BYTES]).astype(
        '<u4').view(np.uint8).reshape(count, 4)
    start = 0
    while start < count:
      if self._file is None or self.shards[-1]['count'] == self.images_per_shard:
        self._close_shard()
        name = shard_name(len(self.shards))
        self._file = tf.io.gfile.GFile(os.path.join(self.out_dir, name), 'wb')
        self._hash = hashlib.sha256()
        self.shards.append({'file': name, 'count': 0, 'bytes': 0, 'sha256': None})
      shard = self.shards[-1]
      take = min(count - start, self.images_per_shard - shard['count'])
      chunk = records[start:start + take].tobytes()
      self._file.write(chunk)
      self._hash.update(chunk)
      shard['count'] += take
      shard['bytes'] += len(chunk)
      start += take
    self.count += count

  def close(self, class_names: Optional[list[str]] = None, **extra: Any) -> dict[str, Any]:
    """Finishes the last shard and writes dataset.json (extra: more of its fields); returns it."""
    self._close_shard()
    if not self.count:
      raise errors.DataError(f'no images to write to {self.out_dir!r}')
    num_classes = 0
    if self.labelled:
      num_classes = max(len(self.label_counts), len(class_names or ()))
    height, width, channels = self.image_shape
    meta = {
        'format': FORMAT, 'format_version': FORMAT_VERSION, 'count': self.count,
        'image_shape': [height, width, channels], 'image_size': height, 'channels': channels,
        'record_bytes': self.record_bytes, 'labelled': self.labelled,
        'num_classes': num_classes,
        'class_names': list(class_names) if class_names else None,
        'label_counts': (self.label_counts + [0] * (num_classes - len(self.label_counts))
                         if self.labelled else None),
        'images_per_shard': self.images_per_shard, 'shards': self.shards,
        'fingerprint': fingerprint(self.image_shape, self.labelled,
                                   [shard['sha256'] for shard in self.shards]),
        **extra}
    temporary = os.path.join(self.out_dir, METADATA + '.tmp')
    with tf.io.gfile.GFile(temporary, 'w') as f:
      json.dump(meta, f, indent=1)
    tf.io.gfile.rename(temporary, os.path.join(self.out_dir, METADATA), overwrite=True)
    return meta


@dataclasses.dataclass(frozen=True)
class Dataset:
  """An opened, checked prepared dataset: its metadata and the reading of its records."""
  path: str
  meta: dict
  # Whether the source hands out the labels (a conditional run); an unconditional one ignores
  # them, as every other source does.
  with_labels: bool = False

  @property
  def count(self) -> int:
    return self.meta['count']

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.meta['image_shape'])

  @property
  def labelled(self) -> bool:
    return self.meta['labelled']

  @property
  def fingerprint(self) -> str:
    return self.meta['fingerprint']

  @property
  def class_names(self) -> Optional[tuple[str, ...]]:
    names = self.meta.get('class_names')
    return tuple(names) if names else None

  def shard_path(self, shard: int) -> str:
    return os.path.join(self.path, self.meta['shards'][shard]['file'])

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [n, H, W, C], int32 labels [n] (-1 when unlabelled)) of records
    `indices`; a ShardError names the shard of a record that is missing or fails its CRC."""
    return _reader(self).read(np.asarray(indices, np.int64))


def _field_error(path: str, message: str) -> errors.DataError:
  return errors.DataError(f'{os.path.join(path, METADATA)}: {message}')


def open_dataset(path: str) -> Dataset:
  """Reads and checks dataset.json and the shards' presence and sizes (no record is read)."""
  if not path:
    raise errors.DataError("data.source='prepared' needs data.path: a directory written by "
                            'python -m wgan_dist.prepare')
  meta_path = os.path.join(path, METADATA)
  if not tf.io.gfile.exists(meta_path):
    half = tf.io.gfile.exists(meta_path + '.tmp') or (
        tf.io.gfile.isdir(path) and tf.io.gfile.glob(os.path.join(path, 'shard-*.bin')))
    why = (' (it holds shards but no dataset.json: an interrupted prepare; run it again)' if half
           else '')
    raise errors.DataError(f'data.path={path!r} has no {METADATA}{why}; allowed: a directory '
                            'written by python -m wgan_dist.prepare')
  try:
    with tf.io.gfile.GFile(meta_path, 'r') as f:
      meta = json.load(f)
  except (ValueError, tf.errors.OpError) as error:
    raise _field_error(path, f'does not read as JSON: {error}') from error
  if not isinstance(meta, dict) or meta.get('format') != FORMAT:
    raise _field_error(path, f'format is {meta.get("format") if isinstance(meta, dict) else None!r}'
                       f'; allowed: {FORMAT!r}')
  version = meta.get('format_version')
  if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
    raise _field_error(path, f'format_version={version!r} is newer than this wgan_dist reads '
                       f'(allowed: 1..{FORMAT_VERSION}); upgrade wgan_dist or prepare the data '
                       'again with this version')
  try:
    shape = tuple(int(side) for side in meta['image_shape'])
    expected = record_bytes(shape, bool(meta['labelled']))
    per_shard, shards, count = meta['images_per_shard'], meta['shards'], meta['count']
  except (KeyError, TypeError, ValueError) as error:
    raise _field_error(path, f'missing or malformed field {error}') from error
  if meta['record_bytes'] != expected or sum(s['count'] for s in shards) != count or any(
      s['count'] != per_shard for s in shards[:-1]):
    raise _field_error(path, 'record_bytes, count and the shards\' counts disagree')
  dataset = Dataset(path, meta)
  for index, shard in enumerate(shards):
    shard_path = dataset.shard_path(index)
    if not tf.io.gfile.exists(shard_path):
      raise ShardError(f'shard {shard_path} is missing ({count} images in {len(shards)} shards '
                       f'listed in {METADATA}); prepare the data again or restore the file')
    size = tf.io.gfile.stat(shard_path).length
    if size != shard['count'] * expected:
      raise ShardError(f'shard {shard_path} has {size} bytes; {METADATA} says '
                       f'{shard["count"]} records of {expected} bytes = '
                       f'{shard["count"] * expected} (truncated or replaced); prepare the data '
                       'again or restore the file')
  return dataset


def check_config(dataset: Dataset, config: ml_collections.ConfigDict) -> None:
  """One line naming the field when the dataset does not fit the config."""
  data, where = config.data, f"data.path={dataset.path!r} (data.source='prepared')"
  height, width, channels = dataset.image_shape
  if height != data.image_size or width != data.image_size:
    raise errors.DataError(f'{where} holds {height}x{width} images but data.image_size='
                            f'{data.image_size}; allowed: data.image_size={height}, or prepare '
                            f'the data again with --image_size={data.image_size}')
  if channels != data.channels:
    raise errors.DataError(f'{where} holds {channels}-channel images but data.channels='
                            f'{data.channels}; allowed: data.channels={channels}, or prepare the '
                            f'data again with --channels={data.channels}')
  if data.center_crop:
    logging.info("data.center_crop has no effect on data.source='prepared': prepare cropped "
                 'once (its options are in %s)', METADATA)
  num_classes = config.model.num_classes
  if num_classes > 0:
    if not dataset.labelled:
      raise errors.DataError(f'{where} has no labels; model.num_classes={num_classes} needs a '
                              'label per image; allowed: a labelled dataset, or '
                              'model.num_classes=0 (unconditional)')
    if dataset.meta['num_classes'] > num_classes:
      raise errors.DataError(
          f'{where} has labels 0..{dataset.meta["num_classes"] - 1} but model.num_classes='
          f'{num_classes}; allowed: model.num_classes >= {dataset.meta["num_classes"]}')


class _Reader:
  """Reads records by global index; thread-safe (tf.data runs it on several threads).

  Local shards are read with os.pread on shared descriptors (no seek state); other file
  systems with one tf.io.gfile.GFile per thread and shard. Counts what it reads, per shard.
  """

  def __init__(self, dataset: Dataset):
    self.dataset = dataset
    self.pixels = int(np.prod(dataset.image_shape))
    self.record_bytes = dataset.meta['record_bytes']
    self.per_shard = dataset.meta['images_per_shard']
    self.local = '://' not in dataset.path or dataset.path.startswith('file://')
    self._fds: dict[int, int] = {}
    self._threads = threading.local()
    self._lock = threading.Lock()
    self.records_read = np.zeros(len(dataset.meta['shards']), np.int64)

  def _read_bytes(self, shard: int, offset: int) -> bytes:
    if self.local:
      fd = self._fds.get(shard)
      if fd is None:
        with self._lock:
          fd = self._fds.get(shard)
          if fd is None:
            path = self.dataset.shard_path(shard)
            fd = os.open(path[len('file://'):] if path.startswith('file://') else path,
                         os.O_RDONLY)
            self._fds[shard] = fd
      return os.pread(fd, self.record_bytes, offset)
    files = getattr(self._threads, 'files', None)
    if files is None:
      files = self._threads.files = {}
    if shard not in files:
      files[shard] = tf.io.gfile.GFile(self.dataset.shard_path(shard), 'rb')
    files[shard].seek(offset)
    return files[shard].read(self.record_bytes)

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    count = len(indices)
    images = np.empty((count, self.pixels), np.uint8)
    labels = np.full(count, -1, np.int32)
    shards = indices // self.per_shard
    for row, (index, shard) in enumerate(zip(indices.tolist(), shards.tolist())):
      offset = (index - shard * self.per_shard) * self.record_bytes
      try:
        record = self._read_bytes(shard, offset)
      except (OSError, tf.errors.OpError) as error:
        raise ShardError(f'shard {self.dataset.shard_path(shard)} does not read at record '
                         f'{index}: {error}') from error
      if len(record) != self.record_bytes or zlib.crc32(
          memoryview(record)[:-_CRC_BYTES], zlib.crc32(_index_bytes(index))
      ) != int.from_bytes(record[-_CRC_BYTES:], 'little'):
        what = ('is truncated' if len(record) != self.record_bytes
                else 'fails its checksum (the shard was altered, replaced or reordered)')
        raise ShardError(f'shard {self.dataset.shard_path(shard)}: record {index} {what}; '
                         'prepare the data again or restore the file')
      images[row] = np.frombuffer(record, np.uint8, self.pixels)
      if self.dataset.labelled:
        labels[row] = int.from_bytes(record[self.pixels:self.pixels + _LABEL_BYTES], 'little',
                                     signed=True)
    counts = np.bincount(shards, minlength=len(self.records_read))
    with self._lock:
      self.records_read += counts
    return images.reshape((count,) + self.dataset.image_shape), labels


_READERS: dict[tuple[str, str], _Reader] = {}
_READERS_LOCK = threading.Lock()


def _reader(dataset: Dataset) -> _Reader:
  """One reader per dataset and process: its descriptors and read counts are shared."""
  key = (dataset.path, dataset.fingerprint)
  with _READERS_LOCK:
    if key not in _READERS:
      _READERS[key] = _Reader(dataset)
    return _READERS[key]


def log_reads() -> None:
  """One line per prepared dataset this process opened: what it read (a worker of a
  multi-worker job reads only its share). The training driver calls it when training ends."""
  for reader in _READERS.values():
    read = reader.records_read
    logging.info('Prepared dataset %s: this process read %d records (%d bytes) from %d of its '
                 '%d shards', reader.dataset.path, read.sum(), read.sum() * reader.record_bytes,
                 np.count_nonzero(read), len(read))


def records_read(dataset: Dataset) -> np.ndarray:
  """How many records this process has read from each shard of `dataset` so far."""
  return _reader(dataset).records_read.copy()


_ERROR_MARK = 'PREPARED-DATA-ERROR: '


def read_batches(dataset: Dataset, index_batches: tf.data.Dataset) -> tf.data.Dataset:
  """(uint8 images [b, H, W, C], int32 labels [b]) for each batch of int64 indices, read in
  parallel (READ_PARALLELISM batches at a time) in order."""
  shape = dataset.image_shape

  def read(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
      return dataset.read(indices)
    except ShardError as error:
      # Marked, so the training loop can give this one line instead of a traceback.
      raise ShardError(_ERROR_MARK + str(error) + '\n') from error

  def read_op(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    images, labels = tf.numpy_function(read, [indices], (tf.uint8, tf.int32), stateful=False)
    images.set_shape(indices.shape[:1].concatenate(shape))
    labels.set_shape(indices.shape[:1])
    return images, labels

  return index_batches.map(read_op, num_parallel_calls=READ_PARALLELISM, deterministic=True)


@contextlib.contextmanager
def naming_bad_shards() -> Iterator[None]:
  """Turns a bad-shard error raised inside the input pipeline into its one-line ShardError."""
  try:
    yield
  except tf.errors.OpError as error:
    shard_error = data_error(error)
    if shard_error is not None:
      raise shard_error from error
    raise


def data_error(error: BaseException) -> Optional[errors.DataError]:
  """The one-line ShardError a read raised inside the input pipeline, if `error` carries one."""
  message = str(getattr(error, 'message', error))
  start = message.find(_ERROR_MARK)
  if start < 0:
    return None
  line = message[start + len(_ERROR_MARK):].splitlines()[0]
  return ShardError(line)
