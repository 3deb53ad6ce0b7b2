"""Class-conditional models (model.num_classes > 0): parameter counts from the layer formulas,
class-conditional batch norm against a float64 computation (on 1 and on 2 replicas), the
projection and AC-GAN heads against their weights by hand, label dependence, per-example
critics, and float32 outputs under mixed precision. Tiny widths throughout.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import mnist
from tests import helpers
from wgan_dist.dist import distribution
from wgan_dist.models import layers as model_layers
from wgan_dist.models import architectures as models
from wgan_dist.algorithm import conditioning as conditioning_lib
from wgan_dist.algorithm import precision

NUM_CLASSES = 3
# Keras BatchNormalization's defaults, which ConditionalBatchNorm keeps.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
# The tests below that hold for every architecture and every conditioning walk the registries
# (ARCHITECTURES, CONDITIONINGS): a new entry is covered by adding it. Only the parameter
# counts, which are formulas of each built-in model, and the two built-in heads' values by hand
# name entries; a new entry's counts belong in its own test module (docs/extending.md).
CONDITIONAL = [(NUM_CLASSES, name) for name in conditioning_lib.CONDITIONINGS.names]
# model.conditioning of an unconditional config (num_classes 0): any name, it is not read.
UNREAD = conditioning_lib.CONDITIONINGS.names[0]


def _config(architecture: str, num_classes: int = NUM_CLASSES, conditioning: str = UNREAD):
  config = helpers.tiny_config_for(architecture)
  config.model.num_classes = num_classes
  config.model.conditioning = conditioning
  return config


# Parameter counts from the layer formulas. Batch norm holds 4 weights per channel (scale,
# offset, moving mean, moving variance); class-conditional batch norm the 2 moving statistics
# per channel plus a scale and an offset row per class; layer norm 2 per channel.
def _conv(kernel: int, cin: int, cout: int) -> int:
  return kernel * kernel * cin * cout + cout  # Conv2DTranspose has the same count.


def _dense(nin: int, nout: int) -> int:
  return nin * nout + nout


def _bn(channels: int) -> int:
  return 4 * channels


def _cbn(channels: int, k: int) -> int:
  return 2 * channels + 2 * k * channels


def _seed_generator(noise: int, b: int, k: int) -> int:
  # Plain batch norm; the label enters as an embedding joined to z.
  embedding = models.SEED_LABEL_EMBEDDING_DIM if k else 0
  params = k * embedding + _dense(noise + embedding, 7 * 7 * 4 * b) + _bn(7 * 7 * 4 * b)
  for cin, cout in [(4 * b, 4 * b), (4 * b, 2 * b), (2 * b, b)]:
    params += _conv(3, cin, cout) + _bn(cout)
  return params + _conv(3, b, 1)


def _dcgan_generator(noise: int, b: int, k: int) -> int:
  extra = (lambda c: _cbn(c, k)) if k else (lambda c: 0)  # No batch norm unless conditional.
  return (_dense(noise, 4 * 4 * 4 * b) + extra(4 * 4 * 4 * b) + _conv(5, 4 * b, 2 * b)
          + extra(2 * b) + _conv(5, 2 * b, b) + extra(b) + _conv(5, b, 1))


def _norm(k: int):
  return _bn if k == 0 else (lambda c: _cbn(c, k))


def _resnet_generator(noise: int, b: int, k: int) -> int:
  norm = _norm(k)
  up_block = _conv(1, b, b) + norm(b) + _conv(3, b, b) + norm(b) + _conv(3, b, b)
  return _dense(noise, 4 * 4 * b) + 3 * up_block + norm(b) + _conv(3, b, 3)


def _dcgan64_generator(noise: int, b: int, k: int) -> int:
  norm = _norm(k)
  params = _dense(noise, 4 * 4 * 8 * b) + norm(8 * b)
  for cin, cout in [(8 * b, 4 * b), (4 * b, 2 * b), (2 * b, b)]:
    params += _conv(5, cin, cout) + norm(cout)
  return params + _conv(5, b, 3)


# Critic trunks: (parameters before the head, size of the features phi the head reads).
def _seed_critic(b: int, norm_weights: int) -> tuple[int, int]:
  params = _conv(3, 1, 2 * b) + _conv(4, 16 * b, 1)
  for kernel, cin, cout in [(3, 2 * b, 4 * b), (4, 4 * b, 8 * b), (4, 8 * b, 16 * b)]:
    params += _conv(kernel, cin, cout) + norm_weights * cout
  return params, 2 * 2 * 1


def _dcgan_critic(b: int, norm_weights: int) -> tuple[int, int]:
  params = _conv(5, 1, b)
  for cin, cout in [(b, 2 * b), (2 * b, 4 * b)]:
    params += _conv(5, cin, cout) + norm_weights * cout
  return params, 4 * 4 * 4 * b


def _resnet_critic(b: int, norm_weights: int) -> tuple[int, int]:
  norms = 2 * norm_weights * b
  first = _conv(1, 3, b) + _conv(3, 3, b) + _conv(3, b, b)
  down = _conv(1, b, b) + 2 * _conv(3, b, b) + norms
  return first + down + 2 * (2 * _conv(3, b, b) + norms), b


def _dcgan64_critic(b: int, norm_weights: int) -> tuple[int, int]:
  params = _conv(5, 3, b)
  for cin, cout in [(b, 2 * b), (2 * b, 4 * b), (4 * b, 8 * b)]:
    params += _conv(5, cin, cout) + norm_weights * cout
  return params, 4 * 4 * 8 * b


# Built-in architecture -> (generator formula, critic trunk formula, the class-conditional
# batch norms of its conditional generator).
FORMULAS = {
    'seed': (_seed_generator, _seed_critic, 0),
    'dcgan': (_dcgan_generator, _dcgan_critic, 3),
    'resnet': (_resnet_generator, _resnet_critic, 7),
    'dcgan64': (_dcgan64_generator, _dcgan64_critic, 4),
}
# Built-in conditioning -> its head's parameters from (features, K); unconditional: psi alone.
HEADS = {
    'acgan': lambda features, k: _dense(features, 1 + k),
    'projection': lambda features, k: _dense(features, 1) + k * features,  # psi, the table.
}


def _head(features: int, k: int, conditioning: str) -> int:
  return _dense(features, 1) if k == 0 else HEADS[conditioning](features, k)


def test_formulas_give_the_seed_models_known_counts():
  # The formulas against the seed counts of docs/architectures.md (batch norm in the blog's critic: 4 each).
  assert _seed_generator(100, 64, 0) == 2_278_401
  trunk, features = _seed_critic(64, 4)
  assert trunk + _head(features, 0, UNREAD) == 10_807_302


def test_the_formulas_name_registered_entries():
  assert set(FORMULAS) <= set(models.ARCHITECTURES.names)
  assert set(HEADS) <= set(conditioning_lib.CONDITIONINGS.names)


@pytest.mark.parametrize('architecture', models.ARCHITECTURES.names)
@pytest.mark.parametrize('k, conditioning', [(0, UNREAD)] + CONDITIONAL)
def test_parameter_counts_and_interfaces(architecture, k, conditioning):
  config = _config(architecture, k, conditioning)
  kind = conditioning_lib.from_config(config)
  generator, critic = models.build_models(config)
  if architecture in FORMULAS and (k == 0 or conditioning in HEADS):
    b, noise = config.model.base_filters, config.model.noise_dim
    generator_params, critic_trunk, conditional_norms = FORMULAS[architecture]
    norm_weights = 2 if config.model.critic_norm == 'layer' else 0
    assert generator.count_params() == generator_params(noise, b, k)
    trunk, features = critic_trunk(b, norm_weights)
    assert critic.count_params() == trunk + _head(features, k, conditioning)
    assert sum(isinstance(layer, model_layers.ConditionalBatchNorm)
               for layer in generator.layers) == (conditional_norms if k else 0)
  size, channels = config.data.image_size, config.data.channels
  assert generator.output_shape == (None, size, size, channels)
  assert [t.name for t in generator.inputs] == (['z', 'label'] if k else ['z'])
  # The critic reads the label as a second input or not at all; the conditioning calls it.
  assert [t.name for t in critic.inputs] in ([['image'], ['image', 'label']] if k
                                              else [['image']])
  for model in (generator, critic):
    for tensor in model.inputs:
      assert tensor.dtype == ('int32' if tensor.name == 'label' else 'float32')
  images, labels = _images_and_labels(config)
  scores, aux = kind.outputs(critic, tf.constant(images), tf.constant(labels) if k else None)
  assert scores.shape == (5,) and scores.dtype == tf.float32
  assert aux is None or (aux.shape[0] == 5 and aux.dtype == tf.float32)
  # Critics stay free of batch norm of either kind; an unconditional generator has no
  # class-conditional one.
  assert not any(isinstance(layer, (keras.layers.BatchNormalization,
                                    model_layers.ConditionalBatchNorm))
                 for layer in critic.layers)
  if not k:
    assert not any(isinstance(layer, model_layers.ConditionalBatchNorm)
                   for layer in generator.layers)


def _cbn_reference(x, labels, gamma, beta, mean, variance):
  x_hat = (x - mean) / np.sqrt(variance + BN_EPSILON)
  shape = (-1,) + (1,) * (x.ndim - 2) + (x.shape[-1],)
  return gamma[labels].reshape(shape) * x_hat + beta[labels].reshape(shape)


def _cbn_case(shape, seed=0):
  rng = np.random.default_rng(seed)
  x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
  labels = rng.integers(0, NUM_CLASSES, shape[0]).astype(np.int32)
  labels[:NUM_CLASSES] = np.arange(NUM_CLASSES)  # Every class present.
  gamma = rng.uniform(0.5, 2.0, (NUM_CLASSES, shape[-1])).astype(np.float32)
  beta = rng.standard_normal((NUM_CLASSES, shape[-1])).astype(np.float32)
  return x, labels, gamma, beta


def _set_tables(layer, gamma, beta):
  layer.gamma.assign(gamma)
  layer.beta.assign(beta)


@pytest.mark.parametrize('shape', [(8, 3, 3, 5), (8, 7)])
def test_conditional_batch_norm_is_gamma_y_times_x_hat_plus_beta_y(shape):
  x, labels, gamma, beta = _cbn_case(shape)
  layer = model_layers.ConditionalBatchNorm(NUM_CLASSES)
  out = layer([tf.constant(x), tf.constant(labels)], training=True).numpy()
  # Fresh tables (1 and 0): plain batch norm, the same for every class.
  axes = tuple(range(x.ndim - 1))
  x64 = x.astype(np.float64)
  mean, variance = x64.mean(axis=axes), x64.var(axis=axes)  # Biased, over the batch.
  np.testing.assert_allclose(out, (x64 - mean) / np.sqrt(variance + BN_EPSILON), rtol=1e-4,
                             atol=1e-5)

  _set_tables(layer, gamma, beta)
  out = layer([tf.constant(x), tf.constant(labels)], training=True).numpy()
  np.testing.assert_allclose(out, _cbn_reference(x64, labels, gamma, beta, mean, variance),
                             rtol=1e-4, atol=1e-5)
  # Inference: the moving statistics, after two training calls on the same batch.
  moving_mean = mean * (1 - BN_MOMENTUM**2)
  moving_variance = BN_MOMENTUM**2 + variance * (1 - BN_MOMENTUM**2)
  out = layer([tf.constant(x), tf.constant(labels)], training=False).numpy()
  np.testing.assert_allclose(
      out, _cbn_reference(x64, labels, gamma, beta, moving_mean, moving_variance), rtol=1e-4,
      atol=1e-5)


def test_conditional_batch_norm_statistics_span_the_global_batch_on_two_replicas():
  config = mnist.get_config('tiny')
  config.distribution.strategy, config.distribution.cpu_replicas = 'mirrored', 2
  strategy = distribution.create_strategy(config)
  assert strategy.num_replicas_in_sync == 2
  x, labels, gamma, beta = _cbn_case((8, 3, 3, 5), seed=1)
  x[4:] += 3.0  # Replica 1's half differs in mean: per-replica statistics would show.
  with strategy.scope():
    layer = model_layers.ConditionalBatchNorm(NUM_CLASSES)
    layer.build([x.shape, labels.shape])
    _set_tables(layer, gamma, beta)

  def shard(array):
    return strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(array[4 * context.replica_id_in_sync_group:][:4]))

  @tf.function
  def run(x_shards, label_shards):
    return strategy.run(lambda a, b: layer([a, b], training=True), args=(x_shards, label_shards))

  out = np.concatenate([t.numpy() for t in strategy.experimental_local_results(
      run(shard(x), shard(labels)))])
  x64 = x.astype(np.float64)
  mean, variance = x64.mean(axis=(0, 1, 2)), x64.var(axis=(0, 1, 2))
  np.testing.assert_allclose(out, _cbn_reference(x64, labels, gamma, beta, mean, variance),
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(layer.norm.moving_mean.numpy(), mean * (1 - BN_MOMENTUM),
                             rtol=1e-4, atol=1e-6)


def _noise(config, n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal((n, config.model.noise_dim)).astype(
      np.float32)


def _randomise_tables(generator, seed=0):
  rng = np.random.default_rng(seed)
  for layer in generator.layers:
    if isinstance(layer, model_layers.ConditionalBatchNorm):
      shape = layer.gamma.shape
      _set_tables(layer, 1 + 0.5 * rng.standard_normal(shape), 0.5 * rng.standard_normal(shape))


def _label_only_through_norms(generator: keras.Model) -> bool:
  """Whether the generator's label input feeds class-conditional batch norms and nothing else
  (the seed generator embeds it and joins it to z instead)."""
  label = generator.inputs[1]
  readers = [layer for layer in generator.layers
             if not isinstance(layer, keras.layers.InputLayer)
             and any(tensor is label for tensor in tf.nest.flatten(layer.input))]
  return bool(readers) and all(isinstance(layer, model_layers.ConditionalBatchNorm)
                               for layer in readers)


@pytest.mark.parametrize('architecture', models.ARCHITECTURES.names)
def test_generator_output_depends_on_the_label(architecture):
  config = _config(architecture)
  generator, _ = models.build_models(config)
  z = tf.constant(np.repeat(_noise(config, 1), NUM_CLASSES, axis=0))  # One z, every class.
  labels = tf.constant(np.arange(NUM_CLASSES, dtype=np.int32))

  def images(training):
    return generator([z, labels], training=training).numpy()

  if _label_only_through_norms(generator):
    # The label enters only through the batch norm's tables, which start equal for every class.
    for training in (True, False):
      out = images(training)
      np.testing.assert_allclose(out, np.broadcast_to(out[:1], out.shape), atol=1e-6)
    # Training mode reaches the norms inside the model: their moving statistics moved.
    norms = [layer.norm for layer in generator.layers
             if isinstance(layer, model_layers.ConditionalBatchNorm)]
    assert all(np.abs(norm.moving_variance.numpy() - 1).max() > 0 for norm in norms)
    before = [norm.moving_variance.numpy() for norm in norms]
    images(False)
    for norm, value in zip(norms, before):
      np.testing.assert_array_equal(norm.moving_variance.numpy(), value)
  _randomise_tables(generator)
  for training in (True, False):
    out = images(training)
    for a in range(NUM_CLASSES):
      for b in range(a):
        assert np.abs(out[a] - out[b]).max() > 1e-3, (training, a, b)
  # In inference mode each example's image is its own (z, label)'s, whatever the batch holds.
  z_many, labels_many = _noise(config, 5, seed=1), np.array([2, 0, 1, 1, 0], np.int32)
  batch = generator([tf.constant(z_many), tf.constant(labels_many)], training=False).numpy()
  for i in range(5):
    alone = generator([tf.constant(z_many[i:i + 1]), tf.constant(labels_many[i:i + 1])],
                      training=False).numpy()
    np.testing.assert_allclose(alone, batch[i:i + 1], rtol=1e-4, atol=1e-5)


def _images_and_labels(config, n: int = 5):
  rng = np.random.default_rng(2)
  size, channels = config.data.image_size, config.data.channels
  images = rng.uniform(-1, 1, (n, size, size, channels)).astype(np.float32)
  labels = np.array([0, 1, 2, 2, 1][:n], np.int32)
  return images, labels


def _features(critic, images) -> np.ndarray:
  """phi: the vector the critic's last Dense reads, in float64."""
  dense = critic.get_layer('score' if 'score' in [l.name for l in critic.layers]
                           else 'score_and_logits')
  trunk = keras.Model(critic.inputs[0], dense.input)
  return trunk(tf.constant(images)).numpy().astype(np.float64)


@pytest.mark.parametrize('architecture', models.ARCHITECTURES.names)
def test_projection_is_psi_of_phi_plus_embed_y_dot_phi(architecture):
  config = _config(architecture, conditioning='projection')
  _, critic = models.build_models(config)
  images, labels = _images_and_labels(config)
  out = critic([tf.constant(images), tf.constant(labels)]).numpy()
  assert out.dtype == np.float32 and out.shape == (5, 1)
  phi = _features(critic, images)
  kernel, bias = (w.astype(np.float64) for w in critic.get_layer('score').get_weights())
  (embed,) = critic.get_layer('projection').get_weights()
  assert embed.shape == (NUM_CLASSES, phi.shape[1])
  expected = phi @ kernel + bias + np.sum(embed[labels].astype(np.float64) * phi, axis=1,
                                          keepdims=True)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  # The label moves the score by <embed(y') - embed(y), phi>, nothing else.
  other = (labels + 1) % NUM_CLASSES
  moved = critic([tf.constant(images), tf.constant(other)]).numpy()
  np.testing.assert_allclose(moved - out, np.sum((embed[other] - embed[labels]) * phi, axis=1,
                                                 keepdims=True), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('architecture', models.ARCHITECTURES.names)
def test_acgan_critic_gives_the_score_then_the_class_logits(architecture):
  config = _config(architecture, conditioning='acgan')
  _, critic = models.build_models(config)
  images, _ = _images_and_labels(config)
  out = critic(tf.constant(images)).numpy()
  assert out.dtype == np.float32 and out.shape == (5, 1 + NUM_CLASSES)
  kernel, bias = (w.astype(np.float64)
                  for w in critic.get_layer('score_and_logits').get_weights())
  np.testing.assert_allclose(out, _features(critic, images) @ kernel + bias, rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize('architecture', models.ARCHITECTURES.names)
@pytest.mark.parametrize('conditioning', conditioning_lib.CONDITIONINGS.names)
def test_conditional_critic_scores_each_example_alone(architecture, conditioning):
  # The per-example gradient penalty assumes D(x_i, y_i) depends on example i only.
  config = _config(architecture, conditioning=conditioning)
  _, critic = models.build_models(config)
  images, labels = _images_and_labels(config)

  kind = conditioning_lib.from_config(config)

  def call(i, j):
    scores, aux = kind.outputs(critic, tf.constant(images[i:j]), tf.constant(labels[i:j]))
    return [scores.numpy()] + ([] if aux is None else [aux.numpy()])

  together = call(0, 5)
  for i in range(5):
    for alone, batch in zip(call(i, i + 1), together):
      np.testing.assert_allclose(alone, batch[i:i + 1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('architecture', models.ARCHITECTURES.names)
@pytest.mark.parametrize('conditioning', conditioning_lib.CONDITIONINGS.names)
def test_mixed_float16_builds_with_float32_outputs(architecture, conditioning):
  config = _config(architecture, conditioning=conditioning)
  keras.utils.set_random_seed(0)
  generator32, _ = models.build_models(config)
  with precision.policy_scope('mixed_float16'):
    generator, critic = models.build_models(config)
  generator.set_weights(generator32.get_weights())
  assert any(layer.compute_dtype == 'float16' for layer in generator.layers)  # Really mixed.
  for model in (generator, critic):
    for tensor in model.inputs:
      assert tensor.dtype == ('int32' if tensor.name == 'label' else 'float32')
  _randomise_tables(generator)
  _randomise_tables(generator32)
  z, labels = tf.constant(_noise(config, 4)), tf.constant(np.array([0, 1, 2, 1], np.int32))
  images = generator([z, labels], training=True)
  assert images.dtype == tf.float32
  # Same weights, float16 arithmetic: within a few float16 roundings of the float32 images.
  np.testing.assert_allclose(images.numpy(), generator32([z, labels], training=True).numpy(),
                             atol=2e-2)
  # The head itself is float32, not only the conditioning's cast of its output.
  assert all(tensor.dtype == 'float32' for tensor in critic.outputs)
  scores, _ = conditioning_lib.from_config(config).outputs(critic, images, labels)
  assert scores.dtype == tf.float32 and scores.shape == (4,)
