"""The tf.data pipeline over a `sources.Source`: order, sharding, batching, and distribution.

`make_distributed_dataset(strategy, config, source)` gives each replica its share of every global
batch (drop_remainder), in an order that is a pure function of (seed, position) so a resumed run
continues exactly where it stopped; `make_dataset` is one input pipeline's stream;
`preprocessed` is every example of a source once, as arrays (the fixed real image sets that
evaluation and the overfitting gauge read). Files are decoded here (other channel counts
converted: grayscale replicated to RGB, alpha dropped, colour to luminance for
data.channels=1); a prepared dataset's records are read here, each pipeline
reading only the records of its share, with bounded read-ahead (data/prepared.py); pixels come
out float32 in [-1, 1] at data.image_size.

With model.num_classes > 0 every element is `(images, labels)`, labels int32 [batch]: each label
is gathered with the same example index as its image, so labels follow their images through the
order, the shards and a resume. With 0 the elements are the images alone.
"""

from typing import Optional

import ml_collections
import numpy as np
import tensorflow as tf

from wgan_dist.data import prepared
from wgan_dist.data import sources


def center_square(images: tf.Tensor) -> tf.Tensor:
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
    images = center_square(images)
  if images.shape[-3] != image_size or images.shape[-2] != image_size:
    images = tf.image.resize(images, [image_size, image_size], antialias=True)
  return images


def _decode_file(path: tf.Tensor, channels: int) -> tf.Tensor:
  """uint8 [H, W, channels]; another channel count is converted (module docstring)."""
  return decode_contents(tf.io.read_file(path), channels)


def decode_contents(contents: tf.Tensor, channels: int) -> tf.Tensor:
  """An image file's bytes -> uint8 [H, W, channels], converted as `_decode_file` says."""
  if channels != 1:
    image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
  else:
    # The GIF and BMP decoders refuse channels=1: decode as stored, then convert (one formula,
    # ITU-R 601 luma, for every format).
    image = tf.io.decode_image(contents, expand_animations=False)
    image = tf.cond(tf.shape(image)[-1] >= 3,
                    lambda: tf.image.rgb_to_grayscale(image[..., :3]),
                    lambda: image[..., :1])
  return tf.cast(image, tf.uint8)


def example_indices(num_examples: int, seed: int, positions: tf.data.Dataset) -> tf.data.Dataset:
  """Maps stream positions to example indices: epoch e is a fresh permutation keyed by (seed, e).

  A pure function of the position (tf.random.experimental.index_shuffle), so a resumed run
  continues the order exactly where it stopped without saving any pipeline state.
  """
  def index(position: tf.Tensor) -> tf.Tensor:
    epoch, within = position // num_examples, position % num_examples
    return tf.random.experimental.index_shuffle(
        within, seed=tf.stack([tf.constant(seed, tf.int64), epoch]),
        max_index=tf.constant(num_examples - 1, tf.int64))

  return positions.map(index, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def make_dataset(source: sources.Source, config: ml_collections.ConfigDict, batch_size: int,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 first_batch: int = 0) -> tf.data.Dataset:
  """An endless, shuffled stream of [batch_size, H, W, C] float32 batches in [-1, 1] (with
  model.num_classes > 0: of (those batches, their int32 [batch_size] labels)).

  The stream is cut into global batches of train.global_batch_size examples, starting at global
  batch `first_batch`; with several input pipelines (one per worker), pipeline p keeps the
  contiguous share p of every global batch, and reads only those images. So replica r of any
  cluster layout sees slice r of each global batch, and the results do not depend on how the
  replicas are spread over workers.
  """
  data = config.data
  with_labels = config.model.num_classes > 0
  if with_labels and not source.has_labels:
    raise ValueError(f'model.num_classes={config.model.num_classes} but source '
                     f'{source.name!r} carries no labels (load it with sources.load_source)')
  global_batch = config.train.global_batch_size
  pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline = input_context.input_pipeline_id if input_context else 0
  share = global_batch // pipelines if pipelines > 1 else global_batch

  def position(local: tf.Tensor) -> tf.Tensor:
    """Global stream position of this pipeline's local-th example."""
    batch, offset = first_batch + local // share, pipeline * share + local % share
    return batch * global_batch + offset

  positions = tf.data.Dataset.range(np.iinfo(np.int64).max // 2).map(position)
  indices = example_indices(source.size, config.seed, positions)
  if source.prepared is not None:
    # Streamed records: each batch of indices is read at once, its labels from the same records.
    dataset = prepared.read_batches(source.prepared,
                                    indices.batch(batch_size, drop_remainder=True))
    dataset = dataset.map(
        lambda images, labels: ((_to_model_range(images, data.image_size), labels)
                                if with_labels else _to_model_range(images, data.image_size)),
        num_parallel_calls=prepared.READ_PARALLELISM, deterministic=True)
    return dataset.prefetch(prepared.READ_AHEAD_BATCHES)
  labels = tf.constant(source.labels) if with_labels else None

  def with_label(images: tf.Tensor, index: tf.Tensor):
    """The images, and with labels their labels: one index for both, so they stay paired."""
    return (images, tf.gather(labels, index)) if with_labels else images

  if source.files is not None:
    files = tf.constant(source.files)
    # Files differ in size: decode and resize one at a time, then batch.
    dataset = indices.map(
        lambda i: with_label(_to_model_range(_decode_file(tf.gather(files, i), data.channels),
                                             data.image_size, data.center_crop), i),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
  else:
    # In-memory arrays: gather and convert a whole batch at once.
    dataset = indices.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(
        lambda i: with_label(_to_model_range(_gather_batch(source.images, i), data.image_size,
                                             data.center_crop), i),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def preprocessed(source: sources.Source, config: ml_collections.ConfigDict
                 ) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """Every example of `source` once, through the training stream's preprocessing: (float32
  [N, H, W, C] in [-1, 1], int32 labels [N] with model.num_classes > 0, else None), in the
  stream's first-epoch order (a permutation of `source`: one batch of source.size holds each
  example once). For the fixed real image sets evaluation and the overfitting gauge read."""
  batch = next(iter(make_dataset(source, config, batch_size=source.size)))
  if config.model.num_classes > 0:
    return batch[0].numpy(), batch[1].numpy()
  return batch.numpy(), None


def _gather_batch(images: np.ndarray, indices: tf.Tensor) -> tf.Tensor:
  """images[indices], gathered by numpy from the source's own array.

  Not tf.constant(images) and tf.gather: that copy would stay alive beside the source's array
  (which the evaluator and the dataset identity read) for the whole run, twice the data; a
  batch's gather in numpy costs microseconds per batch.
  """
  batch = tf.numpy_function(lambda i: images[i], [indices], tf.as_dtype(images.dtype),
                            stateful=False)
  batch.set_shape([indices.shape[0], *images.shape[1:]])
  return batch


def make_distributed_dataset(strategy: tf.distribute.Strategy, config: ml_collections.ConfigDict,
                             source: sources.Source, first_step: int = 0
                             ) -> tf.distribute.DistributedDataset:
  """Each replica receives global_batch_size / replicas examples per batch (with their labels
  when model.num_classes > 0, as make_dataset).

  One input pipeline per worker; consecutive per-replica batches of a pipeline go to its local
  replicas 0, 1, ... in turn, so replica r's batch is slice r of what a single replica would see
  as its global batch. `first_step`: generator steps already done (a resumed run), each of which
  consumed train.n_critic global batches; the stream continues from there.
  """
  global_batch = config.train.global_batch_size
  first_batch = first_step * config.train.n_critic

  def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
    return make_dataset(source, config, input_context.get_per_replica_batch_size(global_batch),
                        input_context, first_batch)

  return strategy.distribute_datasets_from_function(dataset_fn)
