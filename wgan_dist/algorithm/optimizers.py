"""Adam for the critic and the generator, fed gradients the step has already summed across
replicas, with an optional linear learning-rate decay over the generator steps.

The step all-reduces each gradient itself so that it can log the norm of the gradient that is
actually applied (the sum over replicas, not one replica's share). Keras 3's TensorFlow
optimizers all-reduce (SUM) again inside `apply`; this subclass turns that second reduction off,
so every replica applies the same, once-summed gradient. The 1-vs-2-replica tests fail if it
ever stops doing so.

`train.lr_decay='linear'` is the paper's CIFAR-10 schedule (gan_cifar_resnet.py, DECAY=True):
each network uses its own initial rate lr · max(0, 1 − s/N) during generator step s of N, the
critic for all n_critic of its updates in that step. `train.lr_decay_start` = f > 0 holds the
rate constant for the first f·N steps and decays it linearly to 0 over the rest. An optimizer
only counts its own updates, so the critic's schedule divides its update count by n_critic to
recover s.
"""

from typing import Optional

import keras
import ml_collections
from keras import ops


class AdamOnSummedGradients(keras.optimizers.Adam):
  """keras.optimizers.Adam whose `apply` takes gradients already summed over replicas."""

  def _all_reduce_sum_gradients(self, grads_and_vars):
    return list(grads_and_vars)


if not hasattr(keras.optimizers.Adam, '_all_reduce_sum_gradients'):
  # The override above would be dead and 2 replicas would apply twice the gradient.
  raise ImportError('This Keras version has no Optimizer._all_reduce_sum_gradients; '
                    'wgan_dist.algorithm.optimizers must be adapted to it')


@keras.saving.register_keras_serializable(package='wgan_dist')
class LinearDecayPerGeneratorStep(keras.optimizers.schedules.LearningRateSchedule):
  """initial · clip((N − s) / (N − start), 0, 1), N = num_generator_steps, start =
  decay_start_step (0: the decay runs from the first step), s = floor(updates / updates_per_step).

  `updates` is the optimizer's own update count (`optimizer.iterations`), so s is the number of
  generator steps completed before this update: 1 for the generator, n_critic for the critic.
  Updates that a LossScaleOptimizer skips (non-finite gradients) do not count, so under
  mixed_float16 the decay lags by the number of skipped updates.
  """

  def __init__(self, initial_learning_rate: float, num_generator_steps: int,
               updates_per_step: int = 1, decay_start_step: int = 0):
    if num_generator_steps < 1 or updates_per_step < 1:
      raise ValueError(f'num_generator_steps={num_generator_steps} and updates_per_step='
                       f'{updates_per_step} must both be >= 1')
    if not 0 <= decay_start_step < num_generator_steps:
      raise ValueError(f'decay_start_step={decay_start_step} must be in [0, '
                       f'num_generator_steps={num_generator_steps})')
    self.initial_learning_rate = initial_learning_rate
    self.num_generator_steps = num_generator_steps
    self.updates_per_step = updates_per_step
    self.decay_start_step = decay_start_step

  def __call__(self, step):
    # Integer division first: all n_critic updates of a generator step share one rate, as in
    # the paper, where the rate is keyed on the generator iteration.
    generator_steps = ops.floor_divide(ops.cast(step, 'int64'), self.updates_per_step)
    remaining = float(self.num_generator_steps) - ops.cast(generator_steps, 'float32')
    fraction = remaining / float(self.num_generator_steps - self.decay_start_step)
    return self.initial_learning_rate * ops.clip(fraction, 0.0, 1.0)

  def get_config(self) -> dict:
    return {'initial_learning_rate': self.initial_learning_rate,
            'num_generator_steps': self.num_generator_steps,
            'updates_per_step': self.updates_per_step,
            'decay_start_step': self.decay_start_step}


def initial_learning_rate(train_config: ml_collections.ConfigDict, generator: bool) -> float:
  """train.learning_rate, or for the generator train.generator_learning_rate when it is set."""
  # getattr: configs saved before train.generator_learning_rate existed still load.
  if generator and getattr(train_config, 'generator_learning_rate', 0.0) > 0:
    return train_config.generator_learning_rate
  return train_config.learning_rate


def make_learning_rate(train_config: ml_collections.ConfigDict, *, updates_per_step: int,
                       total_steps: Optional[int] = None, generator: bool = False):
  """The initial rate (`initial_learning_rate`), constant or decaying linearly to 0 over the
  generator steps (train.lr_decay).

  `total_steps` is the number of generator steps of the run; it defaults to train.num_steps,
  which must then be set (not -1).
  """
  # getattr: configs saved before train.lr_decay existed still load.
  decay = getattr(train_config, 'lr_decay', 'none')
  initial = initial_learning_rate(train_config, generator)
  if decay == 'none':
    return initial
  if total_steps is None:
    total_steps = train_config.num_steps
  if total_steps is None or total_steps < 1:
    raise ValueError(f"train.lr_decay='linear' needs the run's length in generator steps: set "
                     f'train.num_steps >= 1 (it is {train_config.num_steps}) or pass total_steps')
  # getattr: configs saved before train.lr_decay_start existed still load.
  start = int(getattr(train_config, 'lr_decay_start', 0.0) * total_steps)
  return LinearDecayPerGeneratorStep(initial, total_steps, updates_per_step,
                                     min(start, total_steps - 1))


# The two networks an optimizer can train; its name (which checkpoints depend on) is
# '<network>_adam' unless given.
NETWORKS = ('generator', 'critic')


def make_adam(train_config: ml_collections.ConfigDict, network: str, *,
              total_steps: Optional[int] = None,
              name: Optional[str] = None) -> keras.optimizers.Optimizer:
  """Adam(lr, beta1, beta2, adam_epsilon) from `config.train` for `network` ('generator' |
  'critic'); create under the strategy scope.

  The network sets the initial rate (`initial_learning_rate`) and the updates per generator
  step the linear decay divides by: n_critic for the critic, 1 for the generator.
  `total_steps`: generator steps of the run, for the decay; by default train.num_steps.
  """
  if network not in NETWORKS:
    raise ValueError(f'network={network!r} is not allowed; allowed: one of {NETWORKS}')
  critic = network == 'critic'
  learning_rate = make_learning_rate(
      train_config, updates_per_step=train_config.n_critic if critic else 1,
      total_steps=total_steps, generator=not critic)
  # getattr: configs saved before train.adam_epsilon existed still load (Keras' default).
  return AdamOnSummedGradients(learning_rate=learning_rate, beta_1=train_config.beta1,
                               beta_2=train_config.beta2,
                               epsilon=getattr(train_config, 'adam_epsilon', 1e-7),
                               name=name or f'{network}_adam')
