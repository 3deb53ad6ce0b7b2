"""The adaptive augmentation action: with augment.target > 0, every augment.interval generator
steps (and at the last step), read the critic-overfitting gauge r_v (training/overfit.py) and
move the augmentation's probability p one notch toward keeping r_v at the target, as ADA does
(Karras et al. 2020): up when the critic overfits more than the target, down when less.

A notch is the images shown since the last adjustment (interval × n_critic × global batch) over
augment.adjust_kimg thousand, so p can cross [0, 1] in adjust_kimg thousand images whatever the
interval; p stays in [0, 1]. r_v is a SUM-reduced value every worker reads alike, so every
worker moves p alike; p is a variable of the train state, saved in every checkpoint and restored
exactly. TensorBoard: train/critic_overfit at each adjustment (the reading it acted on, on
overfit.ADAPT_IMAGES images of each kind), train/augment_p at each log step.
"""

import math
from typing import Optional

import ml_collections
import numpy as np

from wgan_dist.training import context
from wgan_dist.training import controller
from wgan_dist.training import overfit
from wgan_dist.training import schedules


def adjustment(config: ml_collections.ConfigDict) -> float:
  """How far p moves per adjustment (module docstring)."""
  train = config.train
  images = config.augment.interval * train.n_critic * train.global_batch_size
  return images / (config.augment.adjust_kimg * 1000.0)


def next_p(p: float, reading: float, target: float, step_size: float) -> float:
  """p after one adjustment: one notch toward r_v = target, clipped to [0, 1]; unchanged when the
  reading is not a number (a critic that cannot tell its training images from fakes)."""
  if math.isnan(reading):
    return p
  direction = (reading > target) - (reading < target)
  return min(1.0, max(0.0, p + direction * step_size))


class AdaptAugment(controller.PeriodicAction):
  """Adjusts state.augment_p on every worker; only the chief's monitor writes."""
  name = 'adapt augment'
  field = 'augment.interval'

  @staticmethod
  def config_error(config: ml_collections.ConfigDict) -> Optional[str]:
    del config  # Whether the data have held-out images is known once they are loaded.
    return None

  def __init__(self, run: context.Run):
    config = run.config
    adaptive = config.augment.target > 0
    overfit.check_adaptive(config, run.source, run.heldout)
    self._gauge = (overfit.make_gauge(config, run.strategy, run.source, run.heldout,
                                      run.state.critic, run.state.generator,
                                      overfit.ADAPT_IMAGES) if adaptive else None)
    self.schedule = schedules.Every(config.augment.interval if adaptive else 0,
                                    run.total_steps)
    self.hparams_metrics = ('train/augment_p',) if adaptive else ()
    self._target = config.augment.target
    self._step_size = adjustment(config)
    self._monitor, self._p = run.monitor, run.state.augment_p

  def run(self, step: int) -> None:
    reading = self._gauge.read()
    # A NumPy value: a Python float would stay in TensorFlow's scalar cache for good, one entry
    # per distinct p (training/monitoring.py).
    self._p.assign(np.float32(next_p(float(self._p.numpy()), reading.overfit, self._target,
                                     self._step_size)))
    self._monitor.write_scalars(step, {'train/critic_overfit': reading.overfit})
