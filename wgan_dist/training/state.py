"""`TrainState`: everything a training run owns and checkpoints, and how it is created.

The models (and the EMA copy of the generator), both optimizers and the counters. The field
names are the checkpoint's keys (checkpointing.py, restore.py read them).
"""

import dataclasses
import math
from typing import Optional

import keras
import ml_collections
import tensorflow as tf

from wgan_dist.algorithm import ema
from wgan_dist.models import architectures as models
from wgan_dist.algorithm import optimizers
from wgan_dist.algorithm import precision
from wgan_dist.algorithm import steps


@dataclasses.dataclass(frozen=True)
class TrainState:
  """Everything a checkpoint holds; the field names are the checkpoint's keys."""
  generator: keras.Model
  critic: keras.Model
  generator_optimizer: keras.optimizers.Optimizer
  critic_optimizer: keras.optimizers.Optimizer
  step: tf.Variable  # Generator steps done; keys the noise of the next step.
  skipped_updates: tf.Variable  # Updates skipped for non-finite gradients (mixed_float16).
  ema_generator: Optional[keras.Model] = None  # Averaged weights; None when train.ema_decay=0.
  # The augmentation's probability p (algorithm/augment.py), adapted during training when
  # augment.target > 0; None when augment.policy is ''.
  augment_p: Optional[tf.Variable] = None

  def as_dict(self) -> dict:
    # Not dataclasses.asdict: that deep-copies the models. Absent parts are left out, so a
    # checkpoint holds only what the run has.
    return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
            if getattr(self, field.name) is not None}


def create_train_state(config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy,
                       total_steps: Optional[int] = None) -> TrainState:
  """Models and optimizers under `strategy`, initialised from `config.seed`.

  `total_steps` (generator steps of the whole run) sets the length of a decaying learning rate;
  None means `config.train.num_steps`.
  """
  keras.utils.set_random_seed(config.seed)  # Weight initialisation.
  with strategy.scope():
    with precision.policy_scope(config.mixed_precision):
      generator, critic = models.build_models(config)
      ema_generator = (ema.make_ema_generator(generator, lambda: models.build_models(config)[0])
                       if config.train.ema_decay > 0 else None)
    generator_optimizer = precision.wrap_optimizer(
        optimizers.make_adam(config.train, 'generator', total_steps=total_steps),
        config.mixed_precision, config.initial_loss_scale)
    critic_optimizer = precision.wrap_optimizer(
        optimizers.make_adam(config.train, 'critic', total_steps=total_steps),
        config.mixed_precision, config.initial_loss_scale)
    # Built now so that a restore fills their slots and the step function creates no variables.
    generator_optimizer.build(generator.trainable_variables)
    critic_optimizer.build(critic.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    skipped_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name='skipped_updates')
    augment_p = (tf.Variable(float(config.augment.p), dtype=tf.float32, trainable=False,
                             name='augment_p') if config.augment.policy.strip() else None)
  return TrainState(generator, critic, generator_optimizer, critic_optimizer, step,
                    skipped_updates, ema_generator, augment_p)


def scalars(state: TrainState) -> dict[str, float]:
  """TensorBoard scalars the state holds: both learning rates (the rate the next update uses),
  the augmentation's p when augmenting and, under mixed_float16, both loss scales and the
  skipped updates."""
  values = {'train/learning_rate': _current_rate(state.critic_optimizer),
            'train/generator_learning_rate': _current_rate(state.generator_optimizer)}
  if state.augment_p is not None:
    values['train/augment_p'] = float(state.augment_p.numpy())
  critic_scale = precision.loss_scale(state.critic_optimizer)
  if critic_scale is not None:
    values.update({
        'train/loss_scale': float(critic_scale.numpy()),
        'train/generator_loss_scale': float(
            precision.loss_scale(state.generator_optimizer).numpy()),
        'train/skipped_steps': float(state.skipped_updates.numpy())})
  return values


def _current_rate(optimizer: keras.optimizers.Optimizer) -> float:
  # A constant rate is a Keras variable (wrapping a MirroredVariable under a mirrored strategy,
  # which float() refuses); a schedule's rate is a tensor.
  rate = optimizer.learning_rate
  return float(tf.convert_to_tensor(getattr(rate, 'value', rate)))


def check_finite_weights(state: TrainState, step: int, last_checkpoint: Optional[str]) -> None:
  """Raises steps.NonFiniteError naming the first variables that hold NaN or Inf."""
  models_ = [state.generator, state.critic] + (
      [state.ema_generator] if state.ema_generator is not None else [])
  broken = [f'{model.name}/{variable.path}' for model in models_ for variable in model.weights
            if not bool(tf.reduce_all(tf.math.is_finite(variable)))]
  if broken:
    raise steps.NonFiniteError(step, [f'weights {", ".join(broken[:5])}'], last_checkpoint)


def resolve_num_steps(config: ml_collections.ConfigDict, dataset_size: int) -> int:
  """train.num_steps, or num_epochs passes of the data through the critic when it is -1."""
  train = config.train
  if train.num_steps != -1:
    return train.num_steps
  real_images_per_step = train.global_batch_size * train.n_critic
  return max(1, math.ceil(train.num_epochs * dataset_size / real_images_per_step))
