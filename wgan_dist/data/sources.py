"""Where the real images come from: SOURCES, the registry of `data.source`, and
`load_source(config)`, which finds, checks and loads the source the config names.

A new source is a loader (a function of the config, in its own module when it is more than a
few lines) and one entry in SOURCES (docs/extending.md). `load_source(config)` returns a
`Source` (in-memory images, a list of image files, or a prepared dataset) so that bad input
fails here, before any training work, with a DataError naming the field, the path or file
and what is allowed. What happens to the images afterwards (order, sharding, batching, scaling
to [-1, 1]) is data/input_pipeline.py's job.

What load_source checks:
- 'folder': the directory exists and holds image files; every file is decoded once with the
  decoder training uses (TensorFlow's), so a file that would fail mid-run fails now, and its
  bytes hashed into the folder's fingerprint (folder_fingerprint). Files that cannot be read
  or decoded stop the run naming them (`data.on_bad_image='fail'`), or are left out with a
  warning giving their count and first names ('skip'); none decodable is an error. From
  SCAN_ADVICE_FILES files on, a warning gives the scan's time and points to `prepare`.
  Files whose channel count differs from data.channels are converted when the pipeline decodes
  them: grayscale is replicated to RGB; alpha is dropped; colour becomes luminance for
  data.channels=1. One log line per run gives the counts (a warning when the conversion loses
  information).
- 'tfds': the data set `data.path` (its split `data.split`, in `data.tfds_data_dir` or TFDS's
  default directory) is read example by example into one array of the split's size; its images
  must have one fixed shape (varying sizes are refused, pointing to `python -m wgan_dist.prepare`:
  padding or resizing a whole split in memory is what that command does once, on disk).
- 'npz': read into memory once (one copy, not memory-mapped: a file rewritten while the run
  reads it would crash a memory map; data beyond RAM belongs in a prepared data set).
- In-memory arrays ('npz', 'tfds', keras.datasets): the channel count must equal data.channels
  (arrays are not converted); pixels must be uint8, another integer type within [0, 255] (read
  as uint8), or finite floats in [0, 1]; anything else (e.g. floats in [0, 255] or [-1, 1]) is
  an error giving the dtype and the range found.
- Labels, only when model.num_classes > 0 (an unconditional run reads none and accepts every
  folder layout it always has): 'embedded_mnist', 'mnist', 'fashion_mnist' and 'cifar10' carry
  their labels and class names; 'folder' needs one sub-directory per class (sorted names -> ids
  0, 1, ...; images directly in data.path are an error); 'npz' needs a 'y' or 'labels' integer
  array of one label per image (class names unknown: None); 'tfds' its 'label' feature. A source
  without labels, labels outside [0, num_classes), non-integer labels, a label count that differs
  from the image count, or more class sub-directories than num_classes is an error.
- 'prepared' (data/prepared.py): dataset.json, its format version, the shards' presence and
  sizes, and the image size, channels and labels against the config; no record is read.
- Only sources that can download ('mnist', 'fashion_mnist', 'cifar10', 'tfds') touch the network,
  and only with data.allow_download.

The config is trusted to have passed config validation (data.source is one of SOURCES,
data.on_bad_image one of config/schema.py's values).
"""

import collections
import dataclasses
import hashlib
import math
import os
import re
import socket
import time
import zipfile
from typing import Any, Callable, Optional, Union

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from wgan_dist.config import registry
from wgan_dist.data import errors
from wgan_dist.data import loader
from wgan_dist.data import prepared

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif')
# Bad files named in an error or warning (with the reason); the rest are only counted.
NAMED_BAD_FILES = 5
_CHANNEL_NAMES = {1: 'grayscale', 2: 'grayscale+alpha', 3: 'RGB', 4: 'RGBA'}
# Seconds a download may wait for the network before the source counts as unavailable.
_DOWNLOAD_TIMEOUT_S = 20


DataError = errors.DataError  # Defined apart so that data/prepared.py raises it too.

# What a loader returns and the checks it may call live in data/loader.py, which a loader
# module of its own imports (importing this module, which imports it to register it, would be
# an import cycle); the names sources' own loaders use.
Loaded = loader.Loaded
check_labels = loader.check_labels
check_pixels = loader.check_pixels



# Class names of the sources that have them, in label order.
MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASS_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                             'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
CIFAR10_CLASS_NAMES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                       'ship', 'truck')


@dataclasses.dataclass(frozen=True)
class Source:
  """In-memory images (uint8 or float, [N, H, W, C]), a list of image files, or a prepared
  dataset (data/prepared.py's Dataset: streamed, its labels in its records).

  labels: int32 [N], labels[i] the class of images[i] / files[i]; None for an unconditional run
  (model.num_classes = 0) and for a prepared dataset. class_names: the name of each label id,
  when known. fingerprint: the content fingerprint when the loader knows it (a folder's, from
  its scan; a prepared dataset's, from its dataset.json); None: data/identity.py hashes the
  arrays.
  """
  name: str
  images: Optional[np.ndarray] = None
  files: Optional[list[str]] = None
  labels: Optional[np.ndarray] = None
  class_names: Optional[tuple[str, ...]] = None
  prepared: Optional[Any] = None
  fingerprint: Optional[str] = None

  def __post_init__(self):
    # A label per example, or the pipeline would pair images with the wrong labels.
    if self.labels is not None and (self.labels.shape != (self.size,)
                                    or self.labels.dtype != np.int32):
      raise ValueError(f'Source {self.name!r}: labels must be int32 [{self.size}] (one per '
                       f'image), got {self.labels.dtype} {self.labels.shape}')

  @property
  def size(self) -> int:
    if self.prepared is not None:
      return self.prepared.count
    return len(self.images) if self.images is not None else len(self.files)

  @property
  def has_labels(self) -> bool:
    return self.labels is not None or (self.prepared is not None and self.prepared.with_labels)

  def subset(self, indices: np.ndarray) -> 'Source':
    """The examples at `indices`, with their labels (a prepared dataset's are read into
    memory). Other content, so another fingerprint: derived from this one and the indices
    when this source has one (subset_fingerprint; a file list has no arrays to hash), else
    none (data/identity.py hashes the arrays)."""
    fingerprint = (subset_fingerprint(self.fingerprint, indices) if self.fingerprint
                   else None)
    if self.prepared is not None:
      images, labels = self.prepared.read(np.asarray(indices))
      return Source(self.name, images=images, class_names=self.class_names,
                    labels=labels if self.has_labels else None, fingerprint=fingerprint)
    return dataclasses.replace(
        self, images=None if self.images is None else self.images[indices],
        files=None if self.files is None else [self.files[i] for i in indices],
        labels=None if self.labels is None else self.labels[indices], fingerprint=fingerprint)


def subset_fingerprint(fingerprint: str, indices: np.ndarray) -> str:
  """The fingerprint of the examples at `indices` of a source fingerprinted `fingerprint`:
  SHA-256 of that fingerprint and the indices in order (the same on every worker that holds the
  same data and picks the same examples)."""
  digest = hashlib.sha256(f'{fingerprint}\n'.encode())
  digest.update(np.ascontiguousarray(indices, dtype='<i8').tobytes())
  return 'subset-sha256:' + digest.hexdigest()


def embedded_mnist_path() -> str:
  """Directory of the 5,000 real MNIST digits shipped in the package: a prepared dataset
  (data/prepared.py; its dataset.json names the provenance and the licence, CC BY-SA 3.0)."""
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'embedded_mnist')


def load_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
  """The embedded sample as (uint8 images [5000, 28, 28, 1], int64 labels [5000]), 500 per
  class in class order."""
  dataset = prepared.open_dataset(embedded_mnist_path())
  images, labels = dataset.read(np.arange(dataset.count))
  return images, labels.astype(np.int64)


# What keras.datasets leaves in its cache directory for each source (Keras 3 extracts CIFAR-10
# into cifar-10-batches-py-target/; Keras 2 into cifar-10-batches-py/).
_KERAS_CACHE_NAMES = {'mnist': ('mnist.npz',), 'fashion_mnist': ('fashion-mnist',),
                      'cifar10': ('cifar-10-batches-py-target', 'cifar-10-batches-py')}


def _keras_dataset(name: str, loader: Callable, allow_download: bool
                   ) -> Optional[tuple[np.ndarray, np.ndarray]]:
  """(train images, train labels [N]) of a keras.datasets set, or None when neither cached nor
  downloadable."""
  cache_dir = os.path.join(os.environ.get('KERAS_HOME', os.path.expanduser('~/.keras')),
                           'datasets')
  cached = any(os.path.exists(os.path.join(cache_dir, entry))
               for entry in _KERAS_CACHE_NAMES[name])
  if not cached and not allow_download:
    return None
  previous_timeout = socket.getdefaulttimeout()
  socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)  # An offline machine must not hang here.
  try:
    (images, labels), _ = loader()
  except Exception as error:  # pylint: disable=broad-except
    logging.info('keras.datasets %s unavailable: %s', name, error)
    return None
  finally:
    socket.setdefaulttimeout(previous_timeout)
  # CIFAR-10's labels are [N, 1].
  return images if images.ndim == 4 else images[..., None], labels.reshape(-1)


def _list_image_files(path: str) -> list[str]:
  if not path:
    raise DataError("data.source='folder' needs data.path: a directory of image files")
  if not os.path.isdir(path):
    raise DataError(f"data.path={path!r} (data.source='folder') is not an existing directory")
  files = sorted(
      os.path.join(root, name) for root, _, names in os.walk(path) for name in names
      if name.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise DataError(f"data.path={path!r} (data.source='folder') holds no image files; "
                    f'allowed extensions: {IMAGE_EXTENSIONS}')
  return files


def _needs_labels(num_classes: int) -> str:
  return (f'model.num_classes={num_classes} needs a label per image; allowed: a labelled '
          'source, or model.num_classes=0 (unconditional)')


def _folder_classes(path: str, files: list[str], num_classes: int) -> tuple[str, ...]:
  """The sorted names of the class sub-directories of data.path (the top-level directories that
  hold image files): a file's class is the first directory of its path under data.path."""
  relative = [os.path.relpath(file, path).split(os.sep) for file in files]
  in_root = [parts[0] for parts in relative if len(parts) == 1]
  classes = tuple(sorted({parts[0] for parts in relative if len(parts) > 1}))
  where = f"data.path={path!r} (data.source='folder')"
  if not classes:
    raise DataError(f'{where} has images but no class sub-directories; '
                    f'{_needs_labels(num_classes)} (a folder: one sub-directory of images per '
                    'class)')
  if in_root:
    raise DataError(
        f'{where} has {len(in_root)} image file(s) directly in it ({", ".join(in_root[:3])}'
        f'{", ..." if len(in_root) > 3 else ""}) besides its {len(classes)} class '
        f'sub-directories; with model.num_classes={num_classes} every image must be in a class '
        'sub-directory')
  if len(classes) > num_classes:
    raise DataError(
        f'{where} has {len(classes)} class sub-directories ({", ".join(classes[:5])}'
        f'{", ..." if len(classes) > 5 else ""}) but model.num_classes={num_classes}; allowed: '
        f'at most num_classes class sub-directories (set model.num_classes={len(classes)})')
  return classes


def _folder_labels(path: str, files: list[str], classes: tuple[str, ...]) -> np.ndarray:
  ids = {name: label for label, name in enumerate(classes)}
  return np.array([ids[os.path.relpath(file, path).split(os.sep)[0]] for file in files],
                  np.int32)


def _probe_file(index: tf.Tensor, path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """(index, native channel count, farmhash64 of the bytes) of a file that reads and decodes;
  an error otherwise."""
  contents = tf.io.read_file(path)
  # JPEGs decode at 1/8 scale: libjpeg still reads and entropy-decodes the whole stream, so a
  # truncated or corrupt file fails as in a full decode (tested), at about half the cost.
  image = tf.cond(tf.io.is_jpeg(contents),
                  lambda: tf.io.decode_jpeg(contents, ratio=8),
                  lambda: tf.io.decode_image(contents, expand_animations=False))
  # The bytes are in memory for the decode already: their hash costs no extra read.
  return index, tf.shape(image)[-1], tf.fingerprint(contents[None])[0]


def _scan(files: list[str]) -> dict[int, tuple[int, bytes]]:
  """{index in `files`: (native channel count, 8-byte content hash)} of the files TensorFlow
  can read and decode; one parallel tf.data pass."""
  dataset = tf.data.Dataset.from_tensor_slices((tf.range(len(files), dtype=tf.int64), files))
  dataset = dataset.map(_probe_file, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  decoded = {}
  for indices, channels, hashes in dataset.ignore_errors().batch(4096).as_numpy_iterator():
    decoded.update(zip(indices.tolist(), zip(channels.tolist(), map(bytes, hashes))))
  return decoded


def scan_image_files(files: list[str]) -> dict[int, int]:
  """{index in `files`: native channel count} of the files TensorFlow can read and decode.

  One parallel tf.data pass; a file missing from the result failed to read or decode.
  """
  return {index: channels for index, (channels, _) in _scan(files).items()}


def folder_fingerprint(root: str, files: list[str], hashes: list[bytes]) -> str:
  """SHA-256 over each file's path relative to `root` and the hash of its bytes, in order.

  Contents, not sizes and modification times: a copy of the folder on each node (or one made
  without keeping mtimes) must give the same fingerprint on every worker, and a file rewritten
  at the same size must change it; the scan reads every file anyway.
  """
  digest = hashlib.sha256()
  for path, content_hash in zip(files, hashes):
    digest.update(os.path.relpath(path, root).replace(os.sep, '/').encode() + b'\0')
    digest.update(content_hash)
  return 'sha256:' + digest.hexdigest()


def decode_error(path: str) -> str:
  """TensorFlow's reason, in one line, why `path` does not read or decode ('' if it does)."""
  try:
    tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
  except tf.errors.OpError as error:
    # Drop the op's '{{function_node ...}}' prefix and ' [Op:DecodeImage] ...' suffix.
    message = re.sub(r'^\{\{[^}]*\}\}\s*', '', error.message)
    lines = re.sub(r'\s*\[Op:.*$', '', message, flags=re.S).strip().splitlines()
    return lines[0] if lines else type(error).__name__
  return ''


def _name_bad_files(bad: list[str]) -> str:
  named = '; '.join(f'{path} ({decode_error(path) or "does not decode"})'
                    for path in bad[:NAMED_BAD_FILES])
  more = len(bad) - NAMED_BAD_FILES
  return named + (f'; and {more} more' if more > 0 else '')


def _log_channel_conversion(path: str, channel_counts: collections.Counter,
                            channels: int) -> None:
  """One line for the files whose channel count is not data.channels (decoding converts)."""
  others = {count: n for count, n in sorted(channel_counts.items()) if count != channels}
  if not others:
    return
  found = ', '.join(f'{n} {_CHANNEL_NAMES.get(count, f"{count}-channel")}'
                    for count, n in others.items())
  how = []
  if channels >= 3 and any(count <= 2 for count in others):
    how.append('grayscale replicated to RGB')
  if any(count in (2, 4) for count in others):
    how.append('alpha dropped')
  if channels == 1 and any(count >= 3 for count in others):
    how.append('colour reduced to luminance')
  # Gray to RGB loses nothing; dropping alpha or colour does, and may not be what was meant.
  lossy = any(count in (2, 4) for count in others) or (
      channels == 1 and any(count >= 3 for count in others))
  (logging.warning if lossy else logging.info)(
      'data.path=%r: %s of %d images converted to data.channels=%d when decoded (%s)', path,
      found, sum(channel_counts.values()), channels, '; '.join(how))


# Folders with at least this many files get a warning with the scan's time and a pointer to
# `prepare` (smaller ones scan in seconds).
SCAN_ADVICE_FILES = 20_000


def _check_image_files(files: list[str], data: ml_collections.ConfigDict
                       ) -> tuple[list[str], str]:
  """(the files that decode, per data.on_bad_image; their folder_fingerprint); raises DataError
  naming bad files.

  Every worker scans at every start: each must be able to read, through its own mount, every
  file it trains on, and a cache of the scan could only be trusted on sizes and modification
  times, which copies and clock skew break. A prepared data set starts without a scan.
  """
  start = time.perf_counter()
  decoded = _scan(files)
  seconds = time.perf_counter() - start
  logging.info('Decoded each of the %d image files under data.path=%r once to check them: '
               '%.1f s', len(files), data.path, seconds)
  if len(files) >= SCAN_ADVICE_FILES:
    logging.warning(
        "data.source='folder': checking the %d files under data.path=%r took %.1f s, on every "
        'worker at every start (and resume); `python -m wgan_dist.prepare` converts them once '
        "into shards that data.source='prepared' streams without a scan", len(files), data.path,
        seconds)
  bad = [path for index, path in enumerate(files) if index not in decoded]
  if len(bad) == len(files):
    raise DataError(f'none of the {len(files)} image files under data.path={data.path!r} '
                    f"(data.source='folder') reads and decodes: {_name_bad_files(bad)}")
  if bad and data.on_bad_image == 'fail':
    raise DataError(
        f'{len(bad)} of the {len(files)} image files under data.path={data.path!r} do not read '
        f"or decode: {_name_bad_files(bad)}. data.on_bad_image='fail' stops here; fix or "
        "remove them, or set data.on_bad_image='skip' to train without them")
  if bad:
    logging.warning(
        "Skipping %d of the %d image files under data.path=%r that do not read or decode "
        "(data.on_bad_image='skip'): %s", len(bad), len(files), data.path, _name_bad_files(bad))
  _log_channel_conversion(data.path, collections.Counter(
      channels for channels, _ in decoded.values()), data.channels)
  kept = [index for index in range(len(files)) if index in decoded]
  return ([files[index] for index in kept],
          folder_fingerprint(data.path, [files[index] for index in kept],
                             [decoded[index][1] for index in kept]))


def _load_npz(path: str, num_classes: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """(images, labels) of an .npz or .npy; labels read only when num_classes > 0 (else None)."""
  if not path or not os.path.isfile(path):
    raise DataError(f"data.path={path!r} (data.source='npz') is not an existing .npz file")
  where = f"data.path={path!r} (data.source='npz')"
  labels = None
  try:
    loaded = np.load(path)  # allow_pickle=False: an .npz cannot run code.
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
    raise DataError(f'{where} does not read as .npz or .npy: {error}') from error
  if isinstance(loaded, np.ndarray):  # A plain .npy file.
    if num_classes > 0:
      raise DataError(f"{where} is a plain .npy array, with no 'y' or 'labels' array; "
                      f'{_needs_labels(num_classes)} (an .npz with x and y)')
    images = loaded
  else:
    with loaded as archive:
      def read(key: str) -> np.ndarray:
        try:
          return archive[key]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
          raise DataError(f'data.path={path!r}: array {key!r} does not read: {error}') from error

      for key in ('x', 'images', 'x_train', 'arr_0'):
        if key in archive:
          images = read(key)
          break
      else:
        raise DataError(f'data.path={path!r} holds arrays {list(archive.keys())}; expected one '
                        "named 'x', 'images', 'x_train' or 'arr_0'")
      if num_classes > 0:
        label_key = next((key for key in ('y', 'labels') if key in archive), None)
        if label_key is None:
          raise DataError(f"{where} has no 'y' or 'labels' array (it holds "
                          f'{list(archive.keys())}); {_needs_labels(num_classes)}')
        labels = check_labels(read(label_key), len(images), num_classes,
                              f'{where} array {label_key!r}')
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or len(images) == 0:
    raise DataError(f'data.path={path!r}: images must be a non-empty [N, H, W] or '
                    f'[N, H, W, C] array, got shape {images.shape}')
  return images, labels


def _load_tfds(data: ml_collections.ConfigDict, num_classes: int
               ) -> tuple[np.ndarray, Optional[np.ndarray], Optional[tuple[str, ...]]]:
  """(images, labels, class names) of a TFDS data set's data.split, read example by example
  into one array of the split's size: the 'image' feature, and with num_classes > 0 the 'label'
  feature and its names (else None, None).

  Images must have one fixed shape (the feature's declared shape): a data set of varying sizes
  would have to be padded or resized here, so it is refused with a pointer to `prepare`.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise DataError("data.source='tfds' needs the tensorflow-datasets package "
                    '(pip install "wgan_dist[tfds]")') from error
  name, split = data.path, data.split
  if not name:
    raise DataError("data.source='tfds' needs data.path: a TFDS dataset name")
  where = f"data.path={name!r} (data.source='tfds', data.split={split!r})"
  try:
    builder = tfds.builder(name, data_dir=data.tfds_data_dir or None)
    if data.allow_download:
      builder.download_and_prepare()
    info = builder.info
    count = info.splits[split].num_examples
    # shuffle_files=False: the same order on every worker and at every start (the identity
    # hashes what was read).
    split_data = builder.as_dataset(split=split, shuffle_files=False)
  except Exception as error:  # pylint: disable=broad-except  # tfds has many error types.
    offline = '' if data.allow_download else (
        ' (data.allow_download=False: only a data set already prepared in the TFDS data '
        f'directory {data.tfds_data_dir or "(the default)"} is used)')
    raise DataError(f'{where} does not load{offline}: '
                    # First line only: tfds messages can run to many lines.
                    f'{type(error).__name__}: {(str(error).strip().splitlines() or [""])[0]}'
                    ) from error
  features = info.features
  if 'image' not in features:
    raise DataError(f"{where} has no 'image' feature; it has {sorted(features.keys())}")
  shape = tuple(features['image'].shape)
  if None in shape:
    raise DataError(
        f"{where} has images of varying size (feature 'image' of shape {shape}); allowed: one "
        'fixed shape (they are not padded or resized in memory): run `python -m '
        "wgan_dist.prepare` to crop and resize them once, then train with "
        "data.source='prepared'")
  with_labels = num_classes > 0
  if with_labels and 'label' not in features:
    raise DataError(f"{where} has no 'label' feature (it has {sorted(features.keys())}); "
                    f'{_needs_labels(num_classes)}')
  images = np.empty((count, *shape), tf.as_dtype(features['image'].dtype).as_numpy_dtype)
  labels = np.empty((count,), np.int64) if with_labels else None
  select = ((lambda example: (example['image'], example['label'])) if with_labels
            else (lambda example: (example['image'], tf.zeros([], tf.int64))))
  seen = 0
  for image_batch, label_batch in tfds.as_numpy(split_data.map(select).batch(256)):
    end = seen + len(image_batch)
    if end <= count:
      images[seen:end] = image_batch
      if with_labels:
        labels[seen:end] = label_batch
    seen = end
  if seen != count:
    raise DataError(f'{where} yielded {seen} examples but its split info says {count}; '
                    'allowed: a completely prepared split (prepare it again)')
  if not with_labels:
    return images, None, None
  labels = check_labels(labels, count, num_classes, f"{where} feature 'label'")
  # A ClassLabel feature has names; other label features (e.g. plain integers) do not.
  names = getattr(features['label'], 'names', None)
  return images, labels, tuple(names) if names else None


def _load_embedded(config: ml_collections.ConfigDict) -> Loaded:
  del config
  images, labels = load_embedded_mnist()
  return Loaded('embedded_mnist', images, labels=labels, class_names=MNIST_CLASS_NAMES)


# Full MNIST's training images, and the embedded sample's digits that eval_reference='heldout'
# keeps out of training (eval/classifier.py's split, 100 per class): what the offline fallback's
# warning counts with (tests/test_data.py checks both against the code that uses them).
FULL_MNIST_TRAIN_IMAGES = 60_000
EMBEDDED_HELD_OUT = 1_000


def _epoch_steps(config: ml_collections.ConfigDict, images: int) -> int:
  """train.num_epochs passes over `images` in generator steps (training/state.py's rule)."""
  per_step = config.train.global_batch_size * config.train.n_critic
  return max(1, math.ceil(config.train.num_epochs * images / per_step))


def fallback_warning(config: ml_collections.ConfigDict, sample_size: int) -> str:
  """The warning of a 'mnist' run that fell back to the embedded sample of `sample_size` digits:
  what it now trains on, the generator steps that implies, and how to keep full MNIST's."""
  images = sample_size - (EMBEDDED_HELD_OUT if config.eval_reference == 'heldout' else 0)
  if config.data.limit:
    images = min(images, config.data.limit)
  message = ('Full MNIST is not cached and could not be downloaded; training on the embedded '
             f"{sample_size:,}-image MNIST sample instead (data.source='embedded_mnist'), "
             f'{images:,} digits of it for training')
  if config.train.num_steps != -1:
    consumed = config.train.num_steps * config.train.global_batch_size * config.train.n_critic
    return (f'{message}: train.num_steps={config.train.num_steps} makes '
            f'{consumed / images:.3g} passes over them')
  full = _epoch_steps(config, min(FULL_MNIST_TRAIN_IMAGES, config.data.limit or math.inf))
  return (f'{message}: train.num_epochs={config.train.num_epochs:g} now means '
          f'{_epoch_steps(config, images):,} generator steps instead of {full:,} on full MNIST; '
          f'--config.train.num_steps={full} keeps the full schedule (or cache mnist.npz, '
          'BUILD.md)')


def _load_keras(config: ml_collections.ConfigDict) -> Loaded:
  """A keras.datasets set (its name is data.source); 'mnist' falls back to the embedded sample."""
  name = config.data.source
  loaded = _keras_dataset(name, getattr(tf.keras.datasets, name).load_data,
                          config.data.allow_download)
  if loaded is None and name == 'mnist':
    embedded = _load_embedded(config)
    logging.warning('%s', fallback_warning(config, len(embedded.images)))
    return embedded
  if loaded is None:
    raise DataError(f'data.source={name!r}: the data set is not cached under ~/.keras/datasets '
                    'and could not be downloaded')
  images, labels = loaded
  return Loaded(name, images, labels=labels, class_names=SOURCES.get(name).class_names)


def _load_folder(config: ml_collections.ConfigDict) -> Loaded:
  data, num_classes = config.data, config.model.num_classes
  files = _list_image_files(data.path)
  classes = _folder_classes(data.path, files, num_classes) if num_classes > 0 else None
  # After the layout check: decoding is work.
  files, fingerprint = _check_image_files(files, data)
  if classes is None:
    return Loaded('folder', files=files, fingerprint=fingerprint)
  logging.info('Classes of data.path=%r (sub-directory -> label): %s', data.path,
               ', '.join(f'{folder} -> {label}' for label, folder in enumerate(classes)))
  return Loaded('folder', files=files, labels=_folder_labels(data.path, files, classes),
                class_names=classes, fingerprint=fingerprint)


def _load_npz_source(config: ml_collections.ConfigDict) -> Loaded:
  images, labels = _load_npz(config.data.path, config.model.num_classes)
  return Loaded('npz', images, labels=labels)


def _load_prepared(config: ml_collections.ConfigDict) -> Source:
  """data.source='prepared': the opened and checked dataset at data.path (no record read)."""
  dataset = prepared.open_dataset(config.data.path)
  prepared.check_config(dataset, config)
  conditional = config.model.num_classes > 0
  logging.info('Data: prepared dataset %s, %d images %s in %d shards, %s', dataset.path,
               dataset.count, 'x'.join(map(str, dataset.image_shape)),
               len(dataset.meta['shards']), dataset.fingerprint)
  return Source('prepared', class_names=dataset.class_names if conditional else None,
                prepared=dataclasses.replace(dataset, with_labels=conditional),
                fingerprint=dataset.fingerprint)


def _load_tfds_source(config: ml_collections.ConfigDict) -> Loaded:
  images, labels, class_names = _load_tfds(config.data, config.model.num_classes)
  return Loaded('tfds', images, labels=labels, class_names=class_names)


@dataclasses.dataclass(frozen=True)
class SourceKind:
  """What `data.source` names: its loader, and what the shared checks need to know of it."""
  # load(validated config) -> Loaded: finds the images (and, with model.num_classes > 0, the
  # labels), raising DataError naming what is wrong; `load_source` checks the rest.
  # A source that checks itself returns its Source instead (a prepared dataset).
  load: Callable[[ml_collections.ConfigDict], Union[Loaded, 'Source']]
  # A built-in data set's class names in label order (its labels are range-checked against
  # model.num_classes); None for sources whose labels their loader checks.
  class_names: Optional[tuple[str, ...]] = None
  # Whether data.path names what is read (errors then name data.path).
  reads_path: bool = False


# data.source: the registry (config/registry.py) is the only list of allowed names.
SOURCES: registry.Registry[SourceKind] = registry.Registry('data.source', {
    'mnist': SourceKind(_load_keras, MNIST_CLASS_NAMES),
    'embedded_mnist': SourceKind(_load_embedded, MNIST_CLASS_NAMES),
    'fashion_mnist': SourceKind(_load_keras, FASHION_MNIST_CLASS_NAMES),
    'cifar10': SourceKind(_load_keras, CIFAR10_CLASS_NAMES),
    'folder': SourceKind(_load_folder, reads_path=True),
    'npz': SourceKind(_load_npz_source, reads_path=True),
    'tfds': SourceKind(_load_tfds_source, reads_path=True),
    # A directory written by python -m wgan_dist.prepare (data/prepared.py, docs/data.md).
    'prepared': SourceKind(_load_prepared, reads_path=True),
})


def load_source(config: ml_collections.ConfigDict) -> Source:
  """Finds and checks the images (and, with model.num_classes > 0, the labels) of a validated
  config; raises DataError naming what is wrong."""
  data = config.data
  num_classes = config.model.num_classes
  loaded = SOURCES.get(data.source).load(config)
  if isinstance(loaded, Source):  # It checked itself.
    return loaded
  name, images, files, labels, class_names, fingerprint = loaded
  kind = SOURCES.get(name)
  where = (f'data.path={data.path!r} (data.source={name!r})' if kind.reads_path
           else f'data.source={name!r}')
  if num_classes == 0:  # Unconditional: labels are neither checked nor carried.
    labels = class_names = None
  elif kind.class_names is not None:
    # Known data sets: check the range (num_classes may be too small).
    labels = check_labels(labels, len(images), num_classes, where)
  if files is not None:
    source = Source(name, files=files, labels=labels, class_names=class_names,
                    fingerprint=fingerprint)
  else:
    if images.shape[-1] != data.channels:
      raise DataError(f'{where} has {images.shape[-1]} channel(s) but '
                      f'data.channels={data.channels}; allowed: arrays with data.channels '
                      'channels (arrays are not converted)')
    source = Source(name, images=check_pixels(images, where), labels=labels,
                    class_names=class_names, fingerprint=fingerprint)
  if labels is None:
    logging.info('Data: %s, %d images', source.name, source.size)
  else:
    counts = np.bincount(labels, minlength=num_classes)
    logging.info('Data: %s, %d images in %d classes (%d to %d images per class)', source.name,
                 source.size, num_classes, counts.min(), counts.max())
    if not counts.all():
      # Allowed (e.g. a held-back class); the critic never sees a real image of it, yet the
      # generator step still draws it (its labels are uniform over all classes).
      logging.warning('Data: %s has no images of label(s) %s of model.num_classes=%d; the '
                      'generator is still trained on them, against no real examples',
                      source.name, ', '.join(map(str, np.flatnonzero(counts == 0))), num_classes)
  return source
