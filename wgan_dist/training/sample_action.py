"""The sample action: every `sample_every_steps` generator steps (0 = off) and at the last step,
the generator's images of fixed inputs as a grid (samples/step_NNNNNN.png and TensorBoard image
`samples`; the chief only)."""

from typing import Optional

import ml_collections
import numpy as np
import tensorflow as tf

from wgan_dist.algorithm import losses
from wgan_dist.algorithm import random_keys
from wgan_dist.data import images
from wgan_dist.training import context
from wgan_dist.training import controller
from wgan_dist.training import schedules

NUM_SAMPLES = 16  # The fixed noise vectors of the 4x4 sample grid (unconditional models).
SAMPLES_PER_CLASS = 8  # Columns of a conditional model's grid: one row per class.


def fixed_sample_inputs(config: ml_collections.ConfigDict
                        ) -> tuple[tf.Tensor, Optional[tf.Tensor], int]:
  """(noise, labels or None, grid rows) of the sample grid, the same at every step.

  Unconditional: 16 noise vectors in a 4x4 grid. Conditional: one row per class, row k all
  label k, column j the same noise vector in every row (so a column shows one z across the
  classes).
  """
  conditional = config.model.num_classes > 0
  columns = SAMPLES_PER_CLASS if conditional else NUM_SAMPLES
  noise = tf.random.stateless_normal(
      [columns, config.model.noise_dim],
      seed=random_keys.key(config.seed, 0, 0, random_keys.FIXED_NOISE))
  if not conditional:
    return noise, None, 4
  noise, labels = images.class_rows(noise.numpy(), range(config.model.num_classes))
  return tf.constant(noise), tf.constant(labels), config.model.num_classes


class Sample(controller.PeriodicAction):
  """Writes the grid of the (not averaged) generator on fixed inputs."""
  name = 'sample'
  field = 'sample_every_steps'

  def __init__(self, run: context.Run):
    self.schedule = schedules.Every(run.config[self.field], run.total_steps)
    self._monitor, self._is_chief = run.monitor, run.is_chief
    noise, labels, self._rows = fixed_sample_inputs(run.config)
    generator = run.state.generator
    self._sample = tf.function(
        lambda: generator(losses.generator_inputs(noise, labels), training=False))

  def run(self, step: int) -> None:
    if self._is_chief:
      self._monitor.write_samples(step, np.asarray(self._sample()), self._rows)
