"""Stateless random draws keyed by (seed, step, iteration, purpose), sliced per replica, and
the purposes (stream ids) of the draws made through `key`: the noise, interpolation weights and
labels of training, evaluation and sampling.

Other draws are seeded where they are made, not here: the data order by `config.seed` and the
epoch (data/input_pipeline.py `example_indices`, a stateless index shuffle); weight
initialisation by `keras.utils.set_random_seed(config.seed)` (training/state.py); the Inception
evaluation's reference subset of the training images by evaluator.REFERENCE_SEED
(eval/evaluator.py); the digit classifier's split and training by their own fixed seeds
(eval/classifier.py, eval/train_classifier.py).

Every replica draws the *global* batch's noise from the same key and keeps its own slice. So an
example's z and ε depend only on its global index, never on the replica count, and no two
replicas share a draw (one shared stateful seed would give every replica identical noise). The
draws are a few thousand numbers, negligible next to the step.
"""

import tensorflow as tf

# Purposes: one stream per kind of draw made through `key`. Every such id lives here so that two
# kinds of draw can never share a stream; a new kind takes a new number. Training's streams (1-8) are keyed by
# (generator step, critic iteration); the tools' streams sit far from them.
CRITIC_NOISE = 1  # z of each critic update.
EPSILON = 2  # The penalty's interpolation weight per example.
GENERATOR_NOISE = 3  # z of each generator update.
FIXED_NOISE = 4  # The noise vectors of the sample grid (step 0, iteration 0).
GENERATOR_LABELS = 5  # Class labels of each generator update (class-conditional models).
# Augmentation (augment.py) of the critic update's real images, of its fakes, and of the
# generator update's fakes: three streams, so real and fake images are transformed
# independently.
AUGMENT_REAL = 6
AUGMENT_FAKE = 7
AUGMENT_GENERATOR = 8
EVAL_NOISE = 101  # Evaluation noise, keyed by (seed, batch index): the same in every evaluation.
SAMPLE_NOISE = 102  # `python -m wgan_dist.sample`, keyed by its --seed alone.
OVERFIT_NOISE = 103  # The critic-overfitting gauge's fakes (training/overfit.py), keyed by batch.


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

