"""Exponential moving average of the generator's weights (`train.ema_decay`).

After each generator step t (weights w_t): ema <- decay * ema + (1 - decay) * w_t, starting
from the initial weights, so ema_k = decay^k w_0 + (1 - decay) sum_{t=1..k} decay^(k-t) w_t.
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


def update(ema_generator: keras.Model, generator: keras.Model, decay: float) -> None:
  """One averaging step; call in cross-replica context (every replica's weights are equal)."""
  for average, current in zip(ema_generator.weights, generator.weights):
    average.assign(decay * average + (1.0 - decay) * tf.cast(current, average.dtype))
