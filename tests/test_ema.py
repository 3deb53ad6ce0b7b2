"""The generator's moving average: its update math on 1 and 2 replicas, and its checkpoint."""

import numpy as np
import pytest

from wgan_dist import checkpointing
from wgan_dist import data
from wgan_dist import distribution
from wgan_dist import steps
from wgan_dist import train

DECAY = 0.75


def _run(config, cpu_replicas: int, num_steps: int):
  """Trains one step at a time; returns the state and the generator weights before/after each."""
  config = config.copy_and_resolve_references()
  config.train.ema_decay = DECAY
  config.distribution.cpu_replicas = cpu_replicas
  config.distribution.strategy = 'mirrored' if cpu_replicas > 1 else 'one_device'
  strategy = distribution.create_strategy(config)
  state = train.create_train_state(config, strategy)
  train_loop = steps.make_train_loop(strategy=strategy, config=config, **state.as_dict())
  iterator = iter(data.make_distributed_dataset(strategy, config, data.load_source(config)))
  history = [state.generator.get_weights()]
  for _ in range(num_steps):
    train_loop(iterator, np.int32(1))
    history.append(state.generator.get_weights())
  return state, history


@pytest.mark.parametrize('cpu_replicas', [1, 2])
def test_ema_follows_the_recurrence(tiny_config, cpu_replicas):
  state, history = _run(tiny_config, cpu_replicas, num_steps=3)
  expected = history[0]
  for weights in history[1:]:
    expected = [DECAY * average + (1 - DECAY) * current
                for average, current in zip(expected, weights)]
  got = state.ema_generator.get_weights()
  assert len(got) == len(expected) == len(state.generator.weights)
  for average, want in zip(got, expected):
    np.testing.assert_allclose(average, want, rtol=1e-5, atol=1e-7)
  # The average really lags: it differs from the trained weights.
  assert any(not np.allclose(a, w) for a, w in zip(got, history[-1]))


def test_ema_is_checkpointed(tiny_config, tmp_path):
  state, _ = _run(tiny_config, 1, num_steps=2)
  saved = state.ema_generator.get_weights()
  checkpointing.Checkpointer(str(tmp_path), 1, **state.as_dict()).save(2)
  config = tiny_config.copy_and_resolve_references()
  config.train.ema_decay = DECAY
  config.distribution.strategy = 'one_device'
  fresh = train.create_train_state(config, distribution.create_strategy(config))
  assert checkpointing.Checkpointer(str(tmp_path), 1, **fresh.as_dict()).restore_latest()
  for restored, want in zip(fresh.ema_generator.get_weights(), saved):
    np.testing.assert_array_equal(restored, want)


def test_no_ema_means_no_ema_in_the_state(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.distribution.strategy = 'one_device'
  state = train.create_train_state(config, distribution.create_strategy(config))
  assert state.ema_generator is None and 'ema_generator' not in state.as_dict()
