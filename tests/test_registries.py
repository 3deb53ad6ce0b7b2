"""Every registry walked: each is found from config/ through its home, every registered name
validates and dispatches to something that works on a tiny case, and a name outside a registry
is refused naming the field, the value and the registry's names."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import celeba64
from configs import cifar10
from configs import mnist
from wgan_dist.algorithm import augment
from wgan_dist.algorithm import conditioning as conditioning_lib
from wgan_dist.algorithm import losses
from wgan_dist.algorithm import precision
from wgan_dist.algorithm import steps
from wgan_dist.config import registry
from wgan_dist.config import validation as config_validation
from wgan_dist.data import images as image_files
from wgan_dist.data import sources
from wgan_dist.dist import devices
from wgan_dist.models import architectures

# model.architecture -> the config module whose 'tiny' variant fits its image shape.
TINY_CONFIGS = {'seed': mnist, 'dcgan': mnist, 'resnet': cifar10, 'dcgan64': celeba64}


def _tiny(field: str, name: str):
  """The tiny MNIST config with `field` = `name` (and what that name needs to validate)."""
  config = mnist.get_config('tiny')
  if field == 'model.architecture':
    config = TINY_CONFIGS.get(name, mnist).get_config('tiny')
  if field == 'model.conditioning':
    config.model.num_classes = 10
  if (field == 'augment.policy' and name in augment.TRANSFORMS and
      augment.TRANSFORMS.get(name).needs_color):
    config = cifar10.get_config('tiny')  # Colour transforms need 3-channel images.
  section, _, leaf = field.rpartition('.')
  (config[section] if section else config)[leaf] = name
  return config


def test_every_home_holds_the_registry_of_its_field():
  assert set(registry.HOMES) == {'model.architecture', 'model.conditioning', 'data.source',
                                 'mixed_precision', 'distribution.all_reduce', 'augment.policy'}
  for field in registry.HOMES:
    table = registry.lookup(field)
    assert isinstance(table, registry.Registry) and table.field == field and len(table) >= 2


def test_the_homes_are_the_tables_the_code_dispatches_with():
  assert registry.lookup('model.architecture') is architectures.ARCHITECTURES
  assert registry.lookup('model.conditioning') is conditioning_lib.CONDITIONINGS
  assert registry.lookup('data.source') is sources.SOURCES
  assert registry.lookup('mixed_precision') is precision.PRECISIONS
  assert registry.lookup('distribution.all_reduce') is devices.ALL_REDUCES


@pytest.mark.parametrize('field, name', [(field, name) for field in registry.HOMES
                                         for name in registry.lookup(field)])
def test_every_registered_name_validates(field, name):
  config_validation.validate(_tiny(field, name))


@pytest.mark.parametrize('field', sorted(registry.HOMES))
def test_a_name_outside_the_registry_is_refused_naming_its_values(field):
  names = registry.lookup(field).names
  with pytest.raises(config_validation.ConfigError) as error:
    config_validation.validate(_tiny(field, 'no_such_name'))
  expected = f"{field}='no_such_name' is not allowed; allowed: one of {names}"
  if field == 'augment.policy':  # A comma list of the names: the error names the bad one.
    assert str(error.value) == (f"{field}='no_such_name' is not allowed; allowed: '' (off) or "
                                f"a comma list of {names}; 'no_such_name' is not one of them")
    expected = f"{field}='no_such_name' is not allowed; allowed: one of {names}"
  else:
    assert str(error.value) == expected
  with pytest.raises(registry.UnknownName) as error:  # The dispatch refuses it alike.
    registry.lookup(field).get('no_such_name')
  assert str(error.value) == expected


@pytest.mark.parametrize('name', architectures.ARCHITECTURES.names)
def test_every_architecture_builds_and_scores_its_images(name):
  config = _tiny('model.architecture', name)
  generator, critic = architectures.build_models(config)
  size, channels = config.data.image_size, config.data.channels
  assert (size, channels) in architectures.ARCHITECTURES.get(name).image_shapes
  fake = generator(tf.zeros([2, config.model.noise_dim]), training=False)
  assert fake.shape == (2, size, size, channels)
  scores, aux = conditioning_lib.NONE.outputs(critic, fake)
  assert scores.shape == (2,) and aux is None


def _trunk_critic(kind: conditioning_lib.Conditioning, num_classes: int) -> keras.Model:
  image = keras.Input((4, 4, 1))
  features = keras.layers.Dense(3)(keras.layers.Flatten()(image))
  return kind.critic_head(image, features, num_classes,
                          lambda units, name: keras.layers.Dense(units, name=name), 'critic')


@pytest.mark.parametrize('name', conditioning_lib.CONDITIONINGS.names)
def test_every_conditioning_builds_its_head_and_its_terms_are_its_metrics(name):
  config = _tiny('model.conditioning', name)
  kind = conditioning_lib.from_config(config)
  assert kind is conditioning_lib.CONDITIONINGS.get(name) and kind.conditional
  critic = _trunk_critic(kind, num_classes=3)
  rng = np.random.default_rng(0)
  real, fake = (tf.constant(rng.uniform(-1, 1, (5, 4, 4, 1)), tf.float32) for _ in range(2))
  labels = tf.constant([0, 1, 2, 1, 0], tf.int32)
  critic_terms = losses.critic_losses(critic, real, fake, tf.fill([5, 1, 1, 1], 0.5), 10.0,
                                      labels=labels, conditioning=kind)
  generator_terms = losses.generator_losses(critic, fake, labels, conditioning=kind)
  for terms in (critic_terms, generator_terms):
    assert all(value.shape == (5,) and np.all(np.isfinite(value)) for value in terms.values())
  # What the steps report is what the losses return, plus the gradient norms.
  assert set(critic_terms) | {'critic_grad_norm'} == set(steps.critic_metric_names(config))
  assert (set(generator_terms) | {'generator_grad_norm'} ==
          set(steps.generator_metric_names(config)))


def test_unconditional_configs_read_the_critic_without_labels():
  config = mnist.get_config('tiny')
  assert conditioning_lib.from_config(config) is conditioning_lib.NONE
  assert steps.metric_names(config) == steps.METRICS


def test_every_offline_source_loads(tmp_path):
  # The downloading sources need the network or a cache; they are checked by name above.
  np.savez(tmp_path / 'images.npz', x=np.zeros((3, 28, 28, 1), np.uint8))
  folder = tmp_path / 'folder'
  folder.mkdir()
  for i in range(2):
    image_files.write_png(str(folder / f"{i}.png"), np.full((28, 28, 1), i * 9, np.uint8))
  paths = {'embedded_mnist': '', 'npz': str(tmp_path / 'images.npz'), 'folder': str(folder)}
  for name, path in paths.items():
    config = _tiny('data.source', name)
    config.data.path = path
    source = sources.load_source(config)
    assert source.name == name and source.size in (5000, 3, 2), (name, source.size)


@pytest.mark.parametrize('name', precision.PRECISIONS.names)
def test_every_precision_is_a_keras_policy_with_its_scaling(name):
  with precision.policy_scope(name):
    layer = keras.layers.Dense(1)
  assert layer.dtype_policy.name == name
  entry = precision.PRECISIONS.get(name)
  assert entry.loss_scaling == (name == 'mixed_float16')
  assert entry.inner_gradient_scale >= 1.0
  optimizer = precision.wrap_optimizer(keras.optimizers.Adam(), name, 2.0**15)
  assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) == entry.loss_scaling


@pytest.mark.parametrize('name', devices.ALL_REDUCES.names)
def test_every_all_reduce_resolves_for_the_strategies_that_take_it(name):
  entry = devices.ALL_REDUCES.get(name)
  for kind, implementation in (('mirrored', entry.mirrored),
                               ('multi_worker', entry.multi_worker)):
    if name == 'auto':  # Resolved to a concrete entry of the registry for that strategy.
      resolved = devices.resolve_all_reduce(name, kind, num_gpus=1, has_nccl=True)
      assert resolved in devices.ALL_REDUCES and resolved != 'auto'
    elif implementation is None:  # Refused for that strategy, naming what it takes.
      with pytest.raises(config_validation.ConfigError, match='is not allowed; allowed'):
        devices.resolve_all_reduce(name, kind, num_gpus=1, has_nccl=True)
    else:
      assert devices.resolve_all_reduce(name, kind, num_gpus=1, has_nccl=True) == name
      if kind == 'mirrored':
        assert isinstance(implementation(), tf.distribute.CrossDeviceOps)
      else:
        assert isinstance(implementation,
                          tf.distribute.experimental.CommunicationImplementation)
