"""PatchMatmulConv2D (im2col) computes what Conv2D computes: values, gradients, and the gradient
penalty's second derivative; the seed critic keeps its variables, so checkpoints still load;
model.conv_impl picks the formulation, whatever the devices."""

import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from configs import mnist
from wgan_dist.dist import devices
from wgan_dist.algorithm import losses
from wgan_dist.models import layers as model_layers
from wgan_dist.models import architectures as models
from wgan_dist.algorithm import precision


def _pair(filters, kernel, strides, padding, input_shape, dtype):
  plain = layers.Conv2D(filters, kernel, strides=strides, padding=padding, dtype=dtype)
  patch = model_layers.PatchMatmulConv2D(filters, kernel, strides=strides, padding=padding,
                                   dtype=dtype)
  plain.build((None, *input_shape))
  patch.build((None, *input_shape))
  rng = np.random.default_rng(0)
  for source, target in zip(plain.weights, patch.weights):
    source.assign(rng.standard_normal(source.shape) * 0.1)
    target.assign(source.value)
  return plain, patch


def _value_and_penalty_gradients(layer, x):
  """y, ∂Σy/∂x, and ∂/∂w of a penalty on ‖∂Σφ(y)/∂x‖ (double backprop, as the critic's)."""
  with tf.GradientTape() as outer:
    with tf.GradientTape() as inner:
      inner.watch(x)
      y = layer(x)
      # Uneven output weights, so no gradient is trivially symmetric.
      weights = tf.cast(tf.reshape(tf.range(tf.size(y[0])) % 7 - 3, tf.shape(y)[1:]), y.dtype)
      score = tf.reduce_sum(tf.nn.leaky_relu(y, 0.2) * weights)
    input_grad = inner.gradient(score, x)
    penalty = tf.reduce_sum(tf.square(input_grad)) + score
  return y, input_grad, outer.gradient(penalty, layer.trainable_weights)


@pytest.mark.parametrize('filters, kernel, strides, padding, size, channels', [
    (6, 4, 2, 'same', 3, 5),    # The seed critic's conv3 shape, small channels.
    (4, 4, 2, 'same', 6, 3),    # conv2's shape.
    (5, 3, 2, 'valid', 13, 2),  # conv1's shape.
    (3, 3, 1, 'same', 5, 4),
    (2, 4, 1, 'same', 2, 3),    # conv_out's (even kernel, stride 1).
    (3, 5, 3, 'same', 7, 2),    # Uneven padding.
])
def test_values_and_gradients_match_conv2d_in_float64(filters, kernel, strides, padding, size,
                                                      channels):
  plain, patch = _pair(filters, kernel, strides, padding, (size, size, channels), 'float64')
  x = tf.constant(np.random.default_rng(1).standard_normal((3, size, size, channels)))
  expected = _value_and_penalty_gradients(plain, x)
  actual = _value_and_penalty_gradients(patch, x)
  for want, got in zip(tf.nest.flatten(expected), tf.nest.flatten(actual)):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-12)


def test_seed_critic_keeps_its_variables_and_matches_plain_convolutions():
  config = mnist.get_config()
  config.model.conv_impl = 'patch_matmul'  # Whatever devices this process sees.
  # Layers in float64: in float32 the two formulations' rounding flipped a LeakyReLU input near
  # 0 often enough (1 run in ~10) to move one example's penalty by 1e-3.
  with precision.policy_scope('float64'):
    with model_layers.plain_convolutions():
      _, plain = models.build_models(config)
    _, critic = models.build_models(config)
  assert any(isinstance(layer, model_layers.PatchMatmulConv2D) for layer in critic.layers)
  assert not any(isinstance(layer, model_layers.PatchMatmulConv2D) for layer in plain.layers)
  # Same paths and shapes: checkpoints of either formulation restore into the other.
  assert [(v.path, v.shape) for v in critic.weights] == [(v.path, v.shape) for v in plain.weights]
  for source, target in zip(plain.weights, critic.weights):
    target.assign(source.value)

  rng = np.random.default_rng(2)
  real = tf.constant(rng.uniform(-1, 1, (4, 28, 28, 1)), tf.float32)
  fake = tf.constant(rng.uniform(-1, 1, (4, 28, 28, 1)), tf.float32)
  epsilon = tf.constant(rng.uniform(0, 1, (4, 1, 1, 1)), tf.float32)

  def loss_and_gradients(model):
    with tf.GradientTape() as tape:
      terms = losses.critic_losses(model, real, fake, epsilon, gp_lambda=10.0)
      loss = tf.reduce_mean(terms['critic_loss'])
    return terms, tape.gradient(loss, model.trainable_weights)

  expected_terms, expected_grads = loss_and_gradients(plain)
  terms, grads = loss_and_gradients(critic)
  for name, value in expected_terms.items():
    np.testing.assert_allclose(terms[name].numpy(), value.numpy(), rtol=1e-4, atol=1e-5)
  for variable, want, got in zip(critic.trainable_weights, expected_grads, grads):
    scale = np.abs(want.numpy()).max() + 1e-12
    np.testing.assert_allclose(got.numpy() / scale, want.numpy() / scale, atol=1e-4,
                               err_msg=variable.path)


@pytest.mark.parametrize('conv_impl, num_gpus, patch_layers', [
    ('patch_matmul', 0, 3), ('conv', 0, 0), ('auto', 0, 3),
    # On a GPU node 'auto' means cuDNN; 'patch_matmul' is still honoured.
    ('patch_matmul', 2, 3), ('conv', 2, 0), ('auto', 2, 0),
])
def test_conv_impl_decides_the_seed_critic_formulation(conv_impl, num_gpus, patch_layers):
  config = mnist.get_config('tiny')
  config.model.architecture = 'seed'
  config.model.conv_impl = devices.resolve_conv_impl(conv_impl, num_gpus)
  _, critic = models.build_models(config)
  assert sum(isinstance(layer, model_layers.PatchMatmulConv2D)
             for layer in critic.layers) == patch_layers


def test_patch_matmul_computes_the_matmul_even_with_a_gpu_formulation_around():
  """The layer no longer falls back to Conv2D when a GPU is visible (the old test compared
  Conv2D with itself on GPU nodes): its graph holds a MatMul and no Conv2D."""
  _, patch = _pair(3, 3, 2, 'same', (5, 5, 2), 'float32')
  graph = tf.function(patch).get_concrete_function(
      tf.TensorSpec([2, 5, 5, 2], tf.float32)).graph
  op_types = {op.type for op in graph.get_operations()}
  assert 'MatMul' in op_types or 'BatchMatMulV2' in op_types, op_types
  assert 'Conv2D' not in op_types
