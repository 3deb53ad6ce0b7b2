"""The generator's moving average: its update math (with and without warm-up) on 1 and 2
replicas, its checkpoint, and its warm-up across a resume."""

import numpy as np
import pytest

from wgan_dist.training import checkpointing
from wgan_dist.dist import distribution
from wgan_dist.algorithm import ema
from wgan_dist.data import sources
from wgan_dist.training import state as train_state
from wgan_dist.training import trainer as trainer_lib

DECAY = 0.75


def _ema_config(config, cpu_replicas: int = 1, warmup: bool = False):
  config = config.copy_and_resolve_references()
  config.train.ema_decay = DECAY
  config.train.ema_warmup = warmup
  config.distribution.cpu_replicas = cpu_replicas
  config.distribution.strategy = 'mirrored' if cpu_replicas > 1 else 'one_device'
  return config


def _run(config, cpu_replicas: int, num_steps: int, warmup: bool = False, state=None):
  """Trains one step at a time; returns the state and the generator weights before/after each.

  A given `state` (e.g. restored from a checkpoint) continues from its step.
  """
  config = _ema_config(config, cpu_replicas, warmup)
  strategy = distribution.create_strategy(config)
  state = state or train_state.create_train_state(config, strategy)
  # The trainer reads the data from where state.step says.
  trainer = trainer_lib.Trainer(strategy=strategy, config=config, state=state,
                                source=sources.load_source(config))
  history = [state.generator.get_weights()]
  for _ in range(num_steps):
    trainer.train(1)
    history.append(state.generator.get_weights())
  return state, history


@pytest.mark.parametrize('t, want', [(0, 0.1), (1, 2 / 11), (10, 11 / 20), (1000, DECAY),
                                     (10**9, DECAY)])
def test_warmup_decay_closed_form(t, want):
  # min(decay, (1 + t) / (10 + t)): (1 + t) / (10 + t) passes 0.75 at t = 26.
  np.testing.assert_allclose(float(ema.warmup_decay(DECAY, t)), want, rtol=1e-6)


def _expected_average(history, warmup: bool):
  expected = history[0]
  for t, weights in enumerate(history[1:], start=1):
    decay = min(DECAY, (1 + t) / (10 + t)) if warmup else DECAY
    expected = [decay * average + (1 - decay) * current
                for average, current in zip(expected, weights)]
  return expected


@pytest.mark.slow
@pytest.mark.parametrize('cpu_replicas, warmup', [(1, False), (2, False), (1, True), (2, True)])
def test_ema_follows_the_recurrence(tiny_config, cpu_replicas, warmup):
  state, history = _run(tiny_config, cpu_replicas, num_steps=3, warmup=warmup)
  expected = _expected_average(history, warmup)
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
  fresh = train_state.create_train_state(config, distribution.create_strategy(config))
  assert checkpointing.Checkpointer(str(tmp_path), 1, **fresh.as_dict()).restore_latest()
  for restored, want in zip(fresh.ema_generator.get_weights(), saved):
    np.testing.assert_array_equal(restored, want)


@pytest.mark.slow
def test_warmup_continues_across_a_resume(tiny_config, tmp_path):
  """2 steps, a checkpoint, a fresh process state restored from it, 2 more steps == 4 straight.

  The warm-up is keyed on the restored step counter, so steps 3 and 4 use d_3 and d_4, not d_1
  and d_2 again.
  """
  straight, history = _run(tiny_config, 1, num_steps=4, warmup=True)
  first, _ = _run(tiny_config, 1, num_steps=2, warmup=True)
  checkpointing.Checkpointer(str(tmp_path), 1, **first.as_dict()).save(2)
  config = _ema_config(tiny_config, warmup=True)
  fresh = train_state.create_train_state(config, distribution.create_strategy(config))
  assert checkpointing.Checkpointer(str(tmp_path), 1, **fresh.as_dict()).restore_latest()
  resumed, _ = _run(tiny_config, 1, num_steps=2, warmup=True, state=fresh)
  assert int(resumed.step.numpy()) == 4
  for got, want in zip(resumed.ema_generator.get_weights(), straight.ema_generator.get_weights()):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  # And both are the closed-form warm-up average of the straight run's weights.
  for got, want in zip(straight.ema_generator.get_weights(), _expected_average(history, True)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_no_ema_means_no_ema_in_the_state(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.distribution.strategy = 'one_device'
  state = train_state.create_train_state(config, distribution.create_strategy(config))
  assert state.ema_generator is None and 'ema_generator' not in state.as_dict()
