"""Mixed precision: the penalty matches float32, the loss scale stays out of the penalty path,
training stays finite under each policy and on 2 replicas, and the scale survives a resume."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from wgan_dist.training import checkpointing
from wgan_dist.dist import distribution
from wgan_dist.algorithm import losses
from wgan_dist.models import architectures as models
from wgan_dist.algorithm import precision
from wgan_dist.algorithm import steps
from wgan_dist import train
from wgan_dist.training import state as train_state

# Every test here shares a training run or starts processes: the full suite only.
pytestmark = pytest.mark.slow

MIXED = ('mixed_float16', 'mixed_bfloat16')
# Relative tolerance on ‖∇D‖: unit roundoff (fp16 2^-11 ≈ 4.9e-4, bf16 2^-8 ≈ 3.9e-3) times the
# ~20 roundings a value meets through the forward and backward passes of the tiny critic; the
# measured errors (2.8e-3 and 1.7e-2) sit 3-4x below these.
NORM_RTOL = {'mixed_float16': 1e-2, 'mixed_bfloat16': 5e-2}


def _critic(config, policy: str, weights=None) -> keras.Model:
  keras.utils.set_random_seed(0)
  with precision.policy_scope(policy):
    _, critic = models.build_models(config)
  if weights is not None:
    critic.set_weights(weights)
  return critic


@pytest.fixture
def batch():
  rng = np.random.default_rng(0)
  real = rng.uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
  fake = rng.uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
  epsilon = rng.uniform(0, 1, (16, 1, 1, 1)).astype(np.float32)
  return real, fake, epsilon


@pytest.mark.parametrize('policy', MIXED)
def test_penalty_matches_float32(tiny_config, batch, policy):
  tiny_config.model.base_filters = 8
  critic32 = _critic(tiny_config, 'float32')
  critic = _critic(tiny_config, policy, critic32.get_weights())
  assert critic.layers[1].compute_dtype != 'float32'  # Really mixed.
  assert critic.output.dtype == 'float32'

  penalty32 = losses.gradient_penalty(critic32, *batch).numpy()
  penalty = losses.gradient_penalty(critic, *batch, precision.inner_gradient_scale(policy))

  assert penalty.dtype == tf.float32
  # p = (n - 1)^2, so a relative error δ in n moves p by at most 2|n - 1|·δ·n + (δ·n)^2.
  x_hat = losses.interpolate(*batch)
  with tf.GradientTape() as tape:
    tape.watch(x_hat)
    score = tf.reduce_sum(critic32(x_hat))
  norms32 = np.linalg.norm(tape.gradient(score, x_hat).numpy().reshape(16, -1), axis=1)
  np.testing.assert_allclose((norms32 - 1) ** 2, penalty32, rtol=1e-5)
  delta = NORM_RTOL[policy] * norms32
  bound = 2 * np.abs(norms32 - 1) * delta + delta**2
  assert np.all(np.abs(penalty.numpy() - penalty32) <= bound), (penalty.numpy(), penalty32)


@pytest.mark.parametrize('policy', MIXED)
def test_loss_scale_stays_out_of_the_penalty_path(tiny_config, batch, policy):
  tiny_config.model.base_filters = 8
  critic = _critic(tiny_config, policy)
  results = {}
  # 2^12: the largest power of two at which this critic's float16 outer backward pass does not
  # overflow (at 2^15 it does, and the LossScaleOptimizer would skip the step and halve it).
  for scale in (1.0, 2.0**12):
    terms, grads = steps.critic_loss_and_gradients(
        critic=critic, real=batch[0], fake=batch[1], epsilon=batch[2], gp_lambda=10.0,
        global_batch=16, inner_scale=precision.inner_gradient_scale(policy),
        loss_scale=tf.constant(scale))
    flat = np.concatenate([g.numpy().ravel() for g in grads if g is not None]) / scale
    assert np.all(np.isfinite(flat))
    results[scale] = (terms['gradient_penalty'].numpy(), flat)
  (penalty_1, grads_1), (penalty_big, grads_big) = results.values()
  np.testing.assert_array_equal(penalty_big, penalty_1)
  # Scaling by a power of two is exact except where float16 underflows at scale 1 (what loss
  # scaling exists to fix): those entries are below 2^-24·(chain factors) of the largest.
  np.testing.assert_allclose(grads_big, grads_1, rtol=0, atol=2e-3 * np.abs(grads_1).max())


def _scalars(workdir: str, tag: str) -> list[float]:
  return list(helpers.event_scalars(workdir, tag).values())


@pytest.fixture(scope='module')
def fifty_step_runs(tmp_path_factory):
  from configs import mnist  # pylint: disable=import-outside-toplevel
  runs = {}
  for policy in MIXED:
    config = mnist.get_config('tiny')
    config.mixed_precision = policy
    # Augmented, as a small data set's run is: the transforms compute in float32 and hand the
    # critic its compute dtype's images.
    config.augment.policy = 'translation,cutout'
    config.train.num_steps = 50
    config.train.steps_per_loop = 10
    config.log_every_steps = 10
    config.sample_every_steps = 50
    config.checkpoint_every_steps = 50
    workdir = str(tmp_path_factory.mktemp(policy))
    runs[policy] = (config, workdir, train.train_and_evaluate(config, workdir))
  return runs


@pytest.mark.parametrize('policy', MIXED)
def test_fifty_steps_train_finite(fifty_step_runs, policy):
  config, workdir, means = fifty_step_runs[policy]
  assert all(np.isfinite(value) for value in means.values()), means
  for tag in ('train/critic_loss', 'train/gradient_penalty', 'train/generator_loss'):
    values = _scalars(workdir, tag)
    assert len(values) == 5 and np.all(np.isfinite(values)), (tag, values)
  if policy == 'mixed_float16':
    assert min(_scalars(workdir, 'train/loss_scale')) >= 1
    assert min(_scalars(workdir, 'train/generator_loss_scale')) >= 1
    updates = config.train.num_steps * (config.train.n_critic + 1)
    skipped = _scalars(workdir, 'train/skipped_steps')[-1]
    assert skipped < 0.05 * updates, skipped
  else:
    assert not _scalars(workdir, 'train/loss_scale')  # bfloat16 needs no scaling.


def test_checkpoint_holds_the_loss_scale(fifty_step_runs):
  config, workdir, _ = fifty_step_runs['mixed_float16']
  logged = _scalars(workdir, 'train/loss_scale')[-1]
  strategy = distribution.create_strategy(config)
  state = train_state.create_train_state(config, strategy)
  initial = float(state.critic_optimizer.dynamic_scale.numpy())
  assert checkpointing.Checkpointer(workdir, 3, **state.as_dict()).restore_latest()
  assert float(state.critic_optimizer.dynamic_scale.numpy()) == logged
  assert logged != initial  # The run did move it (2 overflow skips at the start), so this
  # comparison can tell a restored scale from a fresh one.


# 1 vs 2 replicas under float16. Both compute every example in float16, but different
# per-replica batch shapes round differently (unit roundoff 2^-11), which moves each ‖∇D‖ by
# ~3e-3 relative (measured; see NORM_RTOL). The penalty (n - 1)^2 turns that into an absolute
# error of about 2·|n - 1|·3e-3·n ≈ 2e-3 for n ≈ 1.3, λ = 10 multiplies it in the critic loss;
# other quantities carry the relative error itself. The tolerances are ~3x those figures. A
# per-replica mean instead of the global-batch average doubles the logged values, far outside
# them (a second all-reduce inside the optimizer is caught by the float32 invariance test and
# test_optimizer_applies_the_summed_gradient_once; Adam's scale invariance hides it here).
FLOAT16_TOLERANCES = {  # name: (rtol, atol)
    'gradient_penalty': (0, 6e-3),
    'critic_loss': (0, 6e-2),
    'wasserstein_estimate': (1e-2, 1e-2),
    'generator_loss': (1e-2, 1e-2),
    'critic_grad_norm': (3e-2, 0),
    'generator_grad_norm': (3e-2, 0),
}


def test_float16_on_two_replicas_matches_one(tiny_config):
  tiny_config.mixed_precision = 'mixed_float16'
  # A start below the first overflow, so neither run skips: a skip depends on the per-replica
  # batch shape and would make the runs apply different numbers of updates.
  tiny_config.initial_loss_scale = 2.0**10
  num_steps = 3
  one, weights_one, state = helpers.train_steps(tiny_config, 1, num_steps)
  two, weights_two, state_two = helpers.train_steps(tiny_config, 2, num_steps)
  assert int(state.skipped_updates.numpy()) == int(state_two.skipped_updates.numpy()) == 0
  for step, (a, b) in enumerate(zip(one, two)):
    for name, (rtol, atol) in FLOAT16_TOLERANCES.items():
      assert np.isfinite(b[name])
      np.testing.assert_allclose(b[name], a[name], rtol=rtol, atol=atol,
                                 err_msg=f'{name} at step {step}')
  scale = state_two.critic_optimizer.dynamic_scale.numpy()
  assert scale == state.critic_optimizer.dynamic_scale.numpy() and scale >= 1
  # Weights: the two runs end far closer to each other than training moved them (measured
  # 0.13%; Adam's update direction carries the ~1e-3 gradient differences).
  bounded = helpers.pre_norm_names(state)
  names = [name for name in weights_one if name not in bounded]
  difference = np.sqrt(sum(np.sum((weights_two[n] - weights_one[n])**2) for n in names))
  movement = np.sqrt(sum(np.sum((weights_one[n] - state.initial_weights[n])**2) for n in names))
  assert movement > 0 and difference < 0.02 * movement, (difference, movement)


def test_overflowing_updates_are_skipped_not_applied_and_counted(tiny_config):
  tiny_config.mixed_precision = 'mixed_float16'
  tiny_config.initial_loss_scale = 2.0**40  # Every float16 backward pass overflows at first.
  _, weights, state = helpers.train_steps(tiny_config, 1, num_steps=1)
  updates = tiny_config.train.n_critic + 1
  assert int(state.skipped_updates.numpy()) == updates
  # Each skip halved the scale; nothing was applied.
  assert state.critic_optimizer.dynamic_scale.numpy() == 2.0**(40 - tiny_config.train.n_critic)
  assert state.generator_optimizer.dynamic_scale.numpy() == 2.0**39
  trainable = {f'{model.name}/{v.path}' for model in (state.generator, state.critic)
               for v in model.trainable_variables}
  for name in trainable:
    np.testing.assert_array_equal(weights[name], state.initial_weights[name], err_msg=name)
