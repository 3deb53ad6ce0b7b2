"""Config validation: every field's type and range, each error naming the field, the value and
what is allowed; boundary values that are allowed; a wrongly typed override on the command line."""

import math
import os
import subprocess
import sys

import pytest

from configs import default
from configs import mnist
from tests.conftest import REPO_ROOT
from wgan_dist.config import validation as config_validation


def _get(config, field: str):
  node = config
  for part in field.split('.'):
    node = node[part]
  return node


def _set(config, field: str, value) -> None:
  node = config
  *parents, leaf = field.split('.')
  for part in parents:
    node = node[part]
  node[leaf] = value


def _schema_fields(config, prefix: str = '') -> list[str]:
  fields = []
  for key, value in config.items():
    if hasattr(value, 'items'):
      fields += _schema_fields(value, f'{prefix}{key}.')
    else:
      fields.append(f'{prefix}{key}')
  return fields


def _error(config) -> str:
  with pytest.raises(config_validation.ConfigError) as error:
    config_validation.validate(config)
  return str(error.value)


# (field, bad value, a fragment of what the message says is allowed).
BAD_VALUES = [
    ('seed', True, 'an integer'),
    ('data.source', 'imagenet', "'folder'"),
    ('data.path', None, 'a string'),
    ('data.image_size', 0, 'an integer >= 1'),
    ('data.image_size', True, 'an integer >= 1'),
    ('data.channels', 0, 'an integer >= 1'),
    ('data.allow_download', None, 'True or False'),
    ('data.center_crop', None, 'True or False'),
    ('data.on_bad_image', 'ignore', "('fail', 'skip')"),
    ('data.split', ' ', "a TFDS split, e.g. 'train'"),
    ('model.architecture', 'biggan', "'dcgan'"),
    ('model.critic_norm', 'group', "('layer', 'none')"),
    ('model.noise_dim', 0, 'an integer >= 1'),
    ('model.base_filters', 0, 'an integer >= 1'),
    ('model.num_classes', -1, 'an integer >= 0 (0 = unconditional)'),
    ('model.num_classes', 1, '0 (unconditional) or >= 2 classes'),
    ('model.conditioning', 'concat', "('acgan', 'projection')"),
    ('train.acgan_critic_weight', -1.0, 'a finite number >= 0'),
    ('train.acgan_generator_weight', math.nan, 'a finite number >= 0'),
    ('train.global_batch_size', 0, 'an integer >= 1'),
    ('train.n_critic', 0, 'an integer >= 1'),
    ('train.n_critic', True, 'an integer >= 1'),
    ('train.gp_lambda', -1.0, 'a finite number >= 0'),
    ('train.gp_lambda', math.inf, 'a finite number >= 0'),
    ('train.learning_rate', 0.0, 'a finite number > 0'),
    ('train.learning_rate', -1e-4, 'a finite number > 0'),
    ('train.learning_rate', math.nan, 'a finite number > 0'),
    ('train.beta1', 1.0, 'in [0, 1)'),
    ('train.beta1', -0.1, 'in [0, 1)'),
    ('train.beta2', 1.0, 'in [0, 1)'),
    ('train.adam_epsilon', 0.0, 'a finite number > 0'),
    ('train.lr_decay_start', 1.0, 'in [0, 1)'),
    ('train.lr_decay', 'cosine', "('none', 'linear')"),
    ('train.num_steps', 0, '-1 (derive from train.num_epochs) or >= 1'),
    ('train.num_steps', -2, '-1 (derive from train.num_epochs) or >= 1'),
    ('train.steps_per_loop', 0, 'an integer >= 1'),
    ('train.jit_compile', None, 'True or False'),
    ('train.ema_decay', 1.0, 'in [0, 1) (0 = off)'),
    ('train.ema_decay', -0.5, 'in [0, 1) (0 = off)'),
    ('mixed_precision', 'float8', "'mixed_bfloat16'"),
    ('initial_loss_scale', 0.5, '>= 1'),
    ('distribution.strategy', 'tpu', "'multi_worker'"),
    ('distribution.cpu_replicas', -1, '>= 0 (0 = do not split the CPU)'),
    ('distribution.peer_timeout_secs', 0, '> 0 seconds'),
    ('distribution.peer_timeout_secs', -5, '> 0 seconds'),
    ('distribution.all_reduce', 'mpi', "'hierarchical_copy'"),
    ('distribution.step_timeout_secs', 0.0, '> 0 seconds'),
    ('distribution.step_timeout_secs', math.inf, '> 0 seconds'),
    ('distribution.stop_grace_secs', -1.0, '> 0 seconds'),
    ('model.conv_impl', 'winograd', "('auto', 'patch_matmul', 'conv')"),
    ('log_every_steps', -1, 'an integer >= 0 (0 = off)'),
    ('sample_every_steps', -2, 'an integer >= 0 (0 = off)'),
    ('checkpoint_every_steps', -3, 'an integer >= 0 (0 = off)'),
    ('max_checkpoints_to_keep', 0, 'an integer >= 1'),
    ('profile_steps', (5, 2), '0 <= first <= last'),
    ('profile_steps', (-1, 3), '0 <= first <= last'),
    ('profile_steps', (5,), 'a pair (first, last)'),
    ('profile_steps', (1, 2, 3), 'a pair (first, last)'),
    ('profile_steps', (True, 3), 'of integers'),
    ('eval_every_steps', -1, 'an integer >= 0 (0 = off)'),
    ('num_eval_samples', 1, 'an integer >= 2'),
    ('eval_seeds', 0, 'an integer >= 1'),
]


@pytest.mark.parametrize('field, value, allowed', BAD_VALUES)
def test_bad_value_names_the_field_the_value_and_what_is_allowed(field, value, allowed):
  config = mnist.get_config('tiny')
  _set(config, field, value)
  message = _error(config)
  # The value as the config holds it (ml_collections turns 0 into 0.0 in a float field).
  assert message.startswith(f'{field}={_get(config, field)!r} is not allowed; allowed: '), message
  assert allowed in message


def test_image_shape_must_fit_the_architecture():
  config = mnist.get_config('tiny')
  config.data.channels = 3
  message = _error(config)
  assert message.startswith('data.image_size, data.channels=(28, 3) is not allowed'), message
  assert "((28, 1),) for model.architecture='seed'" in message


def test_batch_norm_critic_is_refused_with_the_reason():
  config = mnist.get_config('tiny')
  config.model.critic_norm = 'batch'
  assert 'per example' in _error(config)


def test_num_epochs_matters_only_when_it_sets_the_length():
  config = mnist.get_config('tiny')  # num_steps = 4
  config.train.num_epochs = 0
  config_validation.validate(config)
  config.train.num_steps = -1
  assert _error(config).startswith('train.num_epochs=0 is not allowed')


@pytest.mark.parametrize('field', _schema_fields(default.get_config()))
def test_every_schema_field_has_a_rule(field):
  """None fits any ml_collections field, so it reaches validate() for every one of them."""
  config = mnist.get_config('tiny')
  _set(config, field, None)
  assert _error(config).startswith(f'{field}=None is not allowed; allowed: ')


@pytest.mark.parametrize('field, value', [
    ('train.gp_lambda', 0.0), ('train.gp_lambda', 10), ('train.beta1', 0.0),
    ('train.beta2', 0.999), ('train.adam_epsilon', 1e-3), ('train.lr_decay_start', 0.0),
    ('train.ema_decay', 0.0), ('train.ema_decay', 0.9999),
    ('train.num_steps', -1), ('distribution.cpu_replicas', 0),
    ('eval_every_steps', 0), ('log_every_steps', 0), ('sample_every_steps', 0),
    ('checkpoint_every_steps', 0), ('num_eval_samples', 2), ('profile_steps', (0, 0)),
    ('profile_steps', (3, 3)), ('profile_steps', [2, 5]), ('initial_loss_scale', 1.0),
    ('distribution.peer_timeout_secs', 1), ('data.on_bad_image', 'skip'), ('seed', -3),
    ('seed', 2**63 - 1), ('model.num_classes', 2), ('data.split', 'train[:90%]'),
    ('data.tfds_data_dir', '/data/tfds'), ('data.allow_changed_on_resume', True), ('model.conditioning', 'projection'),
    ('train.acgan_generator_weight', 0.0), ('distribution.all_reduce', 'ring'),
    ('model.conv_impl', 'conv'), ('distribution.stop_grace_secs', 0.5), ('allow_tf32', False),
])
def test_allowed_boundary_values_validate(field, value):
  config = mnist.get_config('tiny')
  _set(config, field, value)
  config_validation.validate(config)


def test_a_late_decay_start_needs_the_linear_decay():
  config = mnist.get_config('tiny')
  config.train.lr_decay_start = 0.75
  assert _error(config) == ("train.lr_decay_start=0.75 is not allowed; allowed: 0 unless "
                            "train.lr_decay='linear' (a start of the decay needs a decay)")
  config.train.lr_decay = 'linear'
  config_validation.validate(config)
  config_validation.validate(mnist.get_config('quick'))  # The quick recipe decays late.


def test_seed_beyond_int64_is_refused():
  config = mnist.get_config('tiny')
  config.seed = 2**63
  assert _error(config).startswith(f'seed={2**63} is not allowed; allowed: an integer (int64)')


def _run_main(*flags: str) -> subprocess.CompletedProcess:
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'CUDA_VISIBLE_DEVICES': ''}
  return subprocess.run(
      [sys.executable, '-m', 'wgan_dist.main', '--config=configs/mnist.py:tiny',
       '--config.data.allow_download=False', *flags],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize('override, message', [
    ('--config.train.ema_decay=1', 'train.ema_decay=1.0 is not allowed'),
    ('--config.profile_steps=5', 'profile_steps=(5,) is not allowed'),
    ('--config.data.on_bad_image=2', "data.on_bad_image='2' is not allowed"),
])
def test_command_line_values_the_flag_parser_accepts_fail_in_validation(tmp_path, override,
                                                                         message):
  workdir = tmp_path / 'run'
  result = _run_main(f'--workdir={workdir}', override)
  assert result.returncode == 1, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1].startswith(f'error: {message}')
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()


def test_wrongly_typed_override_fails_at_parse_time_naming_it(tmp_path):
  """ml_collections parses --config.train.n_critic=2.5 with int() and absl refuses it."""
  workdir = tmp_path / 'run'
  result = _run_main(f'--workdir={workdir}', '--config.train.n_critic=2.5')
  assert result.returncode != 0
  assert 'train.n_critic=2.5' in result.stderr
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()


def test_wrongly_typed_override_gets_one_line_saying_what_is_allowed(tmp_path):
  result = _run_main(f'--workdir={tmp_path / "run"}', '--config.train.n_critic=2.5')
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith('error: train.n_critic=2.5 is not allowed; allowed: an integer')
