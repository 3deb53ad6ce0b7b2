"""Stateless random draws keyed by (seed, step, iteration, purpose), sliced per replica.

Every replica draws the *global* batch's noise from the same key and keeps its own slice. So an
example's z and ε depend only on its global index, never on the replica count, and no two
replicas share a draw (one shared stateful seed would give every replica identical noise). The
draws are a few thousand numbers, negligible next to the step.
"""

import tensorflow as tf

# Purposes: separate streams for each kind of draw.
CRITIC_NOISE = 1
EPSILON = 2
GENERATOR_NOISE = 3
FIXED_NOISE = 4


def key(seed: int, step: tf.Tensor, iteration: tf.Tensor | int, purpose: int) -> tf.Tensor:
  """A stateless-RNG seed of shape [2] for this (seed, step, critic iteration, purpose)."""
  value = tf.constant([seed, purpose], tf.int64)
  value = tf.random.experimental.stateless_fold_in(value, tf.cast(step, tf.int64))
  return tf.random.experimental.stateless_fold_in(value, tf.cast(iteration, tf.int64))


def replica_slice(global_values: tf.Tensor, per_replica: int) -> tf.Tensor:
  """This replica's rows [r·per_replica, (r+1)·per_replica) of a global-batch tensor."""
  replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
  start = tf.cast(replica_id, tf.int32) * per_replica
  rows = global_values[start:start + per_replica]
  # A slice at a tensor offset loses the static batch size; restore it so every shape
  # downstream (generator output, penalty reshape) stays static.
  return tf.ensure_shape(rows, [per_replica] + global_values.shape[1:].as_list())

