"""Class-conditional training end to end on the tiny MNIST config: 1 and 2 replicas train
identically for both conditionings, the AC-GAN terms reach TensorBoard, the sample grid has a
row per class, and a step changes what the issue says it changes."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests import helpers
from wgan_dist.dist import distribution
from wgan_dist.algorithm import conditioning as conditioning_lib
from wgan_dist.algorithm import losses
from wgan_dist.algorithm import random_keys
from wgan_dist.data import sources
from wgan_dist.algorithm import steps
from wgan_dist import train
from wgan_dist.training import state as train_state
from wgan_dist.training import trainer as trainer_lib

# Every test here shares a training run or starts processes: the full suite only.
pytestmark = pytest.mark.slow

NUM_STEPS = 3
CONDITIONINGS = ('acgan', 'projection')


def conditional_config(conditioning: str, architecture: str = 'seed'):
  """The tiny MNIST config, class-conditional (10 digits) with `conditioning`."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.model.num_classes = 10
  config.model.conditioning = conditioning
  config.model.architecture = architecture
  return config


# The seed generator joins a label embedding to z; dcgan's has conditional batch norm.
@pytest.fixture(scope='module', params=[('acgan', 'seed'), ('projection', 'seed'),
                                        ('acgan', 'dcgan')], ids=lambda p: '-'.join(p))
def runs(request):
  config = conditional_config(*request.param)
  config.train.adam_epsilon = helpers.COMPARISON_ADAM_EPSILON
  return (request.param[0], helpers.train_steps(config, 1, NUM_STEPS),
          helpers.train_steps(config, 2, NUM_STEPS))


def test_one_and_two_replicas_train_identically(runs):
  """The bounds of test_replica_invariance (which explains them); a per-replica label draw or
  a label slice out of step with its images would move the losses by percents."""
  from tests import test_replica_invariance as reference  # pylint: disable=import-outside-toplevel
  conditioning, (one, weights_one, state), (two, weights_two, _) = runs
  names = steps.metric_names(conditional_config(conditioning))
  assert set(one[0]) == set(names)
  reference.assert_losses_match(one, two, names, f'{conditioning}: ')
  reference.assert_weights_match(weights_one, weights_two,
                                 state.generator_optimizer.learning_rate.numpy(), conditioning)


def test_acgan_logs_both_classifier_losses_and_they_are_cross_entropies(runs):
  conditioning, (one, _, _), _ = runs
  if conditioning != 'acgan':
    assert not set(steps.ACGAN_METRICS) & set(one[0])
    return
  for metrics in one:
    # Ten classes: an untrained classifier's cross-entropy is near log 10.
    for name in steps.ACGAN_METRICS:
      assert 0.5 * np.log(10) < metrics[name] < 2 * np.log(10), (name, metrics[name])


def _trainer(config):
  config.distribution.strategy = 'one_device'
  strategy = distribution.create_strategy(config)
  state = train_state.create_train_state(config, strategy)
  return trainer_lib.Trainer(strategy=strategy, config=config, state=state,
                             source=sources.load_source(config))


@pytest.mark.parametrize('conditioning', CONDITIONINGS)
def test_critic_step_generates_its_fakes_for_the_real_batch_labels(conditioning):
  """The step's metrics equal the losses recomputed by hand from its noise and the real
  labels; fakes drawn for other labels (say, the generator step's uniform ones) differ."""
  config = conditional_config(conditioning)
  trainer = _trainer(config)
  state = trainer.state
  images, labels = next(trainer.iterator)
  assert images.shape == (8, 28, 28, 1) and labels.dtype == tf.int32
  step, iteration = tf.constant(0, tf.int64), tf.constant(0)
  z = tf.random.stateless_normal([8, config.model.noise_dim], seed=random_keys.key(
      config.seed, step, iteration, random_keys.CRITIC_NOISE))
  epsilon = tf.random.stateless_uniform([8, 1, 1, 1], seed=random_keys.key(
      config.seed, step, iteration, random_keys.EPSILON))

  def expected(fake_labels):
    fake = losses.generate(state.generator, z, fake_labels)
    terms = losses.critic_losses(state.critic, images, fake, epsilon, config.train.gp_lambda,
                                 labels=labels,
                                 classifier_weight=config.train.acgan_critic_weight,
                                 conditioning=conditioning_lib.from_config(config))
    return {name: float(tf.reduce_mean(value)) for name, value in terms.items()}

  by_hand = expected(labels)
  shifted = expected((labels + 1) % 10)
  metrics = tf.function(trainer.critic_step)((images, labels), step, iteration)
  for name, value in by_hand.items():
    np.testing.assert_allclose(float(metrics[name]), value, rtol=1e-5, atol=1e-6, err_msg=name)
  assert abs(shifted['wasserstein_estimate'] - by_hand['wasserstein_estimate']) > 1e-4


def test_the_sample_grid_has_a_row_per_class(tmp_path):
  config = conditional_config('acgan')
  config.train.num_steps = 2
  train.train_and_evaluate(config, str(tmp_path))
  grid = np.asarray(Image.open(tmp_path / 'samples' / 'step_000002.png'))
  # 10 rows (digits 0-9) of 8 columns of 28x28 images with 2-pixel padding.
  assert grid.shape[:2] == (10 * 30 + 2, 8 * 30 + 2)
  for tag in ('train/critic_classifier_loss', 'train/generator_classifier_loss'):
    assert helpers.event_scalars(str(tmp_path), tag), tag
