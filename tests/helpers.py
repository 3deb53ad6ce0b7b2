"""Shared test helpers: a few training steps built exactly as train_and_evaluate builds them, and
TensorBoard events read back with TensorBoard's own reader, a fake of the coordination
service's key-value store, the one-line error a data source refuses a config with, a
command-line tool run as a user runs it, and the tiny config of any registered architecture."""

import importlib
import json
import os
import subprocess
import sys

import ml_collections
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from wgan_dist import train
from wgan_dist.data import sources
from wgan_dist.dist import distribution
from wgan_dist.models import architectures
from wgan_dist.training import state as train_state
from wgan_dist.training import trainer as trainer_lib


# Adam's epsilon for runs compared across replica counts: large enough that gradient elements
# within rounding of 0 no longer move by whole learning rates (tests/test_replica_invariance.py
# has the measurements), small beside every real gradient.
COMPARISON_ADAM_EPSILON = 1e-3


def train_steps(config, cpu_replicas: int, num_steps: int):
  """Runs `num_steps` one-step calls on 1 (one_device) or N mirrored logical CPU replicas.

  Returns (per-step metric dicts, {variable path: value}, TrainState); the state's
  `initial_weights` attribute holds the weights before training.
  """
  config = config.copy_and_resolve_references()
  config.distribution.cpu_replicas = cpu_replicas
  config.distribution.strategy = 'mirrored' if cpu_replicas > 1 else 'one_device'
  strategy = distribution.create_strategy(config)
  assert strategy.num_replicas_in_sync == cpu_replicas
  state = train_state.create_train_state(config, strategy)
  initial_weights = _weights(state)
  # The same trainer (in-graph loops included) and data train_and_evaluate uses (without the
  # evaluation reference's images when config.eval_reference holds them out).
  trainer = trainer_lib.Trainer(strategy=strategy, config=config, state=state,
                                source=train.training_data(config)[0])
  history = []
  for _ in range(num_steps):
    metrics, status = trainer.train(1)
    assert status.steps_run == 1 and status.nonfinite_step is None
    history.append(metrics)
  object.__setattr__(state, 'initial_weights', initial_weights)
  return history, _weights(state), state


def _weights(state) -> dict:
  return {f'{model.name}/{variable.path}': variable.numpy()
          for model in (state.generator, state.critic) for variable in model.weights}


def pre_norm_names(state) -> set[str]:
  """Generator biases that feed batch norm, and that norm's moving mean.

  Such a bias has a gradient that is exactly zero in exact arithmetic (the norm subtracts it
  again), so its float gradient is rounding noise that Adam rescales to full steps of size lr;
  the moving mean tracks it. Comparisons bound these by Adam's largest move instead.
  """
  generator = state.generator.name
  names = set()
  for layer in ('project', 'deconv0', 'deconv1', 'deconv2'):
    # Plain batch norm keeps its statistics at <layer>_bn/, conditional batch norm at
    # <layer>_bn/norm/.
    names |= {f'{generator}/{layer}/bias', f'{generator}/{layer}_bn/moving_mean',
              f'{generator}/{layer}_bn/norm/moving_mean'}
  return names


def event_scalars(workdir: str, tag: str, run: str = 'train') -> dict[int, float]:
  """{step: value} of a scalar tag in workdir/<run> (default the trained generator's run;
  'train/ema' holds the EMA generator's eval/*), read with TensorBoard's own reader."""
  if not os.path.isdir(os.path.join(workdir, run)):
    return {}
  events = event_accumulator.EventAccumulator(
      os.path.join(workdir, run), size_guidance={event_accumulator.TENSORS: 0}).Reload()
  if tag not in events.Tags()['tensors']:
    return {}
  return {event.step: float(tensor_util.make_ndarray(event.tensor_proto))
          for event in events.Tensors(tag)}


class FakeKeyValueStore:
  """The coordination service's key-value store, as the workers' agreement checks use it: a key
  is set once (TensorFlow raises AlreadyExists for a second set); the other workers' keys answer
  with the values given, {(job, index): JSON-able value}."""

  def __init__(self, others: dict):
    self.values, self._others = {}, others

  def set_config_key_value(self, key, value):
    if key in self.values:
      raise tf.errors.AlreadyExistsError(None, None, f'{key} already exists')
    self.values[key] = value

  def get_config_key_value(self, key, timeout_ms):
    del timeout_ms
    if key in self.values:
      return self.values[key]
    return json.dumps(self._others[tuple(key.split('/')[-2:])])


def load_source_error(config) -> str:
  """The DataError `sources.load_source(config)` raises; checks that it is one line."""
  with pytest.raises(sources.DataError) as error:
    sources.load_source(config)
  message = str(error.value)
  assert '\n' not in message
  return message


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(module: str, *flags: str) -> subprocess.CompletedProcess:
  """`python -m module flags...` from the repository root, GPUs hidden, TensorFlow quiet."""
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'CUDA_VISIBLE_DEVICES': ''}
  return subprocess.run([sys.executable, '-m', module, *flags], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> str:
  """Exit status 1, no traceback, and a last stderr line `error: ...` holding each of
  `expected`; returns that line."""
  assert result.returncode == 1, result.stdout + result.stderr[-3000:]
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith('error: '), result.stderr[-3000:]
  for text in expected:
    assert text in last_line, last_line
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  return last_line


# The configs whose 'tiny' variant builds an architecture's models, in the order they are tried:
# an architecture's tiny config is the first whose image shape it fits (tiny_config_for). The
# one place that maps architectures to configs: a new architecture that fits one of these shapes
# needs no entry anywhere in the tests.
TINY_CONFIG_MODULES = ('configs.mnist', 'configs.cifar10', 'configs.celeba64')


def tiny_config_for(architecture: str) -> ml_collections.ConfigDict:
  """The first tiny config of TINY_CONFIG_MODULES whose (data.image_size, data.channels) the
  registered `architecture` fits, with model.architecture = `architecture`."""
  shapes = architectures.ARCHITECTURES.get(architecture).image_shapes
  for module in TINY_CONFIG_MODULES:
    config = importlib.import_module(module).get_config('tiny')
    if (config.data.image_size, config.data.channels) in shapes:
      config.model.architecture = architecture
      return config
  raise ValueError(f'architecture {architecture!r} fits {shapes}, the shape of no tiny config '
                   f'of {TINY_CONFIG_MODULES}; allowed: add a config with a tiny variant there')
