"""Architectures: the seed's exact parameter counts and shapes, and per-example critic norms."""

import numpy as np
import pytest

from configs import mnist
from wgan_dist.config import validation as config_validation
from wgan_dist.models import layers as model_layers
from wgan_dist.models import architectures as models

# The seed models' counts (docs/architectures.md); the blog's critic had batch norm (4 weights per channel), ours has per-channel
# layer norm (2) or none (0) on the 256-, 512- and 1024-channel layers.
SEED_GENERATOR_PARAMS = 2_278_401
SEED_CRITIC_PARAMS_WITH_BATCH_NORM = 10_807_302
NORMED_CHANNELS = 256 + 512 + 1024


@pytest.mark.parametrize('norm, weights_per_channel', [('layer', 2), ('none', 0)])
def test_seed_models_have_the_spec_parameter_counts(norm, weights_per_channel):
  config = mnist.get_config()
  config.model.critic_norm = norm
  generator, critic = models.build_models(config)
  assert generator.count_params() == SEED_GENERATOR_PARAMS
  assert critic.count_params() == (SEED_CRITIC_PARAMS_WITH_BATCH_NORM
                                   - (4 - weights_per_channel) * NORMED_CHANNELS)
  assert generator.output_shape == (None, 28, 28, 1)
  # The seed critic's shapes: 28 -> 13 -> 6 -> 3 -> 2 -> 2x2x1 -> 4 -> 1.
  conv_shapes = [layer.output.shape[1:] for layer in critic.layers if 'conv' in layer.name
                 and 'norm' not in layer.name]
  assert conv_shapes == [(13, 13, 128), (6, 6, 256), (3, 3, 512), (2, 2, 1024), (2, 2, 1)]
  assert critic.output_shape == (None, 1)


def test_dcgan_models_shapes():
  config = mnist.get_config('quick')
  generator, critic = models.build_models(config)
  z = np.random.default_rng(0).standard_normal((3, config.model.noise_dim)).astype(np.float32)
  images = generator(z).numpy()
  assert images.shape == (3, 28, 28, 1)
  assert images.min() >= -1 and images.max() <= 1
  assert critic(images).shape == (3, 1)


def test_layer_norm_is_per_example():
  layer = model_layers.PerExampleLayerNorm()
  rng = np.random.default_rng(0)
  batch = rng.standard_normal((4, 3, 3, 5)).astype(np.float32) * 3 + 2
  out = layer(batch).numpy()
  np.testing.assert_allclose(out.reshape(4, -1).mean(axis=1), 0, atol=1e-5)
  np.testing.assert_allclose(out.reshape(4, -1).std(axis=1), 1, atol=1e-3)
  np.testing.assert_allclose(layer(batch[1:2]).numpy(), out[1:2], rtol=1e-5, atol=1e-6)


def test_batch_norm_in_the_critic_is_refused_with_the_reason():
  config = mnist.get_config('tiny')
  config.model.critic_norm = 'batch'
  with pytest.raises(config_validation.ConfigError, match=r"model.critic_norm='batch'.*per example"):
    config_validation.validate(config)
