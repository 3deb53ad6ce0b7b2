"""Configs: every variant validates; out-of-range values name the field; the schedule helpers."""

import os

import pytest

from configs import default
from configs import mnist
from wgan_dist.training import schedules
from wgan_dist.config import validation as config_validation
from wgan_dist.training import state as train_state


MNIST_VARIANTS = ('', 'quick', 'conditional', 'tiny')


@pytest.mark.parametrize('variant', MNIST_VARIANTS)
def test_shipped_configs_validate(variant):
  config_validation.validate(mnist.get_config(variant))


@pytest.mark.parametrize('variant', ['', 'conditional', 'tiny'])
def test_cifar10_configs_validate(variant):
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  config_validation.validate(cifar10.get_config(variant))


def test_conditional_variants_are_the_unconditional_ones_with_classes():
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  for module, base in ((mnist, 'quick'), (cifar10, '')):
    conditional, unconditional = module.get_config('conditional'), module.get_config(base)
    assert conditional.model.num_classes == 10 and unconditional.model.num_classes == 0
    assert conditional.model.architecture == unconditional.model.architecture
    assert conditional.train.learning_rate == unconditional.train.learning_rate


def test_an_unknown_variant_names_the_allowed_ones():
  with pytest.raises(ValueError, match="'quick', 'conditional', 'tiny'"):
    mnist.get_config('quik')


def test_variants_only_change_fields_the_schema_defines():
  schema = set(default.get_config().to_dict()['train'])
  for variant in MNIST_VARIANTS:
    assert set(mnist.get_config(variant).to_dict()['train']) == schema


@pytest.mark.parametrize('field, value, message', [
    ('train.n_critic', 0, 'train.n_critic=0'),
    ('train.gp_lambda', -1.0, 'train.gp_lambda=-1.0'),
    ('train.learning_rate', 0.0, 'train.learning_rate=0.0'),
    ('data.source', 'imagenet', "data.source='imagenet'"),
    ('model.architecture', 'biggan', "model.architecture='biggan'"),
    ('distribution.strategy', 'tpu', "distribution.strategy='tpu'"),
    ('mixed_precision', 'float8', "mixed_precision='float8'"),
    ('data.image_size', 64, 'data.image_size, data.channels=(64, 1)'),
])
def test_bad_values_name_the_field(field, value, message):
  config = mnist.get_config('tiny')
  node = config
  *parents, leaf = field.split('.')
  for part in parents:
    node = node[part]
  node[leaf] = value
  with pytest.raises(config_validation.ConfigError) as error:
    config_validation.validate(config)
  assert message in str(error.value)


@pytest.mark.parametrize('batch, replicas, ok', [(8, 2, True), (8, 3, False), (1, 2, False),
                                                 (3, 3, True), (4, 3, False)])
def test_batch_must_divide_across_replicas(batch, replicas, ok):
  config = mnist.get_config('tiny')
  config.train.global_batch_size = batch
  if ok:
    config_validation.validate_replicas(config, replicas)
  else:
    with pytest.raises(config_validation.ConfigError, match=f'global_batch_size={batch}'):
      config_validation.validate_replicas(config, replicas)


def test_num_steps_from_epochs():
  config = mnist.get_config()
  config.train.num_steps = -1
  config.train.num_epochs = 2
  # 2 passes of 5,000 images at 64 x 5 real images per generator step.
  assert train_state.resolve_num_steps(config, 5000) == 32


def test_schedule_helpers():
  assert schedules.Every(100, 1000).next_due(0) - 0 == 100
  assert schedules.Every(100, 1000).next_due(130) - 130 == 70
  assert schedules.Every(100, 1000).is_due(200) and schedules.Every(300, 1000).is_due(1000)
  assert not schedules.Every(100, 1000).is_due(150)


def test_default_workdir_is_runs_and_the_config_stem():
  from wgan_dist import main  # pylint: disable=import-outside-toplevel
  assert main.default_workdir('configs/mnist.py:quick') == os.path.join('runs', 'mnist')
  assert main.default_workdir('/abs/path/cifar10.py') == os.path.join('runs', 'cifar10')
