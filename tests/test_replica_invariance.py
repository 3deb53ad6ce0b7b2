"""The same seed and global batch on 1 replica and on 2 logical CPU replicas train identically.

This is what proves the loss reduction: a per-replica mean (instead of the global-batch average)
or a second gradient all-reduce would double the learning rate and λ on 2 replicas, and shared
noise across replicas would change the draws; any of them breaks these comparisons.
"""

import numpy as np
import pytest

from wgan_dist import data
from wgan_dist import distribution
from wgan_dist import steps
from wgan_dist import train

NUM_STEPS = 3


def _run(config, cpu_replicas: int):
  config = config.copy_and_resolve_references()
  config.distribution.cpu_replicas = cpu_replicas
  config.distribution.strategy = 'mirrored' if cpu_replicas > 1 else 'one_device'
  strategy = distribution.create_strategy(config)
  assert strategy.num_replicas_in_sync == cpu_replicas
  state = train.create_train_state(config, strategy)
  # The same factory and dataset train_and_evaluate uses, one generator step per call.
  train_loop = steps.make_train_loop(strategy=strategy, config=config, **state.as_dict())
  iterator = iter(data.make_distributed_dataset(strategy, config, data.load_source(config)))
  history = []
  for _ in range(NUM_STEPS):
    metrics = train_loop(iterator, np.int32(1))
    history.append({name: float(value) for name, value in metrics.items()})
  weights = {f'{model.name}/{variable.path}': variable.numpy()
             for model in (state.generator, state.critic) for variable in model.weights}
  return history, weights, state


@pytest.fixture(scope='module')
def runs():
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  return _run(config, 1), _run(config, 2)


def test_losses_match(runs):
  (one, _, _), (two, _, _) = runs
  for step, (a, b) in enumerate(zip(one, two)):
    for name in steps.METRICS:
      np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6,
                                 err_msg=f'{name} at step {step}')


def test_weights_match(runs):
  (_, one, state), (_, two, _) = runs
  assert one.keys() == two.keys()
  # A bias feeding batch norm has a gradient that is exactly zero in exact arithmetic (the norm
  # subtracts it again), so its float gradient is rounding noise that Adam rescales to full
  # steps; only bound it by Adam's largest possible move, lr per update. The norm's moving mean
  # tracks that bias, so it gets the same bound.
  generator = state.generator.name
  pre_norm_biases = set()
  for layer in ('project', 'deconv0', 'deconv1', 'deconv2'):
    pre_norm_biases |= {f'{generator}/{layer}/bias', f'{generator}/{layer}_bn/moving_mean'}
  lr = state.generator_optimizer.learning_rate.numpy()
  checked = 0
  for name, a in one.items():
    if name in pre_norm_biases:
      np.testing.assert_allclose(two[name], a, atol=2 * NUM_STEPS * lr, err_msg=name)
    else:
      np.testing.assert_allclose(two[name], a, rtol=1e-5, atol=1e-6, err_msg=name)
      checked += 1
  assert checked > len(pre_norm_biases)


def test_training_moved_the_weights(runs):
  (_, trained, state), _ = runs
  from configs import mnist  # pylint: disable=import-outside-toplevel
  fresh = train.create_train_state(mnist.get_config('tiny'),
                                   distribution.create_strategy(mnist.get_config('tiny')))
  kernel = f'{state.critic.name}/conv0/kernel'
  fresh_kernel = [v for v in fresh.critic.weights if v.path == 'conv0/kernel'][0].numpy()
  assert not np.allclose(trained[kernel], fresh_kernel)
