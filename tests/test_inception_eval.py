"""Inception FID / Inception Score plumbing, offline.

No ImageNet weights here: a random-weights InceptionV3 is written in Keras's legacy HDF5 layout
(the layout of the published inception_v3_weights_tf_dim_ordering_tf_kernels.h5, which
keras.applications itself loads with the same `load_weights`), and loaded into a 75x75 network
(InceptionV3's smallest) so a test scores 16 images in seconds on a CPU. The figures say nothing
about image quality; they check that the real and generated paths agree, the shapes and tags,
and the errors.
"""

import hashlib
import pickle

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format  # Keras's own writer of that layout.

from wgan_dist.config import validation as config_validation
from wgan_dist.dist import distribution
from wgan_dist.models import architectures as models
from wgan_dist.algorithm import random_keys
from wgan_dist import train
from wgan_dist.eval import evaluator as evaluator_lib
from wgan_dist.eval import inception as inception_lib
from wgan_dist.eval import protocol

SIZE = inception_lib.MIN_IMAGE_SIZE
NUM = 16  # Evaluation samples and real images (two global batches of 8).


def _save_legacy_h5(model: keras.Model, path) -> None:
  with h5py.File(path, 'w') as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.fixture(scope='module')
def weights_path(tmp_path_factory):
  """Random InceptionV3 weights as a legacy .h5, with He-scaled convolutions.

  Keras's default Glorot init shrinks ReLU activations by about sqrt(2) per layer, which leaves
  the pool features near 1e-5 and FIDs near 1e-10, too close to rounding to tell 'same' from
  'different'; He scaling keeps them at unit scale, as trained weights are.
  """
  keras.utils.set_random_seed(0)
  model = inception_lib.build_inception(SIZE)
  rng = np.random.default_rng(0)
  for layer in model.layers:
    if isinstance(layer, keras.layers.Conv2D):
      shape = layer.kernel.shape
      layer.kernel.assign(rng.normal(0, np.sqrt(2 / np.prod(shape[:-1])), shape).astype('f4'))
  path = tmp_path_factory.mktemp('inception') / inception_lib.WEIGHTS_FILE
  _save_legacy_h5(model, path)
  return str(path)


def _strategy(replicas: int = 1) -> tf.distribute.Strategy:
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  config = cifar10.get_config('tiny')
  config.distribution.cpu_replicas = replicas
  config.distribution.strategy = 'mirrored' if replicas > 1 else 'one_device'
  return distribution.create_strategy(config)


def _config(npz_path: str, weights: str, **overrides):
  """configs/cifar10.py:tiny on an .npz of 32x32x3 images, NUM evaluation samples."""
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  config = cifar10.get_config('tiny')
  config.data.source, config.data.path = 'npz', str(npz_path)
  config.eval_inception_weights = weights
  config.num_eval_samples = NUM
  for field, value in overrides.items():
    parent = config
    *parents, name = field.split('.')
    for part in parents:
      parent = parent[part]
    parent[name] = value
  return config


def _generator(config) -> keras.Model:
  keras.utils.set_random_seed(1)
  generator, _ = models.build_models(config)
  return generator


def _evaluation_images(config, generator, num: int) -> np.ndarray:
  """The first `num` images the Evaluator generates: one global batch of noise per batch index,
  keyed as the evaluator documents it (seed, batch index, EVAL_NOISE)."""
  batches = []
  for index in range(-(-num // config.train.global_batch_size)):
    noise = tf.random.stateless_normal(
        [config.train.global_batch_size, config.model.noise_dim],
        seed=random_keys.key(config.seed, tf.constant(index, tf.int64), 0,
                             random_keys.EVAL_NOISE))
    batches.append(generator(noise, training=False).numpy())
  return np.concatenate(batches)[:num]


def test_weights_load_into_any_input_size(weights_path):
  # The docstring's claim: one file for the 299x299 network and the tests' 75x75 one.
  small = inception_lib.load_inception(weights_path, SIZE)
  full = inception_lib.load_inception(weights_path)
  assert full.input.shape[1:] == (299, 299, 3) and small.input.shape[1:] == (SIZE, SIZE, 3)
  for got, want in zip(full.get_weights(), small.get_weights()):
    np.testing.assert_array_equal(got, want)
  images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
  features = inception_lib.feature_model(small, (32, 32, 1))
  gray, gray_p = features(images)
  rgb, rgb_p = inception_lib.feature_model(small, (32, 32, 3))(np.repeat(images, 3, axis=-1))
  assert gray.shape == (2, inception_lib.NUM_FEATURES) and gray_p.shape == (2, 1000)
  np.testing.assert_allclose(gray, rgb, rtol=1e-6)  # Grayscale is replicated to RGB.
  np.testing.assert_allclose(np.sum(gray_p, axis=1), 1.0, rtol=1e-5)


def test_features_do_not_depend_on_the_call_mode(weights_path):
  # Eager, inside tf.function, without a training argument or with training=True: the same
  # features, and no call changes later ones (the network is frozen: batch normalisation
  # always uses its moving statistics). Before the fix a plain call differed by 2.6x the
  # features' scale and moved later training=False features by 13%.
  features = inception_lib.feature_model(inception_lib.load_inception(weights_path, SIZE),
                                         (32, 32, 3))
  x = np.random.default_rng(3).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
  want = features(x, training=False)[0].numpy()
  traced = tf.function(lambda images: features(images, training=False))
  for got in (features(x)[0], features(x, training=True)[0], traced(tf.constant(x))[0],
              features(x, training=False)[0]):
    np.testing.assert_array_equal(got.numpy(), want)
  # One image at a time: the same up to float32 accumulation order (measured 7.5e-7).
  single = np.concatenate([features(x[i:i + 1], training=False)[0].numpy() for i in range(4)])
  np.testing.assert_allclose(single, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.slow
def test_generated_against_the_same_images_as_real_is_zero(weights_path, tmp_path):
  config = _config(tmp_path / 'same.npz', weights_path)
  generator = _generator(config)
  images = _evaluation_images(config, generator, NUM)
  # Stored as floats in [0, 1]; the pipeline maps them back to the generator's [-1, 1].
  np.savez(tmp_path / 'same.npz', x=((images + 1) / 2).astype(np.float32))
  rng = np.random.default_rng(2)
  np.savez(tmp_path / 'other.npz', x=rng.integers(0, 256, (NUM, 32, 32, 3), dtype=np.uint8))
  strategy = _strategy()

  same = evaluator_lib.Evaluator(config, strategy, inception_size=SIZE)
  features, probabilities = same.outputs(generator)
  assert features.shape == (NUM, 2048) and probabilities.shape == (NUM, 1000)
  evaluation = same.evaluate(generator)
  scalars = evaluation.scalars
  assert tuple(scalars) == evaluator_lib.INCEPTION_SCALAR_TAGS == same.scalar_tags
  assert same.backbone == 'inception' and same.num_real == NUM
  assert evaluation.class_histogram is None and evaluator_lib.class_share_scalars(None) == {}
  assert all(np.isfinite(value) for value in scalars.values())
  assert 1.0 <= scalars['eval/inception_score'] <= 1000.0

  other = evaluator_lib.Evaluator(_config(tmp_path / 'other.npz', weights_path), strategy,
                                  inception_size=SIZE).evaluate(generator).scalars
  assert other['eval/fid'] > 1.0  # Feature variances are O(1): clearly apart.
  # The same images (in another order, other batches) through the real and generated paths.
  assert scalars['eval/fid'] < 1e-6 * other['eval/fid'], (scalars, other)
  assert other['eval/inception_score'] == pytest.approx(scalars['eval/inception_score'],
                                                        rel=1e-9)  # Generated side only.


@pytest.mark.slow
def test_reference_is_embedded_one_replica_batch_at_a_time(weights_path, tmp_path):
  """On 2 replicas the real images go through InceptionV3 4 at a time (not the global 8), and
  still score FID ~0 against the same images generated."""
  config = _config(tmp_path / 'same.npz', weights_path)
  generator = _generator(config)
  images = _evaluation_images(config, generator, NUM)
  np.savez(tmp_path / 'same.npz', x=((images + 1) / 2).astype(np.float32))
  evaluator = evaluator_lib.Evaluator(config, _strategy(2), inception_size=SIZE)
  assert config.train.global_batch_size == 8 and evaluator.reference_batch_size == 4
  fid = evaluator.evaluate(generator).scalars['eval/fid']
  assert abs(fid) < 1e-5, fid


@pytest.mark.slow
def test_conditional_generators_keep_the_inception_metrics(weights_path, tmp_path):
  # A class-conditional wrapper of a generator that leaves the label without effect: the
  # conditional path must draw the same z (so score the same), give balanced labels on 1 and 2
  # replicas, and log the two Inception tags only (no conditional accuracy, no intra-FID).
  rng = np.random.default_rng(5)
  np.savez(tmp_path / 'x.npz', x=rng.integers(0, 256, (NUM, 32, 32, 3), dtype=np.uint8),
           y=rng.integers(0, 10, NUM))
  config = _config(tmp_path / 'x.npz', weights_path)
  conditional_config = _config(tmp_path / 'x.npz', weights_path, **{'model.num_classes': 10})
  config_validation.validate(conditional_config)
  generator = _generator(config)
  z = keras.Input((config.model.noise_dim,), name='z')
  label = keras.Input((), dtype='int32', name='label')
  image = keras.layers.Lambda(
      lambda inputs: inputs[0] + 0.0 * tf.cast(inputs[1], tf.float32)[:, None, None, None])(
          [generator(z), label])
  conditional = keras.Model([z, label], image)
  plain = evaluator_lib.Evaluator(config, _strategy(), inception_size=SIZE).evaluate(generator)
  for replicas in (1, 2):
    evaluator = evaluator_lib.Evaluator(conditional_config, _strategy(replicas),
                                        inception_size=SIZE)
    evaluation = evaluator.evaluate(conditional)
    assert evaluator.scalar_tags == tuple(evaluation.scalars) == (
        evaluator_lib.INCEPTION_SCALAR_TAGS)
    assert evaluation.class_histogram is None and evaluation.class_fids is None
    for tag, value in plain.scalars.items():
      assert evaluation.scalars[tag] == pytest.approx(value, rel=1e-5), (replicas, tag)
    np.testing.assert_array_equal(evaluator.labelled_outputs(conditional)[2],
                                  np.arange(NUM) % 10)


def test_reference_is_a_fixed_subset_of_the_training_images(tmp_path):
  images = np.arange(50, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
  np.savez(tmp_path / 'x.npz', x=images)
  config = _config(tmp_path / 'x.npz', 'unused.h5', num_eval_samples=20)
  first = evaluator_lib.reference_images(config)
  assert first.shape == (20, 32, 32, 3) and first.dtype == np.float32
  picked = np.round((first[:, 0, 0, 0] + 1) * 127.5).astype(int)
  assert len(set(picked)) == 20 and set(picked) <= set(range(50))
  assert set(picked) != set(range(20))  # A spread-out subset, not the first images.
  np.testing.assert_array_equal(np.sort(picked), np.sort(np.round(
      (evaluator_lib.reference_images(config)[:, 0, 0, 0] + 1) * 127.5).astype(int)))


def test_cifar10_reference_is_the_cached_test_split(tmp_path, monkeypatch):
  # A cache laid out as Keras 3 extracts it, holding a test batch in CIFAR-10's own format:
  # rows of 3072 bytes, the 1024 red, then green, then blue pixels of a 32x32 image.
  rng = np.random.default_rng(3)
  test = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
  folder = tmp_path / 'datasets' / 'cifar-10-batches-py-target' / 'cifar-10-batches-py'
  folder.mkdir(parents=True)
  with open(folder / 'test_batch', 'wb') as f:
    pickle.dump({b'data': test.transpose(0, 3, 1, 2).reshape(10, 3072), b'labels': [0] * 10}, f)
  monkeypatch.setenv('KERAS_HOME', str(tmp_path))
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  config = cifar10.get_config('tiny')
  config.eval_inception_weights, config.num_eval_samples = 'unused.h5', 6
  real = evaluator_lib.reference_images(config)
  # The first 6, in [-1, 1], each once (in the pipeline's shuffled order).
  expected = test[:6].astype(np.float32) / 127.5 - 1
  matches = [int(np.argmin(np.abs(expected - image).reshape(6, -1).max(axis=1)))
             for image in real]
  assert sorted(matches) == list(range(6))
  np.testing.assert_allclose(real, expected[matches], atol=1e-6)


def test_without_weights_rgb_evaluation_is_off_with_a_hint(tmp_path, caplog):
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  config = cifar10.get_config('tiny')
  assert evaluator_lib.make_evaluator(config, _strategy()) is None
  warnings = [r.getMessage() for r in caplog.records if 'Evaluation off' in r.getMessage()]
  assert len(warnings) == 1
  assert ("data.source='cifar10'" in warnings[0] and
          f'--config.eval_inception_weights=/path/{inception_lib.WEIGHTS_FILE}' in warnings[0] and
          inception_lib.WEIGHTS_URL in warnings[0]), warnings[0]
  with pytest.raises(evaluator_lib.UnsupportedEvaluation, match='eval_inception_weights'):
    evaluator_lib.Evaluator(config, _strategy())


@pytest.mark.slow
def test_missing_or_wrong_weights_are_errors_naming_the_path(tmp_path, weights_path):
  missing = str(tmp_path / 'nowhere' / inception_lib.WEIGHTS_FILE)
  with pytest.raises(inception_lib.InceptionWeightsError, match='is not an existing file') as info:
    inception_lib.load_inception(missing, SIZE)
  assert repr(missing) in str(info.value) and inception_lib.WEIGHTS_URL in str(info.value)
  # A ConfigError: main.py prints it as one `error:` line.
  assert isinstance(info.value, config_validation.ConfigError)

  not_hdf5 = tmp_path / 'inception.h5'
  not_hdf5.write_text('not weights')
  keras.utils.set_random_seed(0)
  no_top = keras.applications.InceptionV3(include_top=False, weights=None,
                                          input_shape=(SIZE, SIZE, 3))
  notop_path = tmp_path / 'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5'
  _save_legacy_h5(no_top, notop_path)
  from wgan_dist.eval import classifier  # pylint: disable=import-outside-toplevel
  for wrong in (str(not_hdf5), str(notop_path), classifier.WEIGHTS_PATH):
    with pytest.raises(inception_lib.InceptionWeightsError, match='does not load') as info:
      inception_lib.load_inception(wrong, SIZE)
    assert repr(wrong) in str(info.value) and inception_lib.WEIGHTS_FILE in str(info.value)
  # Through the evaluator as training builds it.
  config = _config(tmp_path / 'unused.npz', str(notop_path))
  with pytest.raises(inception_lib.InceptionWeightsError, match='_notop'):
    evaluator_lib.Evaluator(config, _strategy(), inception_size=SIZE)


@pytest.mark.slow
def test_training_logs_inception_scalars(weights_path, tmp_path):
  # train.py's own evaluation path, at InceptionV3's full 299x299: one evaluation at the last
  # step; no class shares (no histogram over 1000 classes).
  from tests import helpers  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(4)
  np.savez(tmp_path / 'x.npz', x=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8))
  config = _config(tmp_path / 'x.npz', weights_path, num_eval_samples=8, eval_every_steps=4)
  config.distribution.strategy = 'one_device'
  config_validation.validate(config)
  train.train_and_evaluate(config, str(tmp_path / 'run'))
  fid = helpers.event_scalars(str(tmp_path / 'run'), 'eval/fid')
  score = helpers.event_scalars(str(tmp_path / 'run'), 'eval/inception_score')
  assert list(fid) == list(score) == [4]
  assert np.isfinite(fid[4]) and fid[4] > 0 and 1 <= score[4] <= 1000
  assert helpers.event_scalars(str(tmp_path / 'run'), 'eval_class_share/0') == {}


@pytest.mark.parametrize('num1, num2, dim', [(40, 30, 100), (200, 150, 100), (300, 300, 512)])
def test_frechet_distance_from_fewer_samples_than_dimensions(num1, num2, dim):
  # The sample route (n < D, as 1,000 Inception vectors of 2,048) against the covariance route.
  from wgan_dist.eval import metrics  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(num1)
  mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
  x = rng.normal(size=(num1, dim)) @ mixing
  y = (rng.normal(size=(num2, dim)) * 1.5 + 0.2) @ mixing
  expected = metrics.frechet_distance(*metrics.statistics(x), *metrics.statistics(y))
  # 1e-6, not 1e-9: with n < D the covariance route takes square roots of eigenvalues that are 0
  # up to rounding (~1e-14 -> ~1e-7 each); the sample route has no such null space.
  assert metrics.frechet_distance_of_features(x, y) == pytest.approx(expected, rel=1e-6)
  assert metrics.frechet_distance_of_features(x, x) == pytest.approx(0, abs=1e-9 * expected)


def test_generated_images_are_quantised_before_inception_too(weights_path, tmp_path):
  # As for MNIST (tests/test_eval_protocol.py): the features of the generated path are those
  # of the images rounded to uint8 as a saved PNG holds them, then resized.
  rng = np.random.default_rng(3)
  np.savez(tmp_path / 'x.npz', x=rng.integers(0, 256, (NUM, 32, 32, 3), dtype=np.uint8))
  config = _config(tmp_path / 'x.npz', weights_path)
  generator = _generator(config)
  evaluator = evaluator_lib.Evaluator(config, _strategy(), inception_size=SIZE)
  features, _ = evaluator.outputs(generator)
  images = _evaluation_images(config, generator, NUM)
  # Through the evaluator's own network in a tf.function, as its generated path runs (these
  # random-weights features differ between eager and graph calls).
  model = tf.function(lambda x: evaluator._features(x, training=False)[0])  # pylint: disable=protected-access
  quantised = model(tf.constant(protocol.quantise_numpy(images))).numpy()
  raw = model(tf.constant(images)).numpy()
  scale = np.max(np.abs(quantised))
  np.testing.assert_allclose(features, quantised, rtol=1e-4, atol=1e-4 * scale)
  assert np.max(np.abs(features - raw)) > 10 * np.max(np.abs(features - quantised))
  fields = evaluator.protocol
  assert fields['resize'] == f'bilinear 32x32 -> {SIZE}x{SIZE}'
  assert fields['feature_weights_sha256'] == hashlib.sha256(
      open(weights_path, 'rb').read()).hexdigest()  # pylint: disable=consider-using-with
  assert fields['reference_split'].startswith('npz training images')
  assert not evaluator.reference.held_out
