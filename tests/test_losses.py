"""The gradient penalty against analytic cases and a float64 finite-difference reference."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from wgan_dist.algorithm import losses


def _linear_critic(weights: np.ndarray, bias: float) -> keras.Model:
  """D(x) = <w, x> + b, so ∇x D = w at every x."""
  image = keras.Input(weights.shape)
  flat = keras.layers.Flatten()(image)
  dense = keras.layers.Dense(1)
  score = dense(flat)
  dense.set_weights([weights.reshape(-1, 1), np.array([bias], np.float32)])
  return keras.Model(image, score)


@pytest.mark.parametrize('scale', [0.01, 0.3, 1.0, 2.5])
def test_linear_critic_penalty_is_norm_of_w_minus_one_squared(scale):
  rng = np.random.default_rng(0)
  w = (scale * rng.standard_normal((6, 5, 3)) / np.sqrt(90)).astype(np.float32)
  critic = _linear_critic(w, bias=0.7)
  real = rng.uniform(-1, 1, (4, 6, 5, 3)).astype(np.float32)
  fake = rng.uniform(-1, 1, (4, 6, 5, 3)).astype(np.float32)
  epsilon = rng.uniform(0, 1, (4, 1, 1, 1)).astype(np.float32)

  penalty = losses.gradient_penalty(critic, real, fake, epsilon).numpy()

  expected = (np.linalg.norm(w.astype(np.float64)) - 1.0) ** 2
  assert penalty.shape == (4,)
  # Every channel counts in the norm (a norm over two spatial axes would differ per channel).
  np.testing.assert_allclose(penalty, np.full(4, expected), rtol=1e-5, atol=1e-7)


def test_zero_gradient_gives_finite_penalty_and_gradient():
  critic = _linear_critic(np.zeros((4, 4, 1), np.float32), bias=0.0)
  real = tf.ones([3, 4, 4, 1])
  fake = -tf.ones([3, 4, 4, 1])
  epsilon = tf.fill([3, 1, 1, 1], 0.5)
  with tf.GradientTape() as tape:
    penalty = losses.gradient_penalty(critic, real, fake, epsilon)
    total = tf.reduce_sum(penalty)
  grads = tape.gradient(total, critic.trainable_variables)
  np.testing.assert_allclose(penalty.numpy(), 1.0, atol=1e-5)  # (0 - 1)^2
  kernel_grad, bias_grad = grads
  assert bias_grad is None  # The bias does not move ∇x D.
  assert np.all(np.isfinite(kernel_grad.numpy()))


def _small_conv_critic() -> keras.Model:
  keras.utils.set_random_seed(3)
  image = keras.Input((8, 8, 2))
  x = keras.layers.Conv2D(4, 3, strides=2, padding='same', activation='tanh')(image)
  x = keras.layers.Conv2D(3, 3, padding='same')(x)
  x = keras.layers.LeakyReLU(0.2)(x)
  x = keras.layers.Flatten()(x)
  return keras.Model(image, keras.layers.Dense(1)(x))


def _float64_gradient_norms(critic: keras.Model, x_hat: np.ndarray, h: float = 1e-6) -> np.ndarray:
  """‖∇D‖ per example by central differences, with the critic's weights cast to float64."""
  keras.config.set_floatx('float64')
  try:
    image = keras.Input(x_hat.shape[1:], dtype='float64')
    x = image
    for layer in critic.layers[1:]:
      clone = layer.__class__.from_config({**layer.get_config(), 'dtype': 'float64'})
      x = clone(x)
      clone.set_weights([w.astype(np.float64) for w in layer.get_weights()])
    critic64 = keras.Model(image, x)
  finally:
    keras.config.set_floatx('float32')
  flat = x_hat.reshape(len(x_hat), -1).astype(np.float64)
  norms = []
  for example in flat:
    steps = np.eye(flat.shape[1]) * h
    # Direct calls, not predict(): predict would feed float32 and drown the 1e-6 steps.
    plus = critic64(tf.constant((example + steps).reshape(-1, *x_hat.shape[1:])))[:, 0].numpy()
    minus = critic64(tf.constant((example - steps).reshape(-1, *x_hat.shape[1:])))[:, 0].numpy()
    norms.append(np.linalg.norm((plus - minus) / (2 * h)))
  return np.array(norms)


def test_conv_critic_penalty_matches_float64_finite_differences():
  critic = _small_conv_critic()
  rng = np.random.default_rng(1)
  real = rng.uniform(-1, 1, (3, 8, 8, 2)).astype(np.float32)
  fake = rng.uniform(-1, 1, (3, 8, 8, 2)).astype(np.float32)
  epsilon = np.array([0.0, 0.37, 1.0], np.float32).reshape(3, 1, 1, 1)

  penalty = losses.gradient_penalty(critic, real, fake, epsilon).numpy()

  x_hat = epsilon * real + (1 - epsilon) * fake
  expected = (_float64_gradient_norms(critic, x_hat) - 1.0) ** 2
  # float32 autodiff vs float64 central differences: agreement to ~1e-5 relative.
  np.testing.assert_allclose(penalty, expected, rtol=1e-4, atol=1e-6)
  assert not np.allclose(expected, expected[0])  # The examples really differ.


def test_penalty_of_one_example_ignores_the_others():
  critic = _small_conv_critic()
  rng = np.random.default_rng(2)
  real = rng.uniform(-1, 1, (4, 8, 8, 2)).astype(np.float32)
  fake = rng.uniform(-1, 1, (4, 8, 8, 2)).astype(np.float32)
  epsilon = rng.uniform(0, 1, (4, 1, 1, 1)).astype(np.float32)
  full = losses.gradient_penalty(critic, real, fake, epsilon).numpy()
  alone = losses.gradient_penalty(critic, real[2:3], fake[2:3], epsilon[2:3]).numpy()
  np.testing.assert_allclose(alone, full[2:3], rtol=1e-6)


def test_critic_losses_combine_the_terms_per_example():
  critic = _small_conv_critic()
  rng = np.random.default_rng(4)
  real = rng.uniform(-1, 1, (5, 8, 8, 2)).astype(np.float32)
  fake = rng.uniform(-1, 1, (5, 8, 8, 2)).astype(np.float32)
  epsilon = rng.uniform(0, 1, (5, 1, 1, 1)).astype(np.float32)
  terms = losses.critic_losses(critic, real, fake, epsilon, gp_lambda=10.0)
  d_real = critic(real)[:, 0].numpy()
  d_fake = critic(fake)[:, 0].numpy()
  penalty = losses.gradient_penalty(critic, real, fake, epsilon).numpy()
  np.testing.assert_allclose(terms['wasserstein_estimate'], d_real - d_fake, rtol=1e-5)
  np.testing.assert_allclose(terms['critic_loss'], d_fake - d_real + 10.0 * penalty,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses.generator_losses(critic, fake)['generator_loss'], -d_fake,
                             rtol=1e-6)


class _SubclassedLinearCritic(keras.Model):
  """D(x) = <w, x> + b as a subclassed model (no inputs or output until called)."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.flatten = keras.layers.Flatten()
    self.dense = keras.layers.Dense(1)

  def call(self, inputs):
    return self.dense(self.flatten(inputs))


def _critic_of_each_kind(kind: str, shape: tuple) -> tuple[keras.Model, keras.layers.Dense]:
  """A linear critic of `kind`, never called, and its Dense (to set w and b)."""
  dense = keras.layers.Dense(1)
  if kind == 'sequential':
    return keras.Sequential([keras.Input(shape), keras.layers.Flatten(), dense]), dense
  if kind == 'sequential_without_input':  # Builds on its first call.
    return keras.Sequential([keras.layers.Flatten(), dense]), dense
  if kind == 'functional':
    image = keras.Input(shape)
    return keras.Model(image, dense(keras.layers.Flatten()(image))), dense
  critic = _SubclassedLinearCritic()
  return critic, critic.dense


@pytest.mark.parametrize('kind', ['sequential', 'sequential_without_input', 'functional',
                                  'subclassed'])
@pytest.mark.parametrize('called_first', [False, True])
def test_penalty_works_on_every_kind_of_keras_critic(kind, called_first):
  # ‖∇x D‖ = ‖w‖ for D(x) = <w, x> + b, whatever the model class and whether it was called.
  # Not called first: the penalty's own call builds the weights, read back for the closed form.
  shape = (4, 3, 2)
  rng = np.random.default_rng(7)
  critic, dense = _critic_of_each_kind(kind, shape)
  real = rng.uniform(-1, 1, (5,) + shape).astype(np.float32)
  fake = rng.uniform(-1, 1, (5,) + shape).astype(np.float32)
  epsilon = rng.uniform(0, 1, (5, 1, 1, 1)).astype(np.float32)
  if called_first:
    critic(real[:1])
    w = (1.7 * rng.standard_normal(shape) / np.sqrt(24)).astype(np.float32)
    dense.set_weights([w.reshape(-1, 1), np.array([0.3], np.float32)])

  penalty = losses.gradient_penalty(critic, real, fake, epsilon).numpy()

  kernel = dense.get_weights()[0].astype(np.float64)
  expected = (np.linalg.norm(kernel) - 1.0) ** 2
  assert expected > 1e-3  # Random or set, ‖w‖ is not 1: the test can tell a wrong norm.
  np.testing.assert_allclose(penalty, np.full(5, expected), rtol=1e-5, atol=1e-7)


def test_the_public_name_is_the_same_penalty():
  """`wgan_dist.losses.gradient_penalty` (the name users import) on a Sequential critic built
  with keras.Input and never called: (‖w‖ − 1)² for a linear critic."""
  from wgan_dist import losses as public  # pylint: disable=import-outside-toplevel
  assert public.gradient_penalty is losses.gradient_penalty
  critic, dense = _critic_of_each_kind('sequential', (4, 3, 2))
  rng = np.random.default_rng(3)
  real, fake = (rng.uniform(-1, 1, (2, 4, 3, 2)).astype(np.float32) for _ in range(2))
  penalty = public.gradient_penalty(critic, real, fake,
                                    np.full((2, 1, 1, 1), 0.5, np.float32)).numpy()
  expected = (np.linalg.norm(dense.get_weights()[0].astype(np.float64)) - 1.0) ** 2
  np.testing.assert_allclose(penalty, np.full(2, expected), rtol=1e-5, atol=1e-7)
