"""`Evaluator(config, strategy)`: scores a generator against held-out real images.

    evaluator = Evaluator(config, strategy)        # real features computed once, here
    scalars = evaluator.evaluate(generator)         # {'eval/fid', 'eval/classifier_score',
                                                    #  'eval/min_class_share'}
    evaluator.last_histogram                        # class shares [10] of that evaluation

Generation is distributed: each call of the replica function draws one *global* batch of noise
(`train.global_batch_size` rows) from a stateless key of (config.seed, batch index, EVAL_NOISE),
every replica generates and classifies its own slice, and the features are gathered in global
order. So the images, and the metrics, are the same for any replica count, and every evaluation
of a run sees the same noise (changes between evaluations are the generator's, not the draw's).
Under MultiWorkerMirroredStrategy the gather is a collective: every worker must call `evaluate`
(only the chief should write the results).

Only MNIST is supported (28x28x1 images from data.source 'mnist' or 'embedded_mnist'): the
classifier is an MNIST classifier. Other data raise `UnsupportedEvaluation` naming the reason;
`make_evaluator` returns None instead. A backbone for RGB data (Inception features for
CIFAR-10 / CelebA) plugs in at `_backbone` and `reference_images`.
"""

import math
from typing import Callable, Optional

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from wgan_dist import precision
from wgan_dist import random_keys
from wgan_dist.eval import classifier as classifier_lib
from wgan_dist.eval import metrics

# Stateless-RNG purpose of the evaluation noise; far from random_keys' training purposes (1-4)
# so a new training stream there cannot collide with it.
EVAL_NOISE = 101
MNIST_SOURCES = ('mnist', 'embedded_mnist')
SCALAR_TAGS = ('eval/fid', 'eval/classifier_score', 'eval/min_class_share')


class UnsupportedEvaluation(ValueError):
  """The config's data have no evaluation backbone (yet)."""


def unsupported_reason(config: ml_collections.ConfigDict) -> Optional[str]:
  """Why `config` cannot be evaluated, or None when it can."""
  shape = (config.data.image_size, config.data.image_size, config.data.channels)
  if shape != classifier_lib.IMAGE_SHAPE or config.data.source not in MNIST_SOURCES:
    return (f'evaluation needs MNIST: data.source in {MNIST_SOURCES} with 28x28x1 images '
            f'(the classifier is an MNIST classifier); got data.source='
            f'{config.data.source!r} with images {shape}')
  return None


def reference_images(config: ml_collections.ConfigDict) -> np.ndarray:
  """The real images generated ones are compared with: the embedded sample's held-out split
  (1,000 images, 100 per class, never seen by the classifier), uint8 [1000, 28, 28, 1].

  The same on every machine and offline, so figures are comparable between runs and hosts.
  """
  del config  # One reference for every MNIST config; a hook for other data sets.
  return classifier_lib.embedded_split().held_out_images


def _backbone(config: ml_collections.ConfigDict) -> keras.Model:
  """images in [-1, 1] -> (features, class probabilities); build under a strategy scope."""
  reason = unsupported_reason(config)
  if reason:
    raise UnsupportedEvaluation(reason)
  return classifier_lib.feature_model(classifier_lib.load_classifier())


def class_share_scalars(histogram: np.ndarray) -> dict[str, float]:
  """{'eval/class_share_<k>': share} for TensorBoard scalars."""
  return {f'eval/class_share_{k}': float(share) for k, share in enumerate(histogram)}


class Evaluator:
  """Fréchet distance, classifier score and class histogram of a generator (module docstring)."""

  def __init__(self, config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy):
    self._strategy = strategy
    self._seed = int(config.seed)
    self._noise_dim = int(config.model.noise_dim)
    self._global_batch = int(config.train.global_batch_size)
    replicas = strategy.num_replicas_in_sync
    if self._global_batch % replicas:
      raise ValueError(f'train.global_batch_size={self._global_batch} does not divide evenly '
                       f'across {replicas} replicas')
    self._per_replica = self._global_batch // replicas
    self.num_samples = int(config.num_eval_samples)
    with strategy.scope(), precision.policy_scope('float32'):
      self._features = _backbone(config)
    real = classifier_lib.to_model_range(reference_images(config))
    real_features = np.concatenate(
        [self._features(real[start:start + 500], training=False)[0].numpy()
         for start in range(0, len(real), 500)])
    self.num_real = len(real)
    self.real_statistics = metrics.statistics(real_features)
    self.last_histogram: Optional[np.ndarray] = None
    # One traced function per generator (the live one, an EMA copy); the generator is kept
    # alongside so its id cannot be reused by another object.
    self._functions: dict[int, tuple[keras.Model, Callable]] = {}

  def _function_for(self, generator: keras.Model) -> Callable:
    entry = self._functions.get(id(generator))
    if entry is None:
      strategy, per_replica = self._strategy, self._per_replica

      def replica_fn(batch_index):
        noise = tf.random.stateless_normal(
            [self._global_batch, self._noise_dim],
            seed=random_keys.key(self._seed, batch_index, 0, EVAL_NOISE))
        images = generator(random_keys.replica_slice(noise, per_replica), training=False)
        features, probabilities = self._features(tf.cast(images, tf.float32), training=False)
        return features, probabilities

      @tf.function
      def generate_and_classify(batch_index):
        features, probabilities = strategy.run(replica_fn, args=(batch_index,))
        return (strategy.gather(features, axis=0), strategy.gather(probabilities, axis=0))

      entry = self._functions[id(generator)] = (generator, generate_and_classify)
    return entry[1]

  def outputs(self, generator: keras.Model,
              num_samples: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, 64], probabilities [N, 10]) of the first N evaluation samples."""
    num = int(num_samples or self.num_samples)
    if num < 2:
      raise ValueError(f'num_samples={num}: a covariance needs at least 2 samples')
    function = self._function_for(generator)
    batches = [function(tf.constant(index, tf.int64))
               for index in range(math.ceil(num / self._global_batch))]
    features = np.concatenate([batch[0].numpy() for batch in batches])[:num]
    probabilities = np.concatenate([batch[1].numpy() for batch in batches])[:num]
    return features, probabilities

  def evaluate(self, generator: keras.Model,
               num_samples: Optional[int] = None) -> dict[str, float]:
    """Scores `num_samples` (default config.num_eval_samples) images of `generator`.

    Returns {'eval/fid', 'eval/classifier_score', 'eval/min_class_share'}; the class shares
    are in `self.last_histogram` ([10], sums to 1).
    """
    features, probabilities = self.outputs(generator, num_samples)
    histogram = metrics.class_histogram(probabilities)
    self.last_histogram = histogram
    fid = metrics.frechet_distance(*metrics.statistics(features), *self.real_statistics)
    return {'eval/fid': fid,
            'eval/classifier_score': metrics.classifier_score(probabilities),
            'eval/min_class_share': metrics.min_class_share(histogram)}


def make_evaluator(config: ml_collections.ConfigDict,
                   strategy: tf.distribute.Strategy) -> Optional[Evaluator]:
  """An Evaluator, or None (with a warning naming why) when the data are not supported."""
  reason = unsupported_reason(config)
  if reason:
    logging.warning('Evaluation off: %s', reason)
    return None
  return Evaluator(config, strategy)
