"""The learning-rate schedule: constant, or the paper's linear decay over generator steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import cifar10
from configs import mnist
from wgan_dist.config import validation as config_validation
from wgan_dist.algorithm import optimizers


def _rate(schedule, update: int) -> float:
  return float(schedule(np.int64(update)))


def test_linear_decay_start_middle_end():
  schedule = optimizers.LinearDecayPerGeneratorStep(2e-4, num_generator_steps=100)
  np.testing.assert_allclose(_rate(schedule, 0), 2e-4, rtol=1e-6)
  np.testing.assert_allclose(_rate(schedule, 50), 1e-4, rtol=1e-6)
  np.testing.assert_allclose(_rate(schedule, 99), 2e-6, rtol=1e-5)  # The last step: lr / N.
  assert _rate(schedule, 100) == 0.0
  assert _rate(schedule, 1000) == 0.0  # Never negative past the end.


def test_a_late_decay_holds_the_rate_then_reaches_0_at_the_end():
  # Constant for steps 0-74, then lr · (100 − s) / 25: s = 75 still the full rate, 0 at 100.
  schedule = optimizers.LinearDecayPerGeneratorStep(2e-4, num_generator_steps=100,
                                                    decay_start_step=75)
  for step in (0, 40, 74, 75):
    np.testing.assert_allclose(_rate(schedule, step), 2e-4, rtol=1e-6)
  np.testing.assert_allclose(_rate(schedule, 80), 2e-4 * 20 / 25, rtol=1e-6)
  np.testing.assert_allclose(_rate(schedule, 99), 2e-4 / 25, rtol=1e-5)
  assert _rate(schedule, 100) == _rate(schedule, 1000) == 0.0
  with pytest.raises(ValueError, match='decay_start_step=100'):
    optimizers.LinearDecayPerGeneratorStep(2e-4, num_generator_steps=100, decay_start_step=100)


def test_make_adam_starts_the_decay_at_the_configured_fraction():
  config = cifar10.get_config()  # lr 2e-4, linear, 100k steps, n_critic 5.
  config.train.lr_decay_start = 0.5
  critic_adam = optimizers.make_adam(config.train, 'critic')
  critic_adam.build([keras.Variable(0.0)])
  for generator_step, rate in ((0, 2e-4), (50_000, 2e-4), (75_000, 1e-4), (100_000, 0.0)):
    critic_adam.iterations.assign(5 * generator_step)
    np.testing.assert_allclose(float(critic_adam.learning_rate), rate, rtol=1e-6, atol=1e-12)


def test_critic_rate_is_keyed_on_generator_steps():
  # 5 critic updates per generator step: all 5 of step s use lr * (1 - s / N).
  schedule = optimizers.LinearDecayPerGeneratorStep(2e-4, num_generator_steps=100,
                                                    updates_per_step=5)
  assert [_rate(schedule, u) for u in range(5)] == [_rate(schedule, 0)] * 5
  np.testing.assert_allclose(_rate(schedule, 250), 1e-4, rtol=1e-6)
  np.testing.assert_allclose(_rate(schedule, 254), 1e-4, rtol=1e-6)
  np.testing.assert_allclose(_rate(schedule, 255), 2e-4 * (1 - 51 / 100), rtol=1e-6)
  assert _rate(schedule, 500) == 0.0


def test_make_adam_decays_the_critic_over_n_critic_times_as_many_updates():
  config = cifar10.get_config()  # lr 2e-4, linear, 100k steps, n_critic 5.
  generator_adam = optimizers.make_adam(config.train, 'generator')
  critic_adam = optimizers.make_adam(config.train, 'critic')
  for optimizer, updates_at_half in ((generator_adam, 50_000), (critic_adam, 250_000)):
    optimizer.build([keras.Variable(0.0)])
    np.testing.assert_allclose(float(optimizer.learning_rate), 2e-4, rtol=1e-6)
    optimizer.iterations.assign(updates_at_half)
    np.testing.assert_allclose(float(optimizer.learning_rate), 1e-4, rtol=1e-6)


def test_constant_rate_by_default():
  train_config = mnist.get_config().train
  assert train_config.lr_decay == 'none'
  optimizer = optimizers.make_adam(train_config, 'critic')
  optimizer.build([keras.Variable(0.0)])
  optimizer.iterations.assign(10_000)
  np.testing.assert_allclose(float(optimizer.learning_rate), train_config.learning_rate)


def test_schedule_survives_the_optimizer_config_round_trip():
  optimizer = optimizers.make_adam(cifar10.get_config().train, 'critic')
  restored = optimizers.AdamOnSummedGradients.from_config(optimizer.get_config())
  schedule = restored._learning_rate  # pylint: disable=protected-access
  assert isinstance(schedule, optimizers.LinearDecayPerGeneratorStep)
  assert schedule.get_config() == {'initial_learning_rate': 2e-4,
                                   'num_generator_steps': 100_000, 'updates_per_step': 5,
                                   'decay_start_step': 0}


def test_linear_decay_needs_the_run_length():
  train_config = cifar10.get_config().train
  train_config.num_steps = -1
  with pytest.raises(ValueError, match=r"lr_decay='linear'.*train.num_steps"):
    optimizers.make_adam(train_config, 'generator')
  # An explicit run length (e.g. derived from num_epochs by the trainer) is enough.
  optimizer = optimizers.make_adam(train_config, 'generator', total_steps=10)
  optimizer.build([keras.Variable(0.0)])
  optimizer.iterations.assign(5)
  np.testing.assert_allclose(float(optimizer.learning_rate), 1e-4, rtol=1e-6)


def test_unknown_decay_is_refused():
  # One check, before any work (config/schema.py LR_DECAYS); the optimizers trust a validated
  # config.
  config = cifar10.get_config()
  config.train.lr_decay = 'cosine'
  with pytest.raises(ValueError, match=r"train.lr_decay='cosine'.*'none', 'linear'"):
    config_validation.validate(config)


def test_rate_resumes_from_a_checkpoint(tmp_path):
  # The schedule keys on optimizer.iterations, which checkpoints hold: a resumed run continues
  # the decay instead of restarting it.
  train_config = cifar10.get_config().train
  variable = keras.Variable(0.0)
  optimizer = optimizers.make_adam(train_config, 'critic')
  optimizer.build([variable])
  optimizer.iterations.assign(250_000)
  path = tf.train.Checkpoint(optimizer=optimizer).write(str(tmp_path / 'ckpt'))
  resumed = optimizers.make_adam(train_config, 'critic')
  resumed.build([keras.Variable(0.0)])
  np.testing.assert_allclose(float(resumed.learning_rate), 2e-4, rtol=1e-6)
  tf.train.Checkpoint(optimizer=resumed).read(path).assert_existing_objects_matched()
  np.testing.assert_allclose(float(resumed.learning_rate), 1e-4, rtol=1e-6)


@pytest.mark.parametrize('lr_decay', ['none', 'linear'])
def test_generator_learning_rate_sets_only_the_generator(lr_decay):
  train_config = cifar10.get_config().train  # lr 2e-4, 100k steps.
  train_config.lr_decay = lr_decay
  train_config.generator_learning_rate = 5e-5
  generator_adam = optimizers.make_adam(train_config, 'generator')
  critic_adam = optimizers.make_adam(train_config, 'critic')
  for optimizer in (generator_adam, critic_adam):
    optimizer.build([keras.Variable(0.0)])
  np.testing.assert_allclose(float(generator_adam.learning_rate), 5e-5, rtol=1e-6)
  np.testing.assert_allclose(float(critic_adam.learning_rate), 2e-4, rtol=1e-6)
  if lr_decay == 'linear':  # Both decay over the same generator steps.
    generator_adam.iterations.assign(50_000)
    np.testing.assert_allclose(float(generator_adam.learning_rate), 2.5e-5, rtol=1e-6)
