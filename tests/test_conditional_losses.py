"""Class-conditional losses against closed forms: the penalty of a label-dependent linear critic,
the AC-GAN critic's penalty on its score column only, and the classifier terms."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from wgan_dist.algorithm import conditioning
from wgan_dist.algorithm import losses
from wgan_dist.models import layers as model_layers

SHAPE = (5, 4, 2)
NUM_CLASSES = 3


def _projection_linear_critic(weights: np.ndarray) -> keras.Model:
  """D(x, y) = <w_y, x>: inputs [image, label], ∇x D(x, y) = w_y. weights: [K, *SHAPE]."""
  image = keras.Input(SHAPE)
  label = keras.Input((), dtype='int32')
  table = keras.layers.Embedding(len(weights), int(np.prod(SHAPE)))
  w_y = table(label)
  table.set_weights([weights.reshape(len(weights), -1)])
  score = keras.ops.sum(keras.layers.Flatten()(image) * w_y, axis=1, keepdims=True)
  return keras.Model([image, label], score)


def _acgan_linear_critic(w: np.ndarray, classifier: np.ndarray) -> keras.Model:
  """image -> [<w, x>, logits V x]: the AC-GAN layout (score column, then K logits)."""
  image = keras.Input(SHAPE)
  dense = keras.layers.Dense(1 + NUM_CLASSES, use_bias=False)
  outputs = dense(keras.layers.Flatten()(image))
  dense.set_weights([np.concatenate([w.reshape(-1, 1), classifier], axis=1)])
  return keras.Model(image, outputs)


def _batch(rng, size=6):
  real = rng.uniform(-1, 1, (size,) + SHAPE).astype(np.float32)
  fake = rng.uniform(-1, 1, (size,) + SHAPE).astype(np.float32)
  epsilon = rng.uniform(0, 1, (size, 1, 1, 1)).astype(np.float32)
  labels = np.array([0, 1, 2, 2, 1, 0][:size], np.int32)
  return real, fake, epsilon, labels


def test_projection_penalty_is_that_of_each_examples_own_class():
  rng = np.random.default_rng(0)
  # Class norms 0.3, 1.0 and 2.5: penalties 0.49, 0 and 2.25, different for every class.
  directions = rng.standard_normal((NUM_CLASSES,) + SHAPE)
  directions /= np.linalg.norm(directions.reshape(NUM_CLASSES, -1), axis=1)[:, None, None, None]
  norms = np.array([0.3, 1.0, 2.5])
  critic = _projection_linear_critic((directions * norms[:, None, None, None]).astype(np.float32))
  real, fake, epsilon, labels = _batch(rng)

  penalty = losses.gradient_penalty(critic, real, fake, epsilon, labels=tf.constant(labels),
                                    conditioning=conditioning.PROJECTION)

  expected = (norms[labels] - 1.0) ** 2
  np.testing.assert_allclose(penalty.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_projection_critic_scores_real_and_fake_with_the_real_label():
  rng = np.random.default_rng(1)
  weights = rng.standard_normal((NUM_CLASSES,) + SHAPE).astype(np.float32)
  critic = _projection_linear_critic(weights)
  real, fake, epsilon, labels = _batch(rng)

  terms = losses.critic_losses(critic, real, fake, epsilon, gp_lambda=10.0,
                               labels=tf.constant(labels), conditioning=conditioning.PROJECTION)

  w_y = weights[labels].reshape(len(labels), -1).astype(np.float64)
  wasserstein = np.sum(w_y * (real.reshape(len(real), -1) - fake.reshape(len(fake), -1)), axis=1)
  penalty = (np.linalg.norm(w_y, axis=1) - 1.0) ** 2
  np.testing.assert_allclose(terms['wasserstein_estimate'].numpy(), wasserstein, rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(terms['critic_loss'].numpy(), -wasserstein + 10.0 * penalty,
                             rtol=1e-4, atol=1e-4)
  assert 'critic_classifier_loss' not in terms  # A projection critic has no classifier.


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  logits = logits.astype(np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return -log_softmax[np.arange(len(labels)), labels]


@pytest.mark.parametrize('weight', [0.0, 1.0])
def test_acgan_critic_penalty_ignores_the_logits_and_adds_weighted_cross_entropy(weight):
  rng = np.random.default_rng(2)
  w = rng.standard_normal(SHAPE)
  w = (0.4 * w / np.linalg.norm(w)).astype(np.float32)  # ‖w‖ = 0.4: penalty 0.36.
  classifier = rng.standard_normal((int(np.prod(SHAPE)), NUM_CLASSES)).astype(np.float32)
  critic = _acgan_linear_critic(w, classifier)
  real, fake, epsilon, labels = _batch(rng)

  terms = losses.critic_losses(critic, real, fake, epsilon, gp_lambda=10.0,
                               labels=tf.constant(labels), classifier_weight=weight,
                               conditioning=conditioning.ACGAN_CONDITIONING)

  # The logits' gradient would change the norm if the penalty differentiated them too.
  np.testing.assert_allclose(terms['gradient_penalty'].numpy(), np.full(6, 0.36), rtol=1e-5)
  flat = lambda x: x.reshape(len(x), -1).astype(np.float64)
  cross_entropy = _cross_entropy(flat(real) @ classifier, labels)  # On the real images.
  np.testing.assert_allclose(terms['critic_classifier_loss'].numpy(), cross_entropy, rtol=1e-4)
  wasserstein = flat(real) @ w.reshape(-1) - flat(fake) @ w.reshape(-1)
  np.testing.assert_allclose(terms['critic_loss'].numpy(),
                             -wasserstein + 10.0 * 0.36 + weight * cross_entropy,
                             rtol=1e-4, atol=1e-4)


def test_acgan_generator_loss_adds_weighted_cross_entropy_on_the_fakes():
  rng = np.random.default_rng(3)
  w = rng.standard_normal(SHAPE).astype(np.float32)
  classifier = rng.standard_normal((int(np.prod(SHAPE)), NUM_CLASSES)).astype(np.float32)
  critic = _acgan_linear_critic(w, classifier)
  _, fake, _, labels = _batch(rng)

  terms = losses.generator_losses(critic, fake, tf.constant(labels), classifier_weight=0.1,
                                  conditioning=conditioning.ACGAN_CONDITIONING)

  flat = fake.reshape(len(fake), -1).astype(np.float64)
  cross_entropy = _cross_entropy(flat @ classifier, labels)
  np.testing.assert_allclose(terms['generator_classifier_loss'].numpy(), cross_entropy,
                             rtol=1e-4)
  np.testing.assert_allclose(terms['generator_loss'].numpy(),
                             -(flat @ w.reshape(-1)) + 0.1 * cross_entropy, rtol=1e-4, atol=1e-4)


def test_unconditional_generator_loss_is_minus_the_score():
  rng = np.random.default_rng(4)
  w = rng.standard_normal(SHAPE).astype(np.float32)
  image = keras.Input(SHAPE)
  dense = keras.layers.Dense(1, use_bias=False)
  critic = keras.Model(image, dense(keras.layers.Flatten()(image)))
  dense.set_weights([w.reshape(-1, 1)])
  _, fake, _, _ = _batch(rng)
  terms = losses.generator_losses(critic, fake)
  assert set(terms) == {'generator_loss'}
  np.testing.assert_allclose(terms['generator_loss'].numpy(),
                             -(fake.reshape(6, -1).astype(np.float64) @ w.reshape(-1)),
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('make_critic, kind', [
    (lambda: _projection_linear_critic(np.ones((NUM_CLASSES,) + SHAPE, np.float32)),
     conditioning.PROJECTION),
    (lambda: _acgan_linear_critic(np.ones(SHAPE, np.float32),
                                  np.ones((int(np.prod(SHAPE)), NUM_CLASSES), np.float32)),
     conditioning.ACGAN_CONDITIONING)],
    ids=['projection', 'acgan'])
def test_a_conditional_critic_without_labels_is_a_clear_error(make_critic, kind):
  real, fake, epsilon, _ = _batch(np.random.default_rng(5))
  with pytest.raises(ValueError, match='is class-conditional .* it needs the labels'):
    losses.critic_losses(make_critic(), real, fake, epsilon, gp_lambda=10.0, conditioning=kind)


def test_an_acgan_critic_read_as_unconditional_is_a_clear_error():
  # Its [B, 1 + K] output is not one score per example: refused, never guessed from.
  critic = _acgan_linear_critic(np.ones(SHAPE, np.float32),
                                np.ones((int(np.prod(SHAPE)), NUM_CLASSES), np.float32))
  real, fake, epsilon, _ = _batch(np.random.default_rng(6))
  with pytest.raises(ValueError, match=r'returned shape \(6, 4\); allowed: \[B, 1\]'):
    losses.gradient_penalty(critic, real, fake, epsilon)


def test_conditioning_and_num_classes_must_agree():
  # A conditional critic needs classes; an unconditional one must not be given labels.
  image = keras.Input((4, 4, 1))
  features = keras.layers.Flatten()(image)
  dense = lambda units, name: keras.layers.Dense(units, dtype='float32', name=name)
  with pytest.raises(ValueError, match='num_classes=0'):
    model_layers.critic_model(image, features, 0, conditioning.ACGAN_CONDITIONING, name='c')
  with pytest.raises(ValueError, match='num_classes=3'):
    model_layers.critic_model(image, features, 3, conditioning.NONE, name='c')
  critic = conditioning.NONE.critic_head(image, features, 0, dense, 'c')
  with pytest.raises(ValueError, match='labels given to the unconditional'):
    conditioning.NONE.outputs(critic, tf.zeros([2, 4, 4, 1]), tf.zeros([2], tf.int32))
