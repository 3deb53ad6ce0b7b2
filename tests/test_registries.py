"""Every registry walked: each is found from config/ through its home, every registered name
validates and dispatches to something that works on a tiny case, and a name outside a registry
is refused naming the field, the value and the registry's names. The periodic actions'
registry, which no config field names, is walked too: each action's interval field validates
and refuses a bad value in one line.

A new registry: its field in registry.HOMES (and in the set the first test expects), in
LIST_FIELDS when its value is a comma list of names, and a test of what its entries do on a
tiny case; the name-by-name tests below then cover it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import cifar10
from configs import mnist
from tests import helpers
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
from wgan_dist.training import actions
from wgan_dist.training import controller

# Fields of registry.HOMES whose value is a comma list of the registry's names ('' = none)
# rather than one name: each name alone, all of them together and '' validate, and a list
# with an unknown name is refused.
LIST_FIELDS: tuple[str, ...] = ('augment.policy',)


def _tiny(field: str, value: str):
  """The tiny MNIST config with `field` = `value` (and what that value needs to validate)."""
  config = mnist.get_config('tiny')
  if field == 'model.architecture' and value in architectures.ARCHITECTURES:
    config = helpers.tiny_config_for(value)
  if field == 'model.conditioning':
    config.model.num_classes = 10
  if field == 'augment.policy' and any(
      name in augment.TRANSFORMS and augment.TRANSFORMS.get(name).needs_color
      for name in value.split(',')):
    config = cifar10.get_config('tiny')  # Colour transforms need 3-channel images.
  section, _, leaf = field.rpartition('.')
  (config[section] if section else config)[leaf] = value
  return config


def _valid_values() -> list[tuple[str, str]]:
  """(field, value) for every registered name of every field, and a list field's lists."""
  values = [(field, name) for field in registry.HOMES for name in registry.lookup(field)]
  for field in LIST_FIELDS:
    values += [(field, ','.join(registry.lookup(field).names)), (field, '')]
  return values


def _refusal(field: str, value: str) -> str:
  return f"{field}={value!r} is not allowed; allowed: one of {registry.lookup(field).names}"


def test_every_home_holds_the_registry_of_its_field():
  assert set(registry.HOMES) == {'model.architecture', 'model.conditioning', 'data.source',
                                 'mixed_precision', 'distribution.all_reduce', 'augment.policy'}
  assert set(LIST_FIELDS) <= set(registry.HOMES)
  for field in registry.HOMES:
    table = registry.lookup(field)
    assert isinstance(table, registry.Registry) and table.field == field and len(table) >= 2


def test_the_homes_are_the_tables_the_code_dispatches_with():
  assert registry.lookup('model.architecture') is architectures.ARCHITECTURES
  assert registry.lookup('model.conditioning') is conditioning_lib.CONDITIONINGS
  assert registry.lookup('data.source') is sources.SOURCES
  assert registry.lookup('mixed_precision') is precision.PRECISIONS
  assert registry.lookup('distribution.all_reduce') is devices.ALL_REDUCES


@pytest.mark.parametrize('field, value', _valid_values())
def test_every_registered_name_validates(field, value):
  config_validation.validate(_tiny(field, value))


@pytest.mark.parametrize('field', sorted(registry.HOMES))
def test_a_name_outside_the_registry_is_refused_naming_its_values(field):
  names = registry.lookup(field).names
  # A list field refuses a list holding an unknown name beside a known one.
  value = f'{names[0]},no_such_name' if field in LIST_FIELDS else 'no_such_name'
  with pytest.raises(config_validation.ConfigError) as error:
    config_validation.validate(_tiny(field, value))
  message = str(error.value)
  if field in LIST_FIELDS:  # Naming the field, the unknown name and the allowed ones.
    assert (message.startswith(f'{field}=') and 'no_such_name' in message
            and str(names) in message and '\n' not in message), message
  else:
    assert message == _refusal(field, value)
  with pytest.raises(registry.UnknownName) as error:  # The dispatch refuses it alike.
    registry.lookup(field).get('no_such_name')
  assert str(error.value) == _refusal(field, 'no_such_name')


def _like(value, number: int):
  """`number` in the shape of an action's field: the number for an interval, (number, number)
  for a step range (the config's types are locked)."""
  return number if isinstance(value, int) else type(value)(number for _ in value)


@pytest.mark.parametrize('name', actions.ACTIONS.names)
def test_every_action_validates_and_refuses_a_bad_interval_in_one_line(name):
  cls = actions.ACTIONS.get(name)
  assert issubclass(cls, controller.PeriodicAction) and cls.name == name
  config = mnist.get_config('tiny')
  config_validation.validate(config)
  assert cls.config_error(config) is None  # The tiny config runs it.
  if cls.field is None:  # Always due (e.g. the stop signal): nothing to configure.
    return
  section, _, leaf = cls.field.rpartition('.')
  parent = config[section] if section else config
  parent[leaf] = bad = _like(parent[leaf], -1)
  with pytest.raises(config_validation.ConfigError) as error:
    config_validation.validate(config)
  assert str(error.value).startswith(f'{cls.field}={bad!r} is not allowed; allowed: ')
  assert '\n' not in str(error.value)


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
