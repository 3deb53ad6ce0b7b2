"""Exponential moving average of the generator's weights (`train.ema_decay`).

After generator step t (t = 1, 2, ...; weights w_t): ema <- d_t * ema + (1 - d_t) * w_t,
starting from the initial weights w_0. With `train.ema_warmup` (the default) the decay warms up
as `tf.train.ExponentialMovingAverage` does with `num_updates`: d_t = min(decay,
(1 + t) / (10 + t)), so early averages forget the random initial weights within tens of steps
instead of ~1/(1 - decay) steps (an EMA of 0.999 without warm-up still holds 30% of w_0 after
1,200 steps). t is the generator step counter, which the checkpoint holds, so a resumed run
averages exactly as an uninterrupted one. Without warm-up d_t = decay.
Every weight is averaged, batch-norm moving statistics included, so the averaged model is
usable in inference mode as it is. Averaged generators give smoother, often better samples
(Karras et al. 2018; Yazici et al. 2019) at no training cost; the trained generator is
unchanged.
"""

import keras
import tensorflow as tf


def make_ema_generator(generator: keras.Model, build_generator) -> keras.Model:
  """A second generator from `build_generator()`, holding a copy of `generator`'s weights.

  Call under the strategy and precision scope the generator was built in, so its variables are
  distributed the same way.
  """
  ema_generator = build_generator()
  ema_generator.set_weights(generator.get_weights())
  return ema_generator


def warmup_decay(decay: float, num_updates: tf.Tensor | int) -> tf.Tensor:
  """min(decay, (1 + t) / (10 + t)) for t = `num_updates`, as a float32 scalar."""
  t = tf.cast(num_updates, tf.float32)
  return tf.minimum(tf.constant(decay, tf.float32), (1.0 + t) / (10.0 + t))


def update(ema_generator: keras.Model, generator: keras.Model, decay: float | tf.Tensor) -> None:
  """One averaging step; call in cross-replica context (every replica's weights are equal).

  `decay` is this step's d_t: `warmup_decay(...)` or the constant `train.ema_decay`.
  """
  for average, current in zip(ema_generator.weights, generator.weights):
    d = tf.cast(decay, average.dtype)
    average.assign(d * average + (1.0 - d) * tf.cast(current, average.dtype))
