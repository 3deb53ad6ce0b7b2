"""Checks a config before any work is done; each error names the field, the value and what is
allowed."""

import ml_collections

from wgan_dist import data
from wgan_dist import distribution
from wgan_dist import models
from wgan_dist import optimizers
from wgan_dist import precision


class ConfigError(ValueError):
  """A config value that cannot be used."""


def _require(condition: bool, field: str, value, allowed: str) -> None:
  if not condition:
    raise ConfigError(f'{field}={value!r} is not allowed; allowed: {allowed}')


def _choice(config: ml_collections.ConfigDict, field: str, allowed: tuple) -> None:
  value = config
  for part in field.split('.'):
    value = value[part]
  _require(value in allowed, field, value, f'one of {allowed}')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for the first field that is out of range or unknown."""
  _choice(config, 'data.source', data.SOURCES)
  _choice(config, 'model.architecture', models.ARCHITECTURES)
  if config.model.critic_norm == 'batch':
    raise ConfigError(
        "model.critic_norm='batch' is refused: batch norm couples the examples of a batch, so "
        'the gradient the penalty constrains is no longer per example (the paper drops it from '
        f"the critic); allowed: {models.CRITIC_NORMS} ('layer' is what the paper suggests)")
  _choice(config, 'model.critic_norm', models.CRITIC_NORMS)
  _choice(config, 'mixed_precision', precision.PRECISIONS)
  _choice(config, 'distribution.strategy', distribution.STRATEGIES)
  _choice(config, 'train.lr_decay', optimizers.LR_DECAYS)
  _require(config.distribution.peer_timeout_secs > 0, 'distribution.peer_timeout_secs',
           config.distribution.peer_timeout_secs, '> 0 seconds')

  shapes = models.SUPPORTED_IMAGE_SHAPES[config.model.architecture]
  shape = (config.data.image_size, config.data.channels)
  _require(shape in shapes, 'data.image_size, data.channels', shape,
           f'{shapes} for model.architecture={config.model.architecture!r}')

  train = config.train
  _require(config.model.noise_dim >= 1, 'model.noise_dim', config.model.noise_dim, '>= 1')
  _require(config.model.base_filters >= 1, 'model.base_filters', config.model.base_filters,
           '>= 1')
  _require(train.global_batch_size >= 1, 'train.global_batch_size', train.global_batch_size,
           '>= 1')
  _require(train.n_critic >= 1, 'train.n_critic', train.n_critic, '>= 1')
  _require(train.gp_lambda >= 0, 'train.gp_lambda', train.gp_lambda, '>= 0')
  _require(train.learning_rate > 0, 'train.learning_rate', train.learning_rate, '> 0')
  _require(0 <= train.beta1 < 1, 'train.beta1', train.beta1, '0 <= beta1 < 1')
  _require(0 <= train.beta2 < 1, 'train.beta2', train.beta2, '0 <= beta2 < 1')
  _require(train.num_steps == -1 or train.num_steps >= 1, 'train.num_steps', train.num_steps,
           '-1 (derive from train.num_epochs) or >= 1')
  if train.num_steps == -1:
    _require(train.num_epochs > 0, 'train.num_epochs', train.num_epochs,
             '> 0 when train.num_steps = -1')
  _require(train.steps_per_loop >= 1, 'train.steps_per_loop', train.steps_per_loop, '>= 1')
  _require(config.distribution.cpu_replicas >= 0, 'distribution.cpu_replicas',
           config.distribution.cpu_replicas, '>= 0 (0 = do not split the CPU)')
  for field in ('log_every_steps', 'sample_every_steps', 'checkpoint_every_steps',
                'max_checkpoints_to_keep'):
    _require(config[field] >= 1, field, config[field], '>= 1')
  _require(config.initial_loss_scale >= 1, 'initial_loss_scale', config.initial_loss_scale,
           '>= 1')
  _require(config.data.shuffle_buffer >= 0, 'data.shuffle_buffer', config.data.shuffle_buffer,
           '>= 0 (0 = whole data set)')


def validate_replicas(config: ml_collections.ConfigDict, num_replicas: int) -> None:
  """The global batch must split evenly: every replica gets the same number of examples."""
  batch = config.train.global_batch_size
  if batch < num_replicas or batch % num_replicas:
    raise ConfigError(
        f'train.global_batch_size={batch} does not divide evenly across {num_replicas} '
        f'replicas; allowed: a multiple of {num_replicas} (e.g. '
        f'{max(num_replicas, batch - batch % num_replicas)})')
