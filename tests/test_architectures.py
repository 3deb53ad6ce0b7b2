"""Beyond MNIST: the cifar10 (paper's ResNet), celeba64 (64x64 DCGAN) and fashion_mnist configs.

Each config validates and builds; the full-width models have the parameter counts their layer
formulas give and the paper's shapes; the critics never mix examples; a few training steps run
on tiny generated images of each config's size, through the trainer's own state and loop.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from configs import celeba64
from configs import default
from configs import cifar10
from configs import fashion_mnist
from tests import helpers
from wgan_dist.config import validation as config_validation
from wgan_dist.models import layers as model_layers
from wgan_dist.models import architectures as models
from wgan_dist.algorithm import precision
from wgan_dist.training import state as train_state

CONFIGS = {'cifar10': cifar10, 'celeba64': celeba64, 'fashion_mnist': fashion_mnist}


# Parameter counts from the layer formulas. Batch norm holds 4 weights per channel (scale,
# offset, moving mean, moving variance); the per-example layer norm 2 (scale, offset).
def _conv(kernel: int, cin: int, cout: int) -> int:
  return kernel * kernel * cin * cout + cout


def _dense(nin: int, nout: int) -> int:
  return nin * nout + nout


def _bn(channels: int) -> int:
  return 4 * channels


def _resnet_generator_params(noise: int, b: int) -> int:
  up_block = _conv(1, b, b) + _bn(b) + _conv(3, b, b) + _bn(b) + _conv(3, b, b)
  return _dense(noise, 4 * 4 * b) + 3 * up_block + _bn(b) + _conv(3, b, 3)


def _resnet_critic_params(b: int, norm_weights_per_channel: int) -> int:
  norms = 2 * norm_weights_per_channel * b  # Two norms in each of the 3 residual blocks.
  first = _conv(1, 3, b) + _conv(3, 3, b) + _conv(3, b, b)
  down = _conv(1, b, b) + 2 * _conv(3, b, b) + norms
  same = 2 * _conv(3, b, b) + norms  # Identity shortcut: no weights.
  return first + down + 2 * same + _dense(b, 1)


def _dcgan64_generator_params(noise: int, b: int) -> int:
  params = _dense(noise, 4 * 4 * 8 * b) + _bn(8 * b)
  for cin, cout in [(8 * b, 4 * b), (4 * b, 2 * b), (2 * b, b)]:
    params += _conv(5, cin, cout) + _bn(cout)  # ConvT has the same weight count as Conv.
  return params + _conv(5, b, 3)


def _dcgan64_critic_params(b: int, norm_weights_per_channel: int) -> int:
  params = _conv(5, 3, b)
  for cin, cout in [(b, 2 * b), (2 * b, 4 * b), (4 * b, 8 * b)]:
    params += _conv(5, cin, cout) + norm_weights_per_channel * cout
  return params + _dense(4 * 4 * 8 * b, 1)


@pytest.mark.parametrize('name', sorted(CONFIGS))
@pytest.mark.parametrize('variant', ['', 'tiny'])
def test_configs_validate(name, variant):
  config_validation.validate(CONFIGS[name].get_config(variant))


@pytest.mark.parametrize('name', sorted(CONFIGS))
@pytest.mark.parametrize('variant', ['', 'tiny'])
def test_configs_only_set_fields_the_schema_defines(name, variant):
  # An unlocked ConfigDict accepts a misspelt field silently; the schema is configs/default.py.
  def fields(config, prefix=''):
    return {f'{prefix}{key}' for key in config} | {
        field for key, value in config.items() if hasattr(value, 'items')
        for field in fields(value, f'{prefix}{key}.')}
  assert fields(CONFIGS[name].get_config(variant)) == fields(default.get_config())


def test_cifar10_config_has_the_paper_settings():
  config = cifar10.get_config()
  assert (config.model.architecture, config.model.base_filters, config.model.noise_dim,
          config.model.critic_norm) == ('resnet', 128, 128, 'none')
  train_config = config.train
  assert (train_config.learning_rate, train_config.lr_decay, train_config.beta1,
          train_config.beta2, train_config.n_critic, train_config.global_batch_size,
          train_config.num_steps, train_config.gp_lambda) == (
              2e-4, 'linear', 0.0, 0.9, 5, 64, 100_000, 10.0)
  assert '7.86' in cifar10.__doc__
  assert 'python -m wgan_dist.main --config=configs/cifar10.py\n' in cifar10.__doc__


def test_celeba64_config_reads_a_centre_cropped_folder():
  config = celeba64.get_config()
  assert (config.data.source, config.data.image_size, config.data.channels,
          config.data.center_crop) == ('folder', 64, 3, True)
  assert (config.model.architecture, config.model.critic_norm) == ('dcgan64', 'layer')
  # The docstring's "about 31.7k generator steps" for 50 epochs of the 202,599 CelebA images.
  assert train_state.resolve_num_steps(config, 202_599) == 31_657


@pytest.mark.parametrize('norm, weights_per_channel', [('none', 0), ('layer', 2)])
def test_resnet_parameter_counts_and_shapes(norm, weights_per_channel):
  config = cifar10.get_config()
  config.model.critic_norm = norm
  generator, critic = models.build_models(config)
  assert generator.count_params() == _resnet_generator_params(128, 128)
  assert critic.count_params() == _resnet_critic_params(128, weights_per_channel)
  assert generator.output_shape == (None, 32, 32, 3)
  assert critic.output_shape == (None, 1)
  # Three up-sampling blocks, 4 -> 8 -> 16 -> 32; critic 32 -> 16 -> 8 -> 8 -> 8.
  block_shapes = [tuple(layer.output.shape[1:]) for model in (generator, critic)
                  for layer in model.layers if layer.name.endswith('_add')]
  assert block_shapes == [(8, 8, 128), (16, 16, 128), (32, 32, 128),
                          (16, 16, 128), (8, 8, 128), (8, 8, 128), (8, 8, 128)]
  # Batch norm in the generator (2 per block and one before the output), none in the critic.
  def count(model, kind):
    return sum(isinstance(layer, kind) for layer in model.layers)
  assert count(generator, tf.keras.layers.BatchNormalization) == 7
  assert count(critic, tf.keras.layers.BatchNormalization) == 0
  assert count(critic, model_layers.PerExampleLayerNorm) == (6 if norm == 'layer' else 0)


@pytest.mark.parametrize('norm, weights_per_channel', [('layer', 2), ('none', 0)])
def test_dcgan64_parameter_counts_and_shapes(norm, weights_per_channel):
  config = celeba64.get_config()
  config.model.critic_norm = norm
  generator, critic = models.build_models(config)
  assert generator.count_params() == _dcgan64_generator_params(128, 64)
  assert critic.count_params() == _dcgan64_critic_params(64, weights_per_channel)
  assert generator.output_shape == (None, 64, 64, 3)
  conv_shapes = [tuple(layer.output.shape[1:]) for layer in critic.layers
                 if layer.name.startswith('conv') and 'norm' not in layer.name]
  assert conv_shapes == [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512)]
  assert critic.output_shape == (None, 1)


def test_fashion_mnist_uses_the_seed_models():
  generator, critic = models.build_models(fashion_mnist.get_config())
  # The seed models' counts; the critic's batch norm (4 per channel) replaced by layer norm (2).
  assert generator.count_params() == 2_278_401
  assert critic.count_params() == 10_807_302 - 2 * (256 + 512 + 1024)
  assert fashion_mnist.get_config().data.source == 'fashion_mnist'


@pytest.mark.parametrize('name', ['cifar10', 'celeba64'])
def test_critic_scores_each_example_alone(name):
  # The per-example gradient penalty assumes D(x_i) depends on x_i only.
  config = CONFIGS[name].get_config('tiny')
  generator, critic = models.build_models(config)
  z = np.random.default_rng(0).standard_normal((5, config.model.noise_dim)).astype(np.float32)
  images = generator(z, training=False).numpy()
  assert images.shape == (5, config.data.image_size, config.data.image_size, 3)
  assert images.min() >= -1 and images.max() <= 1
  scores = critic(images).numpy()
  for i in range(5):
    np.testing.assert_allclose(critic(images[i:i + 1]).numpy(), scores[i:i + 1], rtol=1e-4,
                               atol=1e-5)


def _tiny_data(config, directory: str) -> None:
  """Points `config.data` at 16 random images of the config's size (a folder for 'folder')."""
  rng = np.random.default_rng(0)
  size, channels = config.data.image_size, config.data.channels
  if config.data.source == 'folder':
    # Not square and not 64x64: the pipeline must decode and resize them.
    for i in range(16):
      pixels = rng.integers(0, 256, (size + 8, size - 4, channels), dtype=np.uint8)
      tf.io.write_file(os.path.join(directory, f'face_{i:02d}.png'), tf.io.encode_png(pixels))
    config.data.path = directory
  else:
    path = os.path.join(directory, 'images.npz')
    np.savez(path, x=rng.integers(0, 256, (16, size, size, channels), dtype=np.uint8))
    config.data.source, config.data.path = 'npz', path


@pytest.mark.parametrize('name, cpu_replicas', [('cifar10', 1), ('celeba64', 1),
                                                ('fashion_mnist', 1), ('cifar10', 2)])
@pytest.mark.slow
def test_a_few_steps_train_on_tiny_images(name, cpu_replicas, tmp_path):
  config = CONFIGS[name].get_config('tiny')
  _tiny_data(config, str(tmp_path))
  config_validation.validate(config)
  # 2 replicas: the ResNet's synchronized batch norm and its schedule under MirroredStrategy.
  history, weights, state = helpers.train_steps(config, cpu_replicas=cpu_replicas, num_steps=2)
  assert all(np.isfinite(value) for metrics in history for value in metrics.values())
  for model in (state.generator, state.critic):
    moved = [not np.array_equal(weights[f'{model.name}/{v.path}'],
                                state.initial_weights[f'{model.name}/{v.path}'])
             for v in model.trainable_variables]
    assert any(moved), f'{model.name} did not train'
  n_critic = config.train.n_critic
  assert int(state.critic_optimizer.iterations.numpy()) == 2 * n_critic
  assert int(state.generator_optimizer.iterations.numpy()) == 2
  if config.train.lr_decay == 'linear':
    # 2 of num_steps generator steps done: both rates are lr * (1 - 2 / num_steps), the
    # critic's too although it has made n_critic times as many updates.
    expected = config.train.learning_rate * (1 - 2 / config.train.num_steps)
    for optimizer in (state.generator_optimizer, state.critic_optimizer):
      np.testing.assert_allclose(float(optimizer.learning_rate), expected, rtol=1e-6)


@pytest.mark.parametrize('name', ['cifar10', 'celeba64'])
@pytest.mark.parametrize('policy', ['mixed_float16', 'mixed_bfloat16'])
def test_outputs_are_float32_under_mixed_precision(name, policy):
  # Losses and the penalty are formed in float32 (docs/mixed_precision.md).
  config = CONFIGS[name].get_config('tiny')
  with precision.policy_scope(policy):
    generator, critic = models.build_models(config)
  z = np.zeros((2, config.model.noise_dim), np.float32)
  images = generator(z, training=False)
  assert images.dtype == tf.float32 and critic(images).dtype == tf.float32
  assert critic.get_layer('block1_conv1' if name == 'cifar10' else 'conv0').compute_dtype == (
      policy.split('_')[1])
