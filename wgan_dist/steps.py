"""The distributed training step (Algorithm 1): n_critic critic updates, each on a fresh real
batch, then one generator update; several such steps per tf.function call.

Both updates run whole inside `strategy.run` (inner penalty tape included; applying gradients
outside the replica context fails). Per-example losses are averaged over the *global* batch with
`tf.nn.compute_average_loss`, the gradients summed across replicas once, and the logged values
reduced with SUM, so neither the learning rate nor λ depends on the replica count.
"""

from typing import Callable

import keras
import ml_collections
import tensorflow as tf

from wgan_dist import losses
from wgan_dist import random_keys

METRICS = ('critic_loss', 'gradient_penalty', 'wasserstein_estimate', 'critic_grad_norm',
           'generator_loss', 'generator_grad_norm')
_SUM = tf.distribute.ReduceOp.SUM


def _sum_gradients_over_replicas(grads: list[tf.Tensor]) -> list[tf.Tensor]:
  return tf.distribute.get_replica_context().all_reduce(_SUM, grads)


def make_train_loop(*, strategy: tf.distribute.Strategy, generator: keras.Model,
                    critic: keras.Model, generator_optimizer: keras.optimizers.Optimizer,
                    critic_optimizer: keras.optimizers.Optimizer, step: tf.Variable,
                    config: ml_collections.ConfigDict) -> Callable:
  """Returns `train_loop(iterator, num_steps) -> {metric: mean over the steps}`.

  `iterator` yields distributed real batches; `step` (generator steps done) advances by
  `num_steps` and keys the noise, so a resumed run draws what an uninterrupted one would.
  """
  train = config.train
  global_batch = train.global_batch_size
  num_replicas = strategy.num_replicas_in_sync
  per_replica = global_batch // num_replicas
  noise_dim = config.model.noise_dim
  n_critic = train.n_critic
  gp_lambda = float(train.gp_lambda)
  seed = config.seed

  def average(per_example: tf.Tensor) -> tf.Tensor:
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)

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
    with tf.GradientTape() as tape:
      terms = losses.critic_losses(critic, real, fake, epsilon, gp_lambda)
      loss = average(terms['critic_loss'])
    grads = _sum_gradients_over_replicas(tape.gradient(loss, critic.trainable_variables))
    critic_optimizer.apply(grads, critic.trainable_variables)
    metrics = {name: average(values) for name, values in terms.items()}
    # Every replica holds the same summed gradient; the 1/replicas share makes SUM its norm.
    metrics['critic_grad_norm'] = tf.linalg.global_norm(grads) / num_replicas
    return metrics

  def generator_step(step_value: tf.Tensor) -> dict:
    z = random_keys.replica_slice(
        tf.random.stateless_normal(
            [global_batch, noise_dim],
            seed=random_keys.key(seed, step_value, 0, random_keys.GENERATOR_NOISE)),
        per_replica)
    with tf.GradientTape() as tape:
      loss = average(losses.generator_loss(critic, generator(z, training=True)))
    grads = _sum_gradients_over_replicas(tape.gradient(loss, generator.trainable_variables))
    generator_optimizer.apply(grads, generator.trainable_variables)
    return {'generator_loss': loss,
            'generator_grad_norm': tf.linalg.global_norm(grads) / num_replicas}

  def reduce(per_replica_metrics: dict) -> dict:
    return {name: strategy.reduce(_SUM, value, axis=None)
            for name, value in per_replica_metrics.items()}

  @tf.function
  def train_loop(iterator, num_steps: tf.Tensor) -> dict[str, tf.Tensor]:
    totals = {name: tf.constant(0.0) for name in METRICS}
    for _ in tf.range(num_steps):
      step_value = step.read_value()
      for iteration in tf.range(n_critic):
        critic_metrics = reduce(strategy.run(critic_step, args=(next(iterator), step_value,
                                                                iteration)))
        totals = {name: total + critic_metrics[name] / n_critic if name in critic_metrics
                  else total for name, total in totals.items()}
      generator_metrics = reduce(strategy.run(generator_step, args=(step_value,)))
      totals = {name: total + generator_metrics.get(name, 0.0)
                for name, total in totals.items()}
      step.assign_add(1)
    return {name: total / tf.cast(num_steps, tf.float32) for name, total in totals.items()}

  return train_loop
