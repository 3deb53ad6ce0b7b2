"""The distributed training step (Algorithm 1): n_critic critic updates, each on a fresh real
batch, then one generator update; several such steps per tf.function call.

Both updates run whole inside `strategy.run` (inner penalty tape included; applying gradients
outside the replica context fails). Per-example losses are averaged over the *global* batch with
`tf.nn.compute_average_loss`, the gradients summed across replicas once, and the logged values
reduced with SUM, so neither the learning rate nor λ depends on the replica count.

Under mixed_float16 the optimizers are LossScaleOptimizers: the loss is scaled once for the
outer gradient, the summed (still scaled) gradients go to `apply`, which unscales them or skips
the update when they are not finite. Because every replica holds the same summed gradients,
all replicas agree on skipping.
"""

from typing import Callable, Optional

import keras
import ml_collections
import tensorflow as tf

from wgan_dist import ema
from wgan_dist import losses
from wgan_dist import precision
from wgan_dist import random_keys

METRICS = ('critic_loss', 'gradient_penalty', 'wasserstein_estimate', 'critic_grad_norm',
           'generator_loss', 'generator_grad_norm')
# Also returned by the loop, besides the METRICS means: how many steps it ran, and the first
# step (1-based, as the step counter after it) with a non-finite value, or -1.
STEPS_RUN = 'steps_run'
NONFINITE_STEP = 'nonfinite_step'
_SUM = tf.distribute.ReduceOp.SUM


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


def _sum_gradients_over_replicas(grads: list[tf.Tensor]) -> list[tf.Tensor]:
  return tf.distribute.get_replica_context().all_reduce(_SUM, grads)


def _scaled(loss: tf.Tensor, scale: Optional[tf.Tensor]) -> tf.Tensor:
  """loss·scale for the outer gradient; the loss itself when there is no loss scaling."""
  return loss if scale is None else loss * tf.cast(scale, loss.dtype)


def _all_finite(grads: list[tf.Tensor]) -> tf.Tensor:
  return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])


def critic_loss_and_gradients(*, critic: keras.Model, real: tf.Tensor, fake: tf.Tensor,
                              epsilon: tf.Tensor, gp_lambda: float, global_batch: int,
                              inner_scale: float,
                              loss_scale: Optional[tf.Tensor]) -> tuple[dict, list]:
  """Per-example critic terms and this replica's gradient of loss_scale·(its loss share).

  The penalty inside is computed at the fixed `inner_scale`, independent of `loss_scale`.
  """
  with tf.GradientTape() as tape:
    terms = losses.critic_losses(critic, real, fake, epsilon, gp_lambda, inner_scale)
    loss = tf.nn.compute_average_loss(terms['critic_loss'], global_batch_size=global_batch)
    scaled_loss = _scaled(loss, loss_scale)
  return terms, tape.gradient(scaled_loss, critic.trainable_variables)


def make_train_loop(*, strategy: tf.distribute.Strategy, generator: keras.Model,
                    critic: keras.Model, generator_optimizer: keras.optimizers.Optimizer,
                    critic_optimizer: keras.optimizers.Optimizer, step: tf.Variable,
                    skipped_updates: tf.Variable, config: ml_collections.ConfigDict,
                    ema_generator: Optional[keras.Model] = None) -> Callable:
  """Returns `train_loop(iterator, num_steps) -> {metric: mean over the steps}`.

  `iterator` yields distributed real batches; `step` (generator steps done) advances by
  `num_steps` and keys the noise, so a resumed run draws what an uninterrupted one would.
  The loop ends early after a step with a non-finite loss or gradient norm; the result's
  STEPS_RUN and NONFINITE_STEP entries say so.
  `skipped_updates` counts critic and generator updates skipped for non-finite gradients.
  `ema_generator`, when given, is averaged towards the generator after every generator step.
  """
  train = config.train
  global_batch = train.global_batch_size
  num_replicas = strategy.num_replicas_in_sync
  per_replica = global_batch // num_replicas
  noise_dim = config.model.noise_dim
  n_critic = train.n_critic
  gp_lambda = float(train.gp_lambda)
  inner_scale = precision.inner_gradient_scale(config.mixed_precision)
  seed = config.seed

  # train.jit_compile: XLA has no kernel for the iterator's IteratorGetNext, so the loop itself
  # cannot be compiled; the per-replica critic loss and gradients (the heaviest part) can.
  critic_gradients = (tf.function(critic_loss_and_gradients, jit_compile=True)
                      if train.jit_compile else critic_loss_and_gradients)

  def average(per_example: tf.Tensor) -> tf.Tensor:
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)

  def summed_update(optimizer, grads, variables) -> dict:
    """Applies the replica-summed gradients; returns the unscaled norm and a skip flag."""
    grads = _sum_gradients_over_replicas(grads)
    scale = precision.loss_scale(optimizer)
    norm = tf.linalg.global_norm(grads)
    skipped = tf.constant(0.0)
    if scale is not None:  # Only a loss-scaled update can be skipped; float32 skips no check.
      finite = _all_finite(grads)
      norm = tf.where(finite, norm / tf.cast(scale, norm.dtype), 0.0)
      skipped = 1.0 - tf.cast(finite, tf.float32)
    optimizer.apply(grads, variables)
    # Every replica holds the same values; the 1/replicas share makes the SUM-reduce exact.
    return {'grad_norm': norm / num_replicas, 'skipped': skipped / num_replicas}

  def critic_step(real: tf.Tensor, step_value: tf.Tensor, iteration: tf.Tensor) -> dict:
    z = random_keys.replica_slice(
        tf.random.stateless_normal(
            [global_batch, noise_dim],
            seed=random_keys.key(seed, step_value, iteration, random_keys.CRITIC_NOISE)),
        per_replica)
    epsilon = random_keys.replica_slice(
        tf.random.stateless_uniform(
            [global_batch, 1, 1, 1],
            seed=random_keys.key(seed, step_value, iteration, random_keys.EPSILON)),
        per_replica)
    fake = generator(z, training=True)
    terms, grads = critic_gradients(
        critic=critic, real=real, fake=fake, epsilon=epsilon, gp_lambda=gp_lambda,
        global_batch=global_batch, inner_scale=inner_scale,
        loss_scale=precision.loss_scale(critic_optimizer))
    update = summed_update(critic_optimizer, grads, critic.trainable_variables)
    metrics = {name: average(values) for name, values in terms.items()}
    metrics['critic_grad_norm'] = update['grad_norm']
    metrics['skipped'] = update['skipped']
    return metrics

  def generator_step(step_value: tf.Tensor) -> dict:
    z = random_keys.replica_slice(
        tf.random.stateless_normal(
            [global_batch, noise_dim],
            seed=random_keys.key(seed, step_value, 0, random_keys.GENERATOR_NOISE)),
        per_replica)
    with tf.GradientTape() as tape:
      loss = average(losses.generator_loss(critic, generator(z, training=True)))
      scaled_loss = _scaled(loss, precision.loss_scale(generator_optimizer))
    grads = tape.gradient(scaled_loss, generator.trainable_variables)
    update = summed_update(generator_optimizer, grads, generator.trainable_variables)
    return {'generator_loss': loss, 'generator_grad_norm': update['grad_norm'],
            'skipped': update['skipped']}

  def reduce(per_replica_metrics: dict) -> dict:
    return {name: strategy.reduce(_SUM, value, axis=None)
            for name, value in per_replica_metrics.items()}

  def count_skipped(flag: tf.Tensor) -> None:
    skipped_updates.assign_add(tf.cast(tf.round(flag), tf.int64))

  @tf.function
  def train_loop(iterator, num_steps: tf.Tensor) -> dict[str, tf.Tensor]:
    totals = {name: tf.constant(0.0) for name in METRICS}
    steps_run = tf.constant(0, tf.int32)
    nonfinite_step = tf.constant(-1, tf.int64)
    for _ in tf.range(num_steps):
      step_value = step.read_value()
      this_step = {name: tf.constant(0.0) for name in METRICS}
      skipped_in_step = tf.constant(0.0)
      for iteration in tf.range(n_critic):
        critic_metrics = reduce(strategy.run(critic_step, args=(next(iterator), step_value,
                                                                iteration)))
        count_skipped(critic_metrics['skipped'])
        skipped_in_step += critic_metrics['skipped']
        this_step = {name: value + critic_metrics[name] / n_critic if name in critic_metrics
                     else value for name, value in this_step.items()}
      generator_metrics = reduce(strategy.run(generator_step, args=(step_value,)))
      count_skipped(generator_metrics['skipped'])
      skipped_in_step += generator_metrics['skipped']
      this_step = {name: value + generator_metrics.get(name, 0.0)
                   for name, value in this_step.items()}
      totals = {name: totals[name] + this_step[name] for name in METRICS}
      if ema_generator is not None:
        # t = generator steps done, this one included; restored with the step counter.
        ema.update(ema_generator, generator,
                   ema.warmup_decay(train.ema_decay, step_value + 1) if train.ema_warmup
                   else train.ema_decay)
      step.assign_add(1)
      steps_run += 1
      # A non-finite value in a step whose updates were all applied means the weights are no
      # longer finite: stop here, so the caller can fail before anything is saved. (A step the
      # loss scale skipped changed nothing; the scale handles it.)
      if tf.logical_and(tf.logical_not(_all_finite(list(this_step.values()))),
                        skipped_in_step < 0.5):
        nonfinite_step = step_value + 1
        break
    means = {name: total / tf.cast(steps_run, tf.float32) for name, total in totals.items()}
    means[STEPS_RUN] = steps_run
    means[NONFINITE_STEP] = nonfinite_step
    return means

  return train_loop
