"""Checks a config before any work is done; each error names the field, the value and what is
allowed. The allowed values of a choice field come from its registry when it has one (the
extension points: architecture, conditioning, data source, precision, all-reduce; found through
config/registry.py), else from config/schema.py; the modules that act on a config trust it once
it has passed here.

Every field of configs/default.py has a rule here, types included: ml_collections refuses most
type changes when a value is set, but lets a bool into an int field, an int into a float field,
None into any field, and a tuple of any length into `profile_steps`.
"""

import math
import numbers
import os
from typing import Callable

import ml_collections

from wgan_dist.config import registry
from wgan_dist.config import schema

_INT64 = (-2**63, 2**63 - 1)


class ConfigError(ValueError):
  """A config value that cannot be used."""


def _require(condition: bool, field: str, value, allowed: str) -> None:
  if not condition:
    raise ConfigError(f'{field}={value!r} is not allowed; allowed: {allowed}')


def _value(config: ml_collections.ConfigDict, field: str):
  value = config
  for part in field.split('.'):
    value = value[part]
  return value


def _is_integer(value) -> bool:
  # bool is an int subclass, and ml_collections lets True into an int field.
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
  """A finite real number (an int counts); NaN and inf would pass every range check below."""
  return (isinstance(value, numbers.Real) and not isinstance(value, bool) and
          math.isfinite(value))


def _choice(config: ml_collections.ConfigDict, field: str, allowed: tuple) -> None:
  value = _value(config, field)
  _require(isinstance(value, str) and value in allowed, field, value, f'one of {allowed}')


def _registered(config: ml_collections.ConfigDict, field: str):
  """The entry of the field's registry that the config names (ConfigError if none)."""
  names = registry.lookup(field)
  _choice(config, field, names.names)
  return names.get(_value(config, field))


def _integer(config: ml_collections.ConfigDict, field: str, minimum: int,
             allowed: str = '') -> None:
  value = _value(config, field)
  _require(_is_integer(value) and value >= minimum, field, value,
           allowed or f'an integer >= {minimum}')


def _number(config: ml_collections.ConfigDict, field: str, in_range: Callable[[float], bool],
            allowed: str) -> None:
  value = _value(config, field)
  _require(_is_number(value) and in_range(value), field, value, f'a finite number {allowed}')


def _flag(config: ml_collections.ConfigDict, field: str) -> None:
  value = _value(config, field)
  _require(isinstance(value, bool), field, value, 'True or False')


def _validate_data(config: ml_collections.ConfigDict) -> None:
  _registered(config, 'data.source')
  path = config.data.path
  _require(isinstance(path, str), 'data.path', path,
           "a string: a directory ('folder', 'prepared'), an .npz file ('npz') or a TFDS name "
           "('tfds')")
  _integer(config, 'data.image_size', 1)
  _integer(config, 'data.channels', 1)
  _flag(config, 'data.allow_download')
  _flag(config, 'data.center_crop')
  _choice(config, 'data.on_bad_image', schema.BAD_IMAGE_POLICIES)
  split = config.data.split
  _require(isinstance(split, str) and split.strip() != '', 'data.split', split,
           "a TFDS split, e.g. 'train' or 'train[:90%]' (data.source='tfds')")
  _require(isinstance(config.data.tfds_data_dir, str), 'data.tfds_data_dir',
           config.data.tfds_data_dir, "a string: a directory, or '' for TFDS's default")
  _flag(config, 'data.allow_changed_on_resume')
  # Whether N fits the data is known once the source is loaded (train.training_data).
  _integer(config, 'data.limit', 0, 'an integer >= 0 (0 = all images)')


def _validate_model(config: ml_collections.ConfigDict) -> None:
  architecture = _registered(config, 'model.architecture')
  if config.model.critic_norm == 'batch':
    raise ConfigError(
        "model.critic_norm='batch' is refused: batch norm couples the examples of a batch, so "
        'the gradient the penalty constrains is no longer per example (the paper drops it from '
        f"the critic); allowed: {schema.CRITIC_NORMS} ('layer' is what the paper suggests)")
  _choice(config, 'model.critic_norm', schema.CRITIC_NORMS)
  _integer(config, 'model.noise_dim', 1)
  _integer(config, 'model.base_filters', 1)
  _integer(config, 'model.num_classes', 0, 'an integer >= 0 (0 = unconditional)')
  _require(config.model.num_classes != 1, 'model.num_classes', 1,
           '0 (unconditional) or >= 2 classes')
  _registered(config, 'model.conditioning')
  _choice(config, 'model.conv_impl', schema.CONV_IMPLS)
  # After the data fields' own checks, so the pair holds two integers.
  shapes = architecture.image_shapes
  shape = (config.data.image_size, config.data.channels)
  _require(shape in shapes, 'data.image_size, data.channels', shape,
           f'{shapes} for model.architecture={config.model.architecture!r}')


def _validate_train(config: ml_collections.ConfigDict) -> None:
  _integer(config, 'train.global_batch_size', 1)
  _integer(config, 'train.n_critic', 1)
  _number(config, 'train.gp_lambda', lambda v: v >= 0, '>= 0')
  _number(config, 'train.learning_rate', lambda v: v > 0, '> 0')
  _number(config, 'train.generator_learning_rate', lambda v: v >= 0,
          '>= 0 (0 = train.learning_rate)')
  _number(config, 'train.beta1', lambda v: 0 <= v < 1, 'in [0, 1)')
  _number(config, 'train.beta2', lambda v: 0 <= v < 1, 'in [0, 1)')
  _number(config, 'train.adam_epsilon', lambda v: v > 0, '> 0')
  _choice(config, 'train.lr_decay', schema.LR_DECAYS)
  _number(config, 'train.lr_decay_start', lambda v: 0 <= v < 1, 'in [0, 1)')
  _require(config.train.lr_decay_start == 0 or config.train.lr_decay == 'linear',
           'train.lr_decay_start', config.train.lr_decay_start,
           "0 unless train.lr_decay='linear' (a start of the decay needs a decay)")
  train = config.train
  _require(_is_integer(train.num_steps) and (train.num_steps == -1 or train.num_steps >= 1),
           'train.num_steps', train.num_steps,
           'an integer: -1 (derive from train.num_epochs) or >= 1')
  _number(config, 'train.num_epochs',
          lambda v: v > 0 or train.num_steps != -1, '> 0 (when train.num_steps = -1)')
  _integer(config, 'train.steps_per_loop', 1)
  _flag(config, 'train.jit_compile')
  # 1 would freeze the average at the initial weights forever.
  _number(config, 'train.ema_decay', lambda v: 0 <= v < 1, 'in [0, 1) (0 = off)')
  _flag(config, 'train.ema_warmup')
  _number(config, 'train.acgan_critic_weight', lambda v: v >= 0, '>= 0')
  _number(config, 'train.acgan_generator_weight', lambda v: v >= 0, '>= 0')


def _validate_run(config: ml_collections.ConfigDict) -> None:
  """Top-level fields: seed, precision, distribution, intervals, evaluation."""
  _integer(config, 'seed', _INT64[0], 'an integer (int64)')
  _require(config.seed <= _INT64[1], 'seed', config.seed, 'an integer (int64)')
  _registered(config, 'mixed_precision')
  _number(config, 'initial_loss_scale', lambda v: v >= 1, '>= 1')
  _choice(config, 'distribution.strategy', schema.STRATEGIES)
  _integer(config, 'distribution.cpu_replicas', 0,
           'an integer >= 0 (0 = do not split the CPU)')
  _number(config, 'distribution.peer_timeout_secs', lambda v: v > 0, '> 0 seconds')
  # Which values fit the strategy and devices is checked when the strategy is made (devices.py).
  _registered(config, 'distribution.all_reduce')
  _flag(config, 'distribution.gpu_memory_growth')
  _number(config, 'distribution.step_timeout_secs', lambda v: v > 0, '> 0 seconds')
  _number(config, 'distribution.stop_grace_secs', lambda v: v > 0, '> 0 seconds')
  _flag(config, 'allow_tf32')
  # The periodic actions' intervals (training/actions.py); 0 turns an action off.
  for field in ('log_every_steps', 'sample_every_steps', 'checkpoint_every_steps'):
    _integer(config, field, 0, 'an integer >= 0 (0 = off)')
  _integer(config, 'max_checkpoints_to_keep', 1)
  steps = config.profile_steps
  _require(isinstance(steps, (tuple, list)) and len(steps) == 2 and
           all(_is_integer(step) for step in steps) and 0 <= steps[0] <= steps[1],
           'profile_steps', steps,
           'a pair (first, last) of integers with 0 <= first <= last; (0, 0) = off')
  _integer(config, 'eval_every_steps', 0, 'an integer >= 0 (0 = off)')
  # The Frechet distance needs a covariance, which needs at least two samples.
  _integer(config, 'num_eval_samples', 2)
  _choice(config, 'eval_reference', schema.EVAL_REFERENCES)
  _integer(config, 'eval_seeds', 1)
  weights = config.eval_inception_weights
  _require(isinstance(weights, str) and (not weights or os.path.isfile(weights)),
           'eval_inception_weights', weights,
           "'' (no Inception evaluation) or the path of an existing InceptionV3 weights file")


def _validate_augment(config: ml_collections.ConfigDict) -> None:
  policy = config.augment.policy
  transforms = registry.lookup('augment.policy')
  allowed = f"'' (off) or a comma list of {transforms.names}"
  _require(isinstance(policy, str), 'augment.policy', policy, allowed)
  names = [name.strip() for name in policy.split(',')] if policy.strip() else []
  for name in names:
    _require(name in transforms, 'augment.policy', policy,
             f'{allowed}; {name!r} is not one of them')
  _require(len(set(names)) == len(names), 'augment.policy', policy,
           f'{allowed}, each name once')
  needs_color = [name for name in names if transforms.get(name).needs_color]
  _require(not needs_color or config.data.channels == 3, 'augment.policy', policy,
           f'transforms without {needs_color} for data.channels={config.data.channels} '
           '(colour transforms need 3-channel images)')
  _number(config, 'augment.p', lambda v: 0 <= v <= 1, 'in [0, 1]')
  _number(config, 'augment.target', lambda v: v >= 0, '>= 0 (0 = p fixed)')
  _require(config.augment.target == 0 or names, 'augment.target', config.augment.target,
           "0 when augment.policy is '' (an adaptive p needs transforms to apply)")
  _integer(config, 'augment.interval', 1, 'an integer >= 1 (generator steps)')
  _number(config, 'augment.adjust_kimg', lambda v: v > 0, '> 0 (thousands of images)')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for the first field that is of the wrong type, out of range or unknown."""
  _validate_data(config)
  _validate_model(config)
  _validate_train(config)
  _validate_augment(config)
  _validate_run(config)


def validate_replicas(config: ml_collections.ConfigDict, num_replicas: int) -> None:
  """The global batch must split evenly: every replica gets the same number of examples."""
  batch = config.train.global_batch_size
  if batch < num_replicas or batch % num_replicas:
    raise ConfigError(
        f'train.global_batch_size={batch} does not divide evenly across {num_replicas} '
        f'replicas; allowed: a multiple of {num_replicas} (e.g. '
        f'{max(num_replicas, batch - batch % num_replicas)})')
