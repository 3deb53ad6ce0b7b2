"""Differentiable augmentation (algorithm/augment.py): each transform against a float64 loop
reference, its exact gradient (the adjoint of a linear map), the probability p, the draws'
independence of the replica count, and where the critic and generator steps apply it (the
penalty's x̂ between the augmented images)."""

import numpy as np
import pytest
import tensorflow as tf

from wgan_dist.algorithm import augment
from wgan_dist.algorithm import losses
from wgan_dist.algorithm import random_keys
from wgan_dist.algorithm import steps
from wgan_dist.dist import distribution
from wgan_dist.training import state as train_state

ALL = ('color', 'translation', 'cutout')


def _images(batch=6, size=8, channels=3, seed=0) -> np.ndarray:
  return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, channels)).astype(
      np.float32)


def _params(name: str, batch: int, size: int, seed: int = 3) -> dict:
  key = tf.constant([seed, 7], tf.int64)
  return augment.TRANSFORMS.get(name).draw(key, batch, size, size)


def _translation_reference(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
  out = np.zeros(images.shape, np.float64)
  _, height, width, _ = images.shape
  for i in range(len(images)):
    for y in range(height):
      for x in range(width):
        sy, sx = y + dy[i], x + dx[i]
        if 0 <= sy < height and 0 <= sx < width:
          out[i, y, x] = images[i, sy, sx]
  return out


def _cutout_reference(images: np.ndarray, cy: np.ndarray, cx: np.ndarray) -> np.ndarray:
  out = images.astype(np.float64).copy()
  size = images.shape[1]
  cut = int(size * augment.CUTOUT_RATIO + 0.5)
  for i in range(len(images)):
    top, left = cy[i] - cut // 2, cx[i] - cut // 2
    for y in range(size):
      for x in range(size):
        if top <= y < top + cut and left <= x < left + cut:
          out[i, y, x] = 0.0
  return out


def _color_reference(images: np.ndarray, params: dict) -> np.ndarray:
  x = images.astype(np.float64)
  out = np.empty_like(x)
  for i in range(len(x)):
    image = x[i] + float(params['brightness'][i])
    mean = image.mean(axis=2, keepdims=True)
    image = (image - mean) * float(params['saturation'][i]) + mean
    mean = image.mean()
    out[i] = (image - mean) * float(params['contrast'][i]) + mean
  return out


@pytest.mark.parametrize('name', ALL)
def test_each_transform_matches_a_float64_loop(name):
  images = _images(batch=16, size=8)
  params = _params(name, 16, 8)
  got = augment.TRANSFORMS.get(name).apply(tf.constant(images), params).numpy()
  values = {k: v.numpy() for k, v in params.items()}
  if name == 'translation':
    want = _translation_reference(images, values['dy'], values['dx'])
    limit = int(8 * augment.TRANSLATION_RATIO + 0.5)
    assert set(values['dy']) | set(values['dx']) <= set(range(-limit, limit + 1))
    assert len(set(values['dy'])) > 1  # The shifts vary per image.
  elif name == 'cutout':
    want = _cutout_reference(images, values['cy'], values['cx'])
    assert np.any(got == 0) and not np.all(got == 0)
  else:
    want = _color_reference(images, values)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert not np.allclose(got, images)


@pytest.mark.parametrize('name', ALL)
def test_each_transform_passes_the_exact_gradient(name):
  """Given its parameters a transform is affine, T(x) = A x + b: the gradient of <w, T(x)> is
  Aᵀw, so <∇, v> must equal <w, A v> = <w, T(v) − T(0)> for any v (the adjoint identity)."""
  rng = np.random.default_rng(1)
  x, v, w = (tf.constant(rng.normal(size=(5, 8, 8, 3)).astype(np.float32)) for _ in range(3))
  params = _params(name, 5, 8)
  transform = augment.TRANSFORMS.get(name)
  with tf.GradientTape() as tape:
    tape.watch(x)
    objective = tf.reduce_sum(w * transform.apply(x, params))
  gradient = tape.gradient(objective, x)
  linear_v = transform.apply(v, params) - transform.apply(tf.zeros_like(v), params)
  np.testing.assert_allclose(float(tf.reduce_sum(gradient * v)),
                             float(tf.reduce_sum(w * linear_v)), rtol=1e-4)
  assert float(tf.reduce_sum(tf.abs(gradient))) > 0


def test_p_decides_per_image_which_transform_applies():
  images = tf.constant(_images(batch=64, size=8, channels=1))
  key = tf.constant([5, 9], tf.int64)
  policy = ('translation', 'cutout')
  assert np.array_equal(augment.augment(images, policy=policy, p=tf.constant(0.0), key=key,
                                        global_batch=64).numpy(), images.numpy())
  params = augment.draw(policy, key, 64, 8, 8)
  for p in (0.3, 1.0):
    got = augment.augment(images, policy=policy, p=tf.constant(p), key=key,
                          global_batch=64).numpy()
    # Rebuilt one transform at a time from the same draws: where the draw is below p.
    want = images.numpy().astype(np.float64)
    for name in ('translation', 'cutout'):
      chosen = params[name]['apply_draw'].numpy() < p
      values = {k: t.numpy() for k, t in params[name].items()}
      moved = (_translation_reference(want, values['dy'], values['dx']) if name == 'translation'
               else _cutout_reference(want, values['cy'], values['cx']))
      want = np.where(chosen[:, None, None, None], moved, want)
    np.testing.assert_allclose(got, want, atol=1e-6)
  chosen = params['cutout']['apply_draw'].numpy() < 0.3
  assert 0 < chosen.sum() < 64  # Some images are cut out at p = 0.3, some not.


def test_the_policy_order_is_the_registry_order():
  assert augment.parse_policy('cutout, translation') == ('translation', 'cutout')
  assert augment.parse_policy('') == ()
  assert augment.TRANSFORMS.names == ALL


def test_adding_a_transform_to_the_policy_keeps_the_others_draws():
  key = tf.constant([1, 2], tf.int64)
  alone = augment.draw(('cutout',), key, 8, 8, 8)['cutout']
  both = augment.draw(('translation', 'cutout'), key, 8, 8, 8)['cutout']
  for name in alone:
    np.testing.assert_array_equal(alone[name].numpy(), both[name].numpy())


def test_two_replicas_augment_their_slices_of_the_same_global_draw():
  strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
  images = _images(batch=8, size=8)
  key = tf.constant([3, 4], tf.int64)
  policy = ('color', 'translation', 'cutout')
  whole = augment.augment(tf.constant(images), policy=policy, p=tf.constant(0.5), key=key,
                          global_batch=8).numpy()

  def replica_fn():
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    local = tf.constant(images)[replica * 4:replica * 4 + 4]
    return augment.augment(local, policy=policy, p=tf.constant(0.5), key=key, global_batch=8)

  parts = strategy.experimental_local_results(tf.function(lambda: strategy.run(replica_fn))())
  np.testing.assert_allclose(np.concatenate([part.numpy() for part in parts]), whole, atol=1e-6)


def test_bfloat16_images_come_back_in_their_dtype():
  images = tf.cast(tf.constant(_images(batch=4, size=8)), tf.bfloat16)
  out = augment.augment(images, policy=ALL, p=tf.constant(1.0), key=tf.constant([1, 1], tf.int64),
                        global_batch=4)
  assert out.dtype == tf.bfloat16 and out.shape == images.shape


def _augmented_config(tiny_config, policy='translation,cutout', p=0.7):
  tiny_config.augment.policy = policy
  tiny_config.augment.p = p
  return tiny_config


def test_the_critic_step_penalises_between_the_augmented_images(tiny_config):
  """x̂ is built after the transform: the step's penalty is the closed-form penalty of the
  augmented real and fake images, not of the raw ones."""
  config = _augmented_config(tiny_config)
  strategy = distribution.create_strategy(config)
  state = train_state.create_train_state(config, strategy)
  batch = config.train.global_batch_size
  real = tf.constant(np.random.default_rng(0).uniform(-1, 1, (batch, 28, 28, 1)), tf.float32)
  step, iteration = tf.constant(3, tf.int64), tf.constant(1, tf.int64)
  critic_step = steps.make_critic_step(strategy=strategy, config=config,
                                       generator=state.generator, critic=state.critic,
                                       critic_optimizer=state.critic_optimizer,
                                       augment_p=state.augment_p)

  def key(purpose):
    return random_keys.key(config.seed, step, iteration, purpose)
  z = tf.random.stateless_normal([batch, config.model.noise_dim], seed=key(random_keys.CRITIC_NOISE))
  epsilon = tf.random.stateless_uniform([batch, 1, 1, 1], seed=key(random_keys.EPSILON))
  fake = losses.generate(state.generator, z)
  policy = augment.parse_policy(config.augment.policy)
  p = tf.constant(config.augment.p)
  real_t = augment.augment(real, policy=policy, p=p, key=key(random_keys.AUGMENT_REAL),
                           global_batch=batch)
  fake_t = augment.augment(fake, policy=policy, p=p, key=key(random_keys.AUGMENT_FAKE),
                           global_batch=batch)
  want_after = float(tf.reduce_mean(losses.gradient_penalty(state.critic, real_t, fake_t,
                                                            epsilon)))
  want_before = float(tf.reduce_mean(losses.gradient_penalty(state.critic, real, fake,
                                                             epsilon)))
  want_w = float(tf.reduce_mean(state.critic(real_t)[:, 0] - state.critic(fake_t)[:, 0]))
  got = critic_step(real, step, iteration)  # Runs before the update: the same weights.
  np.testing.assert_allclose(float(got['gradient_penalty']), want_after, rtol=1e-5)
  np.testing.assert_allclose(float(got['wasserstein_estimate']), want_w, rtol=1e-4, atol=1e-6)
  assert abs(want_after - want_before) > 1e-4 * abs(want_after)  # The two choices differ here.


def test_the_generator_gradient_goes_through_the_transforms(tiny_config):
  config = _augmented_config(tiny_config, p=1.0)
  strategy = distribution.create_strategy(config)
  state = train_state.create_train_state(config, strategy)
  batch, step = config.train.global_batch_size, tf.constant(2, tf.int64)
  z = tf.random.stateless_normal([batch, config.model.noise_dim], seed=random_keys.key(
      config.seed, step, 0, random_keys.GENERATOR_NOISE))
  policy = augment.parse_policy(config.augment.policy)
  with tf.GradientTape() as tape:
    fake = augment.augment(losses.generate(state.generator, z), policy=policy,
                           p=tf.constant(1.0),
                           key=random_keys.key(config.seed, step, 0,
                                               random_keys.AUGMENT_GENERATOR),
                           global_batch=batch)
    loss = tf.reduce_mean(-state.critic(fake)[:, 0])
  want_norm = float(tf.linalg.global_norm(tape.gradient(loss,
                                                        state.generator.trainable_variables)))
  generator_step = steps.make_generator_step(strategy=strategy, config=config,
                                             generator=state.generator, critic=state.critic,
                                             generator_optimizer=state.generator_optimizer,
                                             augment_p=state.augment_p)
  got = generator_step(step)
  np.testing.assert_allclose(float(got['generator_grad_norm']), want_norm, rtol=1e-4)
  np.testing.assert_allclose(float(got['generator_loss']), float(loss), rtol=1e-4, atol=1e-6)
  assert want_norm > 0


@pytest.mark.slow
def test_xla_compiled_critic_steps_augment_alike(tiny_config):
  """train.jit_compile compiles the critic's loss and gradients; the augmentation runs before
  them, so a compiled run sees the same augmented images and trains the same to rounding."""
  from tests import helpers  # pylint: disable=import-outside-toplevel
  config = _augmented_config(tiny_config, p=0.5)
  plain, _, _ = helpers.train_steps(config, 1, 2)
  config.train.jit_compile = True
  compiled, _, _ = helpers.train_steps(config, 1, 2)
  for step, (a, b) in enumerate(zip(plain, compiled)):
    for name in steps.METRICS:
      np.testing.assert_allclose(b[name], a[name], rtol=1e-3, atol=1e-5,
                                 err_msg=f'{name} at step {step}')
