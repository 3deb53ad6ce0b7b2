"""The critic-overfitting gauge: does the critic score images it trained on above real images it
never saw?

    r_v = (E D(x_train) − E D(x_heldout)) / (E D(x_train) − E D(G(z)))

0: the critic scores held-out real images like its training images (it has learnt the data, not
the data set); 1: like the generator's fakes (it has memorised its training images, and anything
else looks fake to it). ADA's validation heuristic (Karras et al. 2020); its other heuristic,
E sign D(x), needs a critic with a zero point, which a Wasserstein critic has not. The images
are scored as they are (never augmented), the fakes drawn from fixed noise by the generator in
inference mode, so consecutive readings differ only by what the networks learnt.

Held-out images (`heldout_source`): MNIST's evaluation reference when it is held out
(eval_reference='heldout': the embedded sample's 1,000 held-out digits, full MNIST's test split);
else, with data.limit, the images after the first data.limit (data/limit.py); else none, and the
gauge is off (an adaptive augment.target then stops the run with one line naming the fields).

Distributed as the training steps are: each global batch is scored on every replica, each
taking its slice, and the sums reduced with SUM, so every worker reads the same value.
"""

import dataclasses
from typing import Optional

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from wgan_dist.algorithm import conditioning as conditioning_lib
from wgan_dist.algorithm import random_keys
from wgan_dist.data import errors
from wgan_dist.data import input_pipeline
from wgan_dist.data import limit as limit_lib
from wgan_dist.data import sources
from wgan_dist.eval import reference as reference_lib

# Images of each kind an evaluation's reading uses (at most; rounded down to whole global
# batches), and the adaptive p's cheaper reading every augment.interval steps.
EVAL_IMAGES = 1000
ADAPT_IMAGES = 256
# Host memory each of the two real sets may take (e.g. 1,000 images at 64x64x3, 341 at
# 256x256x3).
MAX_BYTES = 256 << 20
_MNIST_SOURCES = ('mnist', 'embedded_mnist')


def heldout_source(config: ml_collections.ConfigDict, loaded: sources.Source
                   ) -> Optional[sources.Source]:
  """Real images the generator never trains on, for the gauge (module docstring), with labels
  when the run is class-conditional; None when the data have none.

  `loaded`: the config's source as loaded (before the held-out split and data.limit).
  """
  conditional = config.model.num_classes > 0
  if (loaded.name in _MNIST_SOURCES and config.data.source in _MNIST_SOURCES and
      config.eval_reference == reference_lib.HELDOUT):
    reference = reference_lib.mnist_reference(config, loaded.name)
    return sources.Source(reference.split, images=reference.images,
                          labels=reference.labels.astype(np.int32) if conditional else None)
  training = reference_lib.training_source(config, loaded)
  return limit_lib.images_after(training, config.data.limit, EVAL_IMAGES)


def check_adaptive(config: ml_collections.ConfigDict, train: sources.Source,
                   heldout: Optional[sources.Source]) -> None:
  """DataError naming the fields when augment.target > 0 but the data have no held-out images,
  or fewer than a global batch of either kind."""
  if config.augment.target <= 0:
    return
  if heldout is not None and usable_images(config, train, heldout, ADAPT_IMAGES) == 0:
    raise errors.DataError(
        f'augment.target={config.augment.target} adapts p to the critic-overfitting gauge, '
        f'which reads at least train.global_batch_size={config.train.global_batch_size} '
        f'held-out and training images; there are {heldout.size} and {train.size}: lower '
        'data.limit or set augment.target=0 (p fixed)')
  if heldout is None:
    raise errors.DataError(
        f'augment.target={config.augment.target} adapts p to the critic-overfitting gauge, '
        f'which needs real images the generator never trains on; data.source='
        f'{config.data.source!r} has no held-out split: set data.limit below the number of '
        'images (the images after it are held out) or augment.target=0 (p fixed)')


# The gauge's fixed random sample of each set (sample_indices).
SAMPLE_SEED = 1001


def sample_indices(size: int, count: int) -> np.ndarray:
  """`count` of `size` stored positions, a fixed random sample in stored order: sources are
  often stored by class (the embedded sample's first 960 digits are zeros, ones and twos), and
  the gauge must compare like with like."""
  return np.sort(np.random.default_rng(SAMPLE_SEED).permutation(size)[:count])


def model_range_images(source: sources.Source, config: ml_collections.ConfigDict,
                       count: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """`count` examples of `source` (sample_indices) through the training pipeline's
  preprocessing: (float32 [count, H, W, C] in [-1, 1], int32 labels or None)."""
  return input_pipeline.preprocessed(source.subset(sample_indices(source.size, count)), config)


@dataclasses.dataclass(frozen=True)
class Reading:
  """One reading of the gauge: r_v and the three mean scores it is made of."""
  overfit: float
  train_score: float
  heldout_score: float
  fake_score: float
  images: int  # Of each kind.



def usable_images(config: ml_collections.ConfigDict, train: sources.Source,
                  heldout: sources.Source, max_images: int = EVAL_IMAGES) -> int:
  """Images of each kind a gauge reads: at most `max_images` (but at least a global batch) and
  MAX_BYTES of pixels, no more than either set has, in whole global batches (0: too few)."""
  batch = config.train.global_batch_size
  image_bytes = 4 * config.data.image_size**2 * config.data.channels  # float32 on the host.
  wanted = max(batch, min(max_images, MAX_BYTES // image_bytes))
  available = min(train.size, heldout.size, wanted)
  return available - available % batch


class Gauge:
  """Reads r_v of `critic` and `generator` on the first images of the training and held-out
  sets (at most `max_images` of each and MAX_BYTES of float32 pixels, preprocessed once) and as
  many fixed fakes."""

  def __init__(self, config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy,
               train: sources.Source, heldout: sources.Source, critic: keras.Model,
               generator: keras.Model, max_images: int = EVAL_IMAGES):
    batch = config.train.global_batch_size
    self.num_images = usable_images(config, train, heldout, max_images)
    if self.num_images < batch:  # make_gauge and check_adaptive test this first.
      raise errors.DataError(
          f'the critic-overfitting gauge needs at least train.global_batch_size={batch} '
          f'held-out and training images; there are {heldout.size} and {train.size}')
    self._config, self._strategy, self._batch = config, strategy, batch
    self._critic, self._generator = critic, generator
    self._conditioning = conditioning_lib.from_config(config)
    # On the host, as constants: the loop slices a global batch of each per iteration.
    with tf.device('/cpu:0'):
      self._train = tuple(None if a is None else tf.constant(a)
                          for a in model_range_images(train, config, self.num_images))
      self._heldout = tuple(None if a is None else tf.constant(a)
                            for a in model_range_images(heldout, config, self.num_images))
    # One call per reading, one value back: the host waits for the devices once.
    self._sums = tf.function(self._batch_sums)

  def _summed(self, scores_fn, *args) -> tf.Tensor:
    """SUM over the replicas of each one's sum of the critic's scores on its slice."""
    sums = self._strategy.run(
        lambda *a: tf.reduce_sum(tf.cast(scores_fn(*a), tf.float32)), args=args)
    return self._strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

  def _per_replica(self) -> int:
    return self._batch // self._strategy.num_replicas_in_sync

  def _real_scores(self, images: tf.Tensor, labels: Optional[tf.Tensor]) -> tf.Tensor:
    images = random_keys.replica_slice(images, self._per_replica())
    if labels is not None:
      labels = random_keys.replica_slice(labels, self._per_replica())
    return self._conditioning.outputs(self._critic, images, labels)[0]

  def _fake_scores(self, batch_index: tf.Tensor) -> tf.Tensor:
    config = self._config
    key = random_keys.key(config.seed, batch_index, 0, random_keys.OVERFIT_NOISE)
    z = random_keys.replica_slice(
        tf.random.stateless_normal([self._batch, config.model.noise_dim], seed=key),
        self._per_replica())
    labels = None
    if self._conditioning.conditional:  # Balanced labels, as the evaluation draws them.
      labels = random_keys.replica_slice(
          tf.range(self._batch, dtype=tf.int32) % config.model.num_classes, self._per_replica())
      images = self._generator([z, labels], training=False)
    else:
      images = self._generator(z, training=False)
    return self._conditioning.outputs(self._critic, images, labels)[0]

  def _global_batch(self, values: Optional[tf.Tensor], index: tf.Tensor) -> Optional[tf.Tensor]:
    if values is None:
      return None
    rows = values[index * self._batch:(index + 1) * self._batch]
    return tf.ensure_shape(rows, [self._batch] + values.shape[1:].as_list())

  def _batch_sums(self, num_batches: tf.Tensor) -> tf.Tensor:
    """[Σ D(training images), Σ D(held-out images), Σ D(fakes)] over the first `num_batches`
    global batches of each."""
    totals = tf.zeros([3])
    for index in tf.range(num_batches):
      totals += tf.stack([
          self._summed(self._real_scores, self._global_batch(self._train[0], index),
                       self._global_batch(self._train[1], index)),
          self._summed(self._real_scores, self._global_batch(self._heldout[0], index),
                       self._global_batch(self._heldout[1], index)),
          self._summed(self._fake_scores, tf.cast(index, tf.int64))])
    return totals

  def read(self, num_images: Optional[int] = None) -> Reading:
    """r_v on the first `num_images` images of each kind (all of them when None; rounded down
    to whole global batches, at least one)."""
    count = self.num_images if num_images is None else min(num_images, self.num_images)
    count = max(self._batch, count - count % self._batch)
    train, heldout, fake = (float(total) / count for total in
                            self._sums(tf.constant(count // self._batch)).numpy())
    gap = train - fake
    # A critic that does not score its training images above the fakes gives no scale to read
    # r_v on (and a negative one would flip its sign).
    overfit = (train - heldout) / gap if gap > 1e-12 else float('nan')
    return Reading(overfit, train, heldout, fake, count)


def make_gauge(config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy,
               train: sources.Source, heldout: Optional[sources.Source], critic: keras.Model,
               generator: keras.Model, max_images: int = EVAL_IMAGES) -> Optional[Gauge]:
  """A Gauge, or None (logged once) when there are no held-out images."""
  if heldout is None:
    logging.info('Critic-overfitting gauge off: data.source=%r has no held-out images (set '
                 'data.limit to hold out the images after it)', config.data.source)
    return None
  if usable_images(config, train, heldout, max_images) == 0:
    logging.warning('Critic-overfitting gauge off: it reads at least train.global_batch_size='
                    '%d held-out and training images; there are %d and %d',
                    config.train.global_batch_size, heldout.size, train.size)
    return None
  return Gauge(config, strategy, train, heldout, critic, generator, max_images)
