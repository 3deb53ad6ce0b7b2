"""Preparing a dataset: decode, crop and resize a source's images once, write shards.

`prepare(options)` reads one of these sources (`Options.source`):
- a directory of image files (PNG, JPEG, BMP, GIF), searched recursively; labels from class
  sub-directories (sorted names -> 0, 1, ...);
- a .zip of image files, its members laid out as a directory's;
- an .npz (images under 'x', 'images', 'x_train' or 'arr_0'; labels under 'y' or 'labels';
  optionally their names under 'class_names', a string array) or a .npy of images;
- 'keras:mnist', 'keras:fashion_mnist', 'keras:cifar10': keras.datasets' cached files under
  $KERAS_HOME/datasets (default ~/.keras/datasets), read without the network;
- 'tfds:NAME': a TensorFlow Datasets set already in its data directory, read example by
  example (never a whole split at once).

Images are decoded with TensorFlow's decoders (the ones training uses for a folder), converted
to the channel count (grayscale replicated to RGB, alpha dropped, colour to luminance), cut to
their centred square with `center_crop`, resized with antialiased bilinear filtering, rounded to
uint8, in a tf.data parallel map over all cores, and written in source order by
data/prepared.py's Writer. A file that does not decode is skipped and listed with the decoder's
reason in dataset.json (`on_bad_image='skip'`), or stops the run naming it ('error').
"""

import dataclasses
import gzip
import os
import re
import sys
import time
import zipfile
from typing import Any, Iterator, Optional, TextIO

import numpy as np
import tensorflow as tf

from wgan_dist.data import input_pipeline
from wgan_dist.data import prepared
from wgan_dist.data import sources

LABEL_MODES = ('auto', 'none', 'dirs', 'source')
BAD_IMAGE_MODES = ('skip', 'error')
KERAS_SOURCES = ('mnist', 'fashion_mnist', 'cifar10')
# Default shard size: large enough that a shard is few files per 10^5 images, small enough that
# a worker's share spans several.
DEFAULT_SHARD_BYTES = 256 << 20
_WRITE_BATCH = 256


class PrepareError(sources.DataError):
  """A source or option prepare cannot use; the message names it."""


@dataclasses.dataclass
class Options:
  """What `python -m wgan_dist.prepare` takes (its flags say the same)."""
  source: str
  out: str
  image_size: int
  center_crop: bool = False
  channels: int = 0  # 0: the source's (3 for image files).
  labels: str = 'auto'
  on_bad_image: str = 'skip'
  split: str = 'train'
  tfds_data_dir: str = ''
  images_per_shard: int = 0  # 0: about DEFAULT_SHARD_BYTES per shard.
  overwrite: bool = False
  provenance: str = ''
  licence: str = ''


@dataclasses.dataclass
class _Input:
  """A source opened for preparing: `elements` yields (index, image or encoded bytes, label)."""
  kind: str
  count: Optional[int]
  elements: tf.data.Dataset
  encoded: bool  # Elements carry file contents (decoded in the map) rather than pixels.
  channels: int  # The source's channel count (3 for encoded files).
  labelled: bool
  class_names: Optional[list[str]]
  names: Any  # index -> the item's name (a file or member), for the skipped list.
  contents: Any = None  # index -> the item's bytes (the reason of a decode failure).


def _is_image(name: str) -> bool:
  return name.lower().endswith(sources.IMAGE_EXTENSIONS)


def _class_layout(relative: list[list[str]], mode: str, where: str
                  ) -> tuple[bool, Optional[list[str]], list[int]]:
  """(labelled, class names, label per item) of files given as path parts under the root."""
  top = sorted({parts[0] for parts in relative if len(parts) > 1})
  in_root = [parts[0] for parts in relative if len(parts) == 1]
  if mode == 'none' or (mode == 'auto' and (len(top) < 2 or in_root)):
    return False, None, []
  if not top or in_root:
    raise PrepareError(f'--labels={mode}: {where} needs one sub-directory of images per class '
                       f'and no images beside them; found {len(top)} sub-directories and '
                       f'{len(in_root)} images in the top directory')
  ids = {name: label for label, name in enumerate(top)}
  return True, top, [ids[parts[0]] for parts in relative]


def _folder_input(path: str, mode: str) -> _Input:
  files = sorted(os.path.join(root, name) for root, _, names in tf.io.gfile.walk(path)
                 for name in names if _is_image(name))
  if not files:
    raise PrepareError(f'--source={path!r} holds no image files; allowed extensions: '
                       f'{sources.IMAGE_EXTENSIONS}')
  relative = [os.path.relpath(file, path).split(os.sep) for file in files]
  labelled, classes, labels = _class_layout(relative, mode, f'--source={path!r}')
  labels = labels or [-1] * len(files)
  elements = tf.data.Dataset.from_tensor_slices(
      (tf.range(len(files), dtype=tf.int64), files, tf.constant(labels, tf.int32)))
  elements = elements.map(lambda i, file, label: (i, tf.io.read_file(file), label),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return _Input('folder', len(files), elements, True, 3, labelled, classes,
                names=lambda i: files[i],
                contents=lambda i: tf.io.gfile.GFile(files[i], 'rb').read())


def _zip_input(path: str, mode: str) -> _Input:
  try:
    archive = zipfile.ZipFile(tf.io.gfile.GFile(path, 'rb'))
  except (zipfile.BadZipFile, OSError) as error:
    raise PrepareError(f'--source={path!r} does not read as a zip file: {error}') from error
  members = sorted(info.filename for info in archive.infolist()
                   if not info.is_dir() and _is_image(info.filename))
  if not members:
    raise PrepareError(f'--source={path!r} holds no image files; allowed extensions: '
                       f'{sources.IMAGE_EXTENSIONS}')
  relative = [member.strip('/').split('/') for member in members]
  labelled, classes, labels = _class_layout(relative, mode, f'--source={path!r}')
  labels = labels or [-1] * len(members)

  def generate() -> Iterator[tuple[int, bytes, int]]:
    # One reader of the archive, in order; decoding is the parallel part.
    for index, member in enumerate(members):
      yield index, archive.read(member), labels[index]

  elements = tf.data.Dataset.from_generator(generate, output_signature=(
      tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32)))
  return _Input('zip', len(members), elements, True, 3, labelled, classes,
                names=lambda i: f'{path}:{members[i]}',
                contents=lambda i: archive.read(members[i]))


def _array_input(kind: str, images: np.ndarray, labels: Optional[np.ndarray],
                 class_names: Optional[list[str]], mode: str, where: str) -> _Input:
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or not len(images) or images.shape[-1] not in (1, 3, 4):
    raise PrepareError(f'{where}: images must be a non-empty [N, H, W] or [N, H, W, C] array '
                       f'with C in 1, 3, 4; got shape {images.shape}')
  images = sources.check_pixels(images, where)
  if images.dtype != np.uint8:  # Floats in [0, 1].
    images = np.round(images * 255).astype(np.uint8)
  if mode == 'dirs':
    raise PrepareError(f'--labels=dirs: {where} is an array source, with no sub-directories; '
                       'allowed: auto, source or none')
  if mode == 'source' and labels is None:
    raise PrepareError(f"--labels=source: {where} carries no labels ('y' or 'labels')")
  if mode == 'none' or labels is None:
    labels, class_names = None, None
  else:
    labels = sources.check_labels(labels, len(images), int(np.max(labels)) + 1, where)
  slices = (tf.range(len(images), dtype=tf.int64), images,
            labels if labels is not None else np.full(len(images), -1, np.int32))
  return _Input(kind, len(images), tf.data.Dataset.from_tensor_slices(slices), False,
                images.shape[-1], labels is not None, class_names,
                names=lambda i: f'{where}[{i}]')


def _npz_input(path: str, mode: str) -> _Input:
  with tf.io.gfile.GFile(path, 'rb') as f:
    loaded = np.load(f) if path.endswith('.npy') else dict(np.load(f))
  if isinstance(loaded, np.ndarray):
    return _array_input('npz', loaded, None, None, mode, f'--source={path!r}')
  key = next((k for k in ('x', 'images', 'x_train', 'arr_0') if k in loaded), None)
  if key is None:
    raise PrepareError(f"--source={path!r} holds arrays {sorted(loaded)}; expected one named "
                       "'x', 'images', 'x_train' or 'arr_0'")
  label_key = next((k for k in ('y', 'labels', 'y_train') if k in loaded), None)
  names = [str(name) for name in loaded['class_names']] if 'class_names' in loaded else None
  return _array_input('npz', loaded[key], loaded[label_key] if label_key else None, names, mode,
                      f'--source={path!r}')


def keras_cache_dir() -> str:
  return os.path.join(os.environ.get('KERAS_HOME', os.path.expanduser('~/.keras')), 'datasets')


def _read_idx(path: str, offset: int) -> np.ndarray:
  with gzip.open(path, 'rb') as f:
    return np.frombuffer(f.read(), np.uint8, offset=offset)


def _keras_input(name: str, split: str, mode: str) -> _Input:
  """keras.datasets' cache files, read as keras.datasets reads them (never downloading)."""
  cache, where = keras_cache_dir(), f'--source=keras:{name}'
  if split not in ('train', 'test'):
    raise PrepareError(f'--split={split!r} for {where}; allowed: train, test')
  train = split == 'train'
  try:
    if name == 'mnist':
      with np.load(os.path.join(cache, 'mnist.npz')) as f:
        images, labels = (f['x_train'], f['y_train']) if train else (f['x_test'], f['y_test'])
      names = sources.MNIST_CLASS_NAMES
    elif name == 'fashion_mnist':
      prefix = os.path.join(cache, 'fashion-mnist', 'train' if train else 't10k')
      labels = _read_idx(f'{prefix}-labels-idx1-ubyte.gz', 8)
      images = _read_idx(f'{prefix}-images-idx3-ubyte.gz', 16).reshape(len(labels), 28, 28)
      names = sources.FASHION_MNIST_CLASS_NAMES
    else:
      from keras.src.datasets import cifar  # pylint: disable=import-outside-toplevel
      root = next((os.path.join(cache, d, 'cifar-10-batches-py') for d in
                   ('cifar-10-batches-py-target', '.')
                   if os.path.isdir(os.path.join(cache, d, 'cifar-10-batches-py'))),
                  os.path.join(cache, 'cifar-10-batches-py'))
      batches = ([f'data_batch_{i}' for i in range(1, 6)] if train else ['test_batch'])
      parts = [cifar.load_batch(os.path.join(root, batch)) for batch in batches]
      images = np.concatenate([p[0] for p in parts]).transpose(0, 2, 3, 1)
      labels = np.concatenate([np.asarray(p[1]) for p in parts])
      names = sources.CIFAR10_CLASS_NAMES
  except (OSError, KeyError, ValueError, EOFError) as error:
    raise PrepareError(f'{where}: the keras.datasets cache under {cache} does not read '
                       f'({type(error).__name__}: {error}); load it once with '
                       f'keras.datasets.{name}.load_data() on a machine with the network'
                       ) from error
  return _array_input(f'keras:{name}', images, labels.reshape(-1), list(names), mode, where)


def _tfds_input(name: str, split: str, data_dir: str, mode: str) -> _Input:
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise PrepareError(f'--source=tfds:{name} needs the tensorflow-datasets package') from error
  where = f'--source=tfds:{name} --split={split}'
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
    split_data = builder.as_dataset(split=split, shuffle_files=False)
  except Exception as error:  # pylint: disable=broad-except  # tfds has many error types.
    raise PrepareError(f'{where} does not load (only a data set already prepared in the TFDS '
                       f'data directory is read): {type(error).__name__}: '
                       f'{(str(error).strip().splitlines() or [""])[0]}') from error
  try:  # For the progress line only.
    count = builder.info.splits[split].num_examples
  except (KeyError, ValueError):
    count = None
  features = builder.info.features
  if 'image' not in features:
    raise PrepareError(f"{where} has no 'image' feature; it has {sorted(features.keys())}")
  labelled = 'label' in features and mode != 'none'
  if mode in ('source', 'dirs') and 'label' not in features:
    raise PrepareError(f"--labels={mode}: {where} has no 'label' feature")
  names = getattr(features['label'], 'names', None) if labelled else None
  elements = split_data.enumerate().map(
      lambda i, ex: (i, ex['image'], tf.cast(ex['label'], tf.int32) if labelled
                     else tf.constant(-1, tf.int32)))
  channels = features['image'].shape[-1] or 3
  return _Input(f'tfds:{name}', count, elements, False, channels, labelled,
                list(names) if names else None, names=lambda i: f'{name}[{split}][{i}]')


def open_input(options: Options) -> _Input:
  """The source options.source names, opened (nothing decoded yet)."""
  source, mode = options.source, options.labels
  if source.startswith('keras:'):
    name = source[len('keras:'):]
    if name not in KERAS_SOURCES:
      raise PrepareError(f'--source={source!r}; allowed keras sources: '
                         f'{", ".join("keras:" + n for n in KERAS_SOURCES)}')
    return _keras_input(name, options.split, mode)
  if source.startswith('tfds:'):
    return _tfds_input(source[len('tfds:'):], options.split, options.tfds_data_dir, mode)
  if not source or not tf.io.gfile.exists(source):
    raise PrepareError(f'--source={source!r} does not exist; allowed: a directory of images, '
                       'a .zip of images, an .npz or .npy, keras:NAME or tfds:NAME')
  if tf.io.gfile.isdir(source):
    return _folder_input(source, mode)
  lower = source.lower()
  if lower.endswith('.zip'):
    return _zip_input(source, mode)
  if lower.endswith(('.npz', '.npy')):
    return _npz_input(source, mode)
  raise PrepareError(f'--source={source!r} is a file of an unknown kind; allowed: a directory '
                     'of images, a .zip of images, an .npz or .npy, keras:NAME or tfds:NAME')


def _to_channels(image: tf.Tensor, source_channels: int, channels: int) -> tf.Tensor:
  """uint8 [..., H, W, source_channels] -> [..., H, W, channels] as the pipeline converts."""
  if source_channels == channels:
    return image
  if channels == 1:
    return (tf.image.rgb_to_grayscale(image[..., :3]) if source_channels >= 3
            else image[..., :1])
  if source_channels <= 2:
    return tf.repeat(image[..., :1], 3, axis=-1)
  return image[..., :3]


def _resize(images: tf.Tensor, image_size: int, center_crop: bool) -> tf.Tensor:
  """uint8 [(N,) H, W, C] -> uint8 at image_size x image_size: the centred square first with
  center_crop, then antialiased bilinear resizing, rounded (images of that size are kept)."""
  if center_crop:
    images = input_pipeline.center_square(images)
  height, width = images.shape[-3], images.shape[-2]
  if height == image_size and width == image_size:
    return images

  def resized() -> tf.Tensor:
    floats = tf.image.resize(tf.cast(images, tf.float32), [image_size, image_size],
                             antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(floats), 0, 255), tf.uint8)

  if height is not None and width is not None:
    return resized()
  shape = tf.shape(images)  # Decoded files: the size is known only at run time.
  same = tf.logical_and(tf.equal(shape[-3], image_size), tf.equal(shape[-2], image_size))
  result = tf.cond(same, lambda: images, resized)
  return tf.ensure_shape(result, images.shape[:-3].concatenate(
      [image_size, image_size, images.shape[-1]]))


def decode_reason(contents: bytes) -> str:
  """TensorFlow's reason, in one line, why `contents` do not decode as an image."""
  try:
    tf.io.decode_image(contents, expand_animations=False)
  except tf.errors.OpError as error:
    # Drop the op's '{{function_node ...}}' prefix and ' [Op:DecodeImage] ...' suffix.
    message = re.sub(r'^\{\{[^}]*\}\}\s*', '', error.message)
    lines = re.sub(r'\s*\[Op:.*$', '', message, flags=re.S).strip().splitlines()
    return lines[0] if lines else type(error).__name__
  return 'does not decode'


class Progress:
  """A console progress line: count, percentage, rate and ETA (rewritten in place on a
  terminal, a line every 10 s otherwise)."""

  def __init__(self, total: Optional[int], stream: TextIO = sys.stderr):
    self.total, self.stream, self.start = total, stream, time.perf_counter()
    self.tty = hasattr(stream, 'isatty') and stream.isatty()
    self._last = self.start

  def line(self, done: int) -> str:
    elapsed = time.perf_counter() - self.start
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f'prepare: {done}'
    if self.total:
      left = (self.total - done) / rate if rate > 0 else float('inf')
      eta = time.strftime('%H:%M:%S', time.gmtime(left)) if left < 1e6 else '?'
      text += f'/{self.total} ({100 * done / self.total:.1f}%)'
    text += f' images, {rate:.0f} images/s'
    return text + (f', ETA {eta}' if self.total else '') + f', {elapsed:.0f} s'

  def update(self, done: int, final: bool = False) -> None:
    now = time.perf_counter()
    if not final and now - self._last < (0.5 if self.tty else 10.0):
      return
    self._last = now
    self.stream.write(('\r' if self.tty else '') + self.line(done) +
                      ('\n' if final or not self.tty else ''))
    self.stream.flush()


def prepare(options: Options, progress_stream: Optional[TextIO] = sys.stderr) -> dict:
  """Writes the prepared dataset of `options`; returns its dataset.json content."""
  if options.image_size < 1:
    raise PrepareError(f'--image_size={options.image_size}; allowed: an integer >= 1')
  if options.channels not in (0, 1, 3):
    raise PrepareError(f'--channels={options.channels}; allowed: 1, 3, or 0 (the source\'s)')
  if options.labels not in LABEL_MODES:
    raise PrepareError(f'--labels={options.labels!r}; allowed: {", ".join(LABEL_MODES)}')
  if options.on_bad_image not in BAD_IMAGE_MODES:
    raise PrepareError(f'--on_bad_image={options.on_bad_image!r}; allowed: '
                       f'{", ".join(BAD_IMAGE_MODES)}')
  out = options.out
  if not out:
    raise PrepareError('--out is needed: the directory to write the prepared dataset into')
  meta_path = os.path.join(out, prepared.METADATA)
  if tf.io.gfile.exists(meta_path):
    if not options.overwrite:
      raise PrepareError(f'--out={out!r} already holds a prepared dataset ({prepared.METADATA});'
                         ' allowed: a new directory, or --overwrite to replace it')
  source = open_input(options)
  if tf.io.gfile.isdir(out):
    # dataset.json first: from here until the new one is written, the directory is no dataset.
    for stale in [meta_path] + tf.io.gfile.glob(os.path.join(out, 'shard-*.bin')):
      if tf.io.gfile.exists(stale):
        tf.io.gfile.remove(stale)
  channels = options.channels or (3 if source.encoded else min(source.channels, 3))
  channels = 1 if channels == 1 else 3
  size = options.image_size

  def convert(index: tf.Tensor, image: tf.Tensor, label: tf.Tensor):
    if source.encoded:
      image = input_pipeline.decode_contents(image, channels)
    else:
      image = _to_channels(image, source.channels, channels)
    return index, _resize(image, size, options.center_crop), label

  elements = source.elements.map(convert, num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=True)
  if source.encoded:
    elements = elements.ignore_errors()  # Found as gaps in the indices, then named.
  batches = elements.batch(_WRITE_BATCH).prefetch(2)
  shape = (size, size, channels)
  per_shard = options.images_per_shard or max(
      1, DEFAULT_SHARD_BYTES // prepared.record_bytes(shape, source.labelled))
  writer = prepared.Writer(out, shape, source.labelled, per_shard)
  progress = Progress(source.count, progress_stream) if progress_stream else None
  skipped: list[dict[str, str]] = []

  def _reason(index: int) -> str:
    if source.contents is None:
      return 'does not decode'
    try:
      return decode_reason(source.contents(index))
    except (OSError, tf.errors.OpError) as error:  # It did not even read.
      return f'does not read: {error}'

  def bad(first: int, stop: int) -> None:
    for index in range(first, stop):
      reason = _reason(index)
      if options.on_bad_image == 'error':
        raise PrepareError(f'{source.names(index)} does not decode: {reason} '
                           '(--on_bad_image=error stops here; nothing was written as a '
                           'dataset; --on_bad_image=skip leaves it out)')
      skipped.append({'file': source.names(index), 'reason': reason})

  expected = 0
  for indices, images, labels in batches.as_numpy_iterator():
    if indices[-1] - expected + 1 != len(indices):  # Some in this stretch did not decode.
      kept = set(indices.tolist())
      for index in range(expected, int(indices[-1]) + 1):
        if index not in kept:
          bad(index, index + 1)
    expected = int(indices[-1]) + 1
    writer.append(images, labels if source.labelled else None)
    if progress:
      progress.update(expected)
  if source.count is not None:
    bad(expected, source.count)
  if progress:
    progress.update(source.count if source.count is not None else expected, final=True)
  extra = {'prepare': {
      'source': options.source, 'source_kind': source.kind, 'image_size': size,
      'center_crop': options.center_crop, 'channels': channels, 'labels': options.labels,
      'on_bad_image': options.on_bad_image, 'split': options.split,
      'resize': 'antialiased bilinear, rounded to uint8'},
      'skipped': skipped}
  if options.provenance:
    extra['provenance'] = options.provenance
  if options.licence:
    extra['licence'] = options.licence
  return writer.close(source.class_names, **extra)
