"""The distributed training step of Algorithm 1, as two functions: one critic update and one
generator update, each on every replica at once.

`make_critic_step` and `make_generator_step` return plain functions (no tf.function of their
own, so the trainer's loop traces them into one graph); each can also be called alone, as the
tests do. Both updates run whole inside `strategy.run` (the penalty's inner tape included:
applying gradients outside the replica context fails). Per-example losses are averaged over the
*global* batch with `tf.nn.compute_average_loss`, the gradients summed across replicas once, and
the returned values reduced with SUM, so neither the learning rate nor λ depends on the replica
count. Each function's `per_replica` attribute runs the same update but returns every replica's
share of the values unreduced (a PerReplica dict): the trainer's loop keeps them on the devices
and gathers them once per call (trainer.py).

With `augment.policy` set, every image the critic sees is augmented (augment.py): the critic
update's real images and fakes (each with its own draws) and the generator update's fakes, inside
its tape so that the generator's gradient passes through the transforms. The penalty's x̂
interpolates the *augmented* real and fake images: the critic is trained to compare the
augmented distributions, T(x) against T(G(z)), so its 1-Lipschitz constraint belongs on the
line between samples of those two (docs/augmentation.md). The probability p is read each step
from `augment_p` (a variable: the adaptive p of training/augment_action.py, or augment.p).

Under mixed_float16 the optimizers are LossScaleOptimizers: the loss is scaled once for the
outer gradient, the summed (still scaled) gradients go to `apply`, which unscales them or skips
the update when they are not finite. Because every replica holds the same summed gradients,
all replicas agree on skipping.
"""

from typing import Callable, Optional

import keras
import ml_collections
import tensorflow as tf

from wgan_dist.algorithm import augment as augment_lib
from wgan_dist.algorithm import conditioning as conditioning_lib
from wgan_dist.algorithm import losses
from wgan_dist.algorithm import precision
from wgan_dist.algorithm import random_keys

# What the two steps measure (the critic's averaged over its n_critic updates by the loop),
# besides the extra terms of the conditioning (`conditioning.Conditioning.critic_metrics`,
# `.generator_metrics`; AC-GAN's classifier cross-entropies).
CRITIC_METRICS = ('critic_loss', 'gradient_penalty', 'wasserstein_estimate', 'critic_grad_norm')
GENERATOR_METRICS = ('generator_loss', 'generator_grad_norm')
METRICS = CRITIC_METRICS + GENERATOR_METRICS
ACGAN_METRICS = (conditioning_lib.ACGAN_CONDITIONING.critic_metrics +
                 conditioning_lib.ACGAN_CONDITIONING.generator_metrics)
# Also in each step's result: 1.0 when the loss scale skipped the update, else 0.0.
SKIPPED = 'skipped'
_SUM = tf.distribute.ReduceOp.SUM


def critic_metric_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The metrics the critic step of `config` returns (SKIPPED aside)."""
  return CRITIC_METRICS + conditioning_lib.from_config(config).critic_metrics


def generator_metric_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The metrics the generator step of `config` returns (SKIPPED aside)."""
  return GENERATOR_METRICS + conditioning_lib.from_config(config).generator_metrics


def metric_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The metrics the steps of `config` return (SKIPPED aside), in logging order: METRICS, then
  the conditioning's critic and generator terms."""
  conditioning = conditioning_lib.from_config(config)
  return METRICS + conditioning.critic_metrics + conditioning.generator_metrics


class NonFiniteError(RuntimeError):
  """Training produced NaN or Inf; nothing from that point on was saved."""

  def __init__(self, step: int, quantities: list[str], last_checkpoint: Optional[str]):
    self.step = step
    self.quantities = quantities
    kept = (f'the last checkpoint, {last_checkpoint}, is from before it'
            if last_checkpoint else 'no checkpoint was saved')
    super().__init__(
        f'non-finite {", ".join(quantities) or "values"} at generator step {step}; training '
        f'stopped and {kept}. Try a lower train.learning_rate, a larger '
        'train.gp_lambda, or mixed_precision=float32')


def _scaled(loss: tf.Tensor, scale: Optional[tf.Tensor]) -> tf.Tensor:
  """loss·scale for the outer gradient; the loss itself when there is no loss scaling."""
  return loss if scale is None else loss * tf.cast(scale, loss.dtype)


def all_finite(values: list[tf.Tensor]) -> tf.Tensor:
  """Whether every element of every tensor is finite (a scalar bool)."""
  return tf.reduce_all([tf.reduce_all(tf.math.is_finite(value)) for value in values])


def critic_loss_and_gradients(*, critic: keras.Model, real: tf.Tensor, fake: tf.Tensor,
                              epsilon: tf.Tensor, gp_lambda: float, global_batch: int,
                              inner_scale: float, loss_scale: Optional[tf.Tensor],
                              labels: Optional[tf.Tensor] = None,
                              classifier_weight: float = 0.0,
                              conditioning: conditioning_lib.Conditioning = conditioning_lib.NONE
                              ) -> tuple[dict, list]:
  """Per-example critic terms and this replica's gradient of loss_scale·(its loss share).

  The penalty inside is computed at the fixed `inner_scale`, independent of `loss_scale`.
  `labels`, `classifier_weight` and `conditioning`: losses.critic_losses.
  """
  with tf.GradientTape() as tape:
    terms = losses.critic_losses(critic, real, fake, epsilon, gp_lambda, inner_scale, labels,
                                 classifier_weight, conditioning)
    loss = tf.nn.compute_average_loss(terms['critic_loss'], global_batch_size=global_batch)
    scaled_loss = _scaled(loss, loss_scale)
  return terms, tape.gradient(scaled_loss, critic.trainable_variables)


def _apply_summed(optimizer: keras.optimizers.Optimizer, grads: list[tf.Tensor],
                  variables: list[tf.Variable], num_replicas: int) -> dict[str, tf.Tensor]:
  """Sums `grads` over replicas and applies them; returns the unscaled norm and a skip flag.

  Summed here, not in the optimizer (optimizers.AdamOnSummedGradients), so the logged norm is
  that of the gradient actually applied.
  """
  grads = tf.distribute.get_replica_context().all_reduce(_SUM, grads)
  scale = precision.loss_scale(optimizer)
  norm = tf.linalg.global_norm(grads)
  skipped = tf.constant(0.0)
  if scale is not None:  # Only a loss-scaled update can be skipped; float32 skips no check.
    finite = all_finite(grads)
    norm = tf.where(finite, norm / tf.cast(scale, norm.dtype), 0.0)
    skipped = 1.0 - tf.cast(finite, tf.float32)
  optimizer.apply(grads, variables)
  # Every replica holds the same values; the 1/replicas share makes the SUM-reduce exact.
  return {'grad_norm': norm / num_replicas, SKIPPED: skipped / num_replicas}


def _global_noise(config: ml_collections.ConfigDict, num_replicas: int, shape: list[int],
                  draw: Callable, key: tf.Tensor) -> tf.Tensor:
  """This replica's slice of a [global batch] + `shape` draw: every example's noise depends on
  its global index only, whatever the replica count."""
  global_batch = config.train.global_batch_size
  return random_keys.replica_slice(draw([global_batch] + shape, seed=key),
                                   global_batch // num_replicas)


def _global_labels(config: ml_collections.ConfigDict, num_replicas: int,
                   key: tf.Tensor) -> tf.Tensor:
  """This replica's slice of a global batch of uniform labels in [0, num_classes)."""
  return _global_noise(
      config, num_replicas, [],
      lambda shape, seed: tf.random.stateless_uniform(
          shape, seed=seed, minval=0, maxval=config.model.num_classes, dtype=tf.int32), key)


def _reduce(strategy: tf.distribute.Strategy, per_replica: dict) -> dict[str, tf.Tensor]:
  return {name: strategy.reduce(_SUM, value, axis=None) for name, value in per_replica.items()}


def _augmentation(config: ml_collections.ConfigDict, augment_p: Optional[tf.Variable]
                  ) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor, int], tf.Tensor]:
  """`augment(images, step, iteration, purpose)`: this replica's images augmented per
  config.augment with probability `augment_p` (config.augment.p when None); the identity when
  augment.policy is ''."""
  policy = augment_lib.parse_policy(config.augment.policy)
  global_batch = config.train.global_batch_size

  def augment(images: tf.Tensor, step: tf.Tensor, iteration: tf.Tensor, purpose: int):
    if not policy:
      return images
    p = augment_p if augment_p is not None else tf.constant(config.augment.p, tf.float32)
    return augment_lib.augment(images, policy=policy, p=tf.convert_to_tensor(p),
                               key=random_keys.key(config.seed, step, iteration, purpose),
                               global_batch=global_batch)
  return augment


def make_critic_step(*, strategy: tf.distribute.Strategy, config: ml_collections.ConfigDict,
                     generator: keras.Model, critic: keras.Model,
                     critic_optimizer: keras.optimizers.Optimizer,
                     augment_p: Optional[tf.Variable] = None) -> Callable:
  """`critic_step(batch, step, iteration) -> metrics`: one critic update on every replica.

  `batch` is one distributed global batch of real images, or of (images, labels) for a
  class-conditional config, whose fakes are then generated for the real batch's labels (so the
  penalty's x̂ interpolates within a class); `step` (generator steps done) and `iteration` (the
  critic update within the step, 0..n_critic-1) key the noise z and ε. Returns the global-batch
  means of `critic_metric_names(config)` (CRITIC_METRICS, the gradient norm that of the
  applied, summed gradient, and the conditioning's extra terms) and SKIPPED. Changes only the
  critic's variables and its optimizer (and the generator's batch norm statistics, as the
  generator runs in training mode). `augment_p`: the augmentation's probability (module
  docstring).
  """
  train = config.train
  num_replicas = strategy.num_replicas_in_sync
  gp_lambda = float(train.gp_lambda)
  inner_scale = precision.inner_gradient_scale(config.mixed_precision)
  # train.jit_compile: XLA has no kernel for the iterator's IteratorGetNext, so the loop itself
  # cannot be compiled; the per-replica critic loss and gradients (the heaviest part) can.
  loss_and_gradients = (tf.function(critic_loss_and_gradients, jit_compile=True)
                        if train.jit_compile else critic_loss_and_gradients)

  classifier_weight = float(train.acgan_critic_weight)
  conditioning = conditioning_lib.from_config(config)
  augment = _augmentation(config, augment_p)

  def replica_step(batch, step: tf.Tensor, iteration: tf.Tensor) -> dict:
    real, labels = batch if conditioning.conditional else (batch, None)
    z = _global_noise(config, num_replicas, [config.model.noise_dim], tf.random.stateless_normal,
                      random_keys.key(config.seed, step, iteration, random_keys.CRITIC_NOISE))
    epsilon = _global_noise(config, num_replicas, [1, 1, 1], tf.random.stateless_uniform,
                            random_keys.key(config.seed, step, iteration, random_keys.EPSILON))
    fake = losses.generate(generator, z, labels)
    # x̂ is formed from these augmented images (module docstring).
    real = augment(real, step, iteration, random_keys.AUGMENT_REAL)
    fake = augment(fake, step, iteration, random_keys.AUGMENT_FAKE)
    terms, grads = loss_and_gradients(
        critic=critic, real=real, fake=fake, epsilon=epsilon, gp_lambda=gp_lambda,
        global_batch=train.global_batch_size, inner_scale=inner_scale,
        loss_scale=precision.loss_scale(critic_optimizer), labels=labels,
        classifier_weight=classifier_weight, conditioning=conditioning)
    update = _apply_summed(critic_optimizer, grads, critic.trainable_variables, num_replicas)
    metrics = {name: tf.nn.compute_average_loss(values, global_batch_size=train.global_batch_size)
               for name, values in terms.items()}
    metrics['critic_grad_norm'] = update['grad_norm']
    metrics[SKIPPED] = update[SKIPPED]
    return metrics

  def per_replica(batch, step: tf.Tensor, iteration: tf.Tensor) -> dict:
    return strategy.run(replica_step, args=(batch, step, iteration))

  def critic_step(batch, step: tf.Tensor, iteration: tf.Tensor) -> dict[str, tf.Tensor]:
    return _reduce(strategy, per_replica(batch, step, iteration))

  critic_step.per_replica = per_replica
  return critic_step


def make_generator_step(*, strategy: tf.distribute.Strategy, config: ml_collections.ConfigDict,
                        generator: keras.Model, critic: keras.Model,
                        generator_optimizer: keras.optimizers.Optimizer,
                        augment_p: Optional[tf.Variable] = None) -> Callable:
  """`generator_step(step) -> metrics`: one generator update on every replica.

  `step` (generator steps done) keys the noise and, for a class-conditional config, the labels
  the fakes are generated for (uniform over the classes). Returns the global-batch means of
  `generator_metric_names(config)` (GENERATOR_METRICS and the conditioning's extra terms on the
  fakes) and SKIPPED. The fakes are augmented inside the tape (`augment_p`: as the critic
  step's). Changes only the generator's variables and its optimizer.
  """
  global_batch = config.train.global_batch_size
  num_replicas = strategy.num_replicas_in_sync
  classifier_weight = float(config.train.acgan_generator_weight)
  conditioning = conditioning_lib.from_config(config)
  augment = _augmentation(config, augment_p)

  def replica_step(step: tf.Tensor) -> dict:
    z = _global_noise(config, num_replicas, [config.model.noise_dim], tf.random.stateless_normal,
                      random_keys.key(config.seed, step, 0, random_keys.GENERATOR_NOISE))
    labels = (_global_labels(config, num_replicas,
                             random_keys.key(config.seed, step, 0, random_keys.GENERATOR_LABELS))
              if conditioning.conditional else None)
    with tf.GradientTape() as tape:
      fake = augment(losses.generate(generator, z, labels), step, 0,
                     random_keys.AUGMENT_GENERATOR)
      terms = losses.generator_losses(critic, fake, labels, classifier_weight, conditioning)
      loss = tf.nn.compute_average_loss(terms['generator_loss'], global_batch_size=global_batch)
      scaled_loss = _scaled(loss, precision.loss_scale(generator_optimizer))
    grads = tape.gradient(scaled_loss, generator.trainable_variables)
    update = _apply_summed(generator_optimizer, grads, generator.trainable_variables,
                           num_replicas)
    metrics = {name: tf.nn.compute_average_loss(values, global_batch_size=global_batch)
               for name, values in terms.items()}
    metrics['generator_grad_norm'] = update['grad_norm']
    metrics[SKIPPED] = update[SKIPPED]
    return metrics

  def per_replica(step: tf.Tensor) -> dict:
    return strategy.run(replica_step, args=(step,))

  def generator_step(step: tf.Tensor) -> dict[str, tf.Tensor]:
    return _reduce(strategy, per_replica(step))

  generator_step.per_replica = per_replica
  return generator_step
