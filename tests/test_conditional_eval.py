"""Evaluation of class-conditional generators (wgan_dist/eval/evaluator.py, metrics.py).

The generators here are stand-ins with the conditional interface (a Keras model with inputs
[z, label]) that return *real* digits by table lookup: the noise vector picks which one. Their
keys are the very noise vectors the evaluator draws (keyed as its docstring says), so the
sample of global index i is found exactly, and the figures are known in advance:
- `held_out`: sample i asks for label i mod 10 and gets held-out digit i // 10 of that class, so
  each class's samples are exactly that class's 100 held-out images: intra-FID and FID are 0
  and the conditional accuracy is the classifier's held-out accuracy.
- `train`: the same with the first 100 train-split digits of each class: intra-FID is exactly
  the real-data floor that classifier.held_out_report states.
- `shifted`: ignores the label's meaning, returns class (y + 1) mod 10: conditional accuracy
  near 0, every class's distance that of two different digits.
- `ignoring`: ignores the label altogether, returns held-out digit i for sample i (the split's
  shuffled, class-mixed order): conditional accuracy about 1 / 10.
"""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from wgan_dist.config import validation as config_validation
from wgan_dist.dist import distribution
from wgan_dist.algorithm import random_keys
from wgan_dist import train
from wgan_dist.training import evaluate_action
from wgan_dist.eval import classifier as classifier_lib
from wgan_dist.eval import evaluator as evaluator_lib
from wgan_dist.eval import metrics

NUM_CLASSES = 10
PER_CLASS = 100  # Held-out digits per class in the embedded split.
NUM = NUM_CLASSES * PER_CLASS  # The default num_eval_samples.
BATCH = 64  # Global batch: 16 evaluation batches, the last one cut (the remainder path).


def _config():
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.model.num_classes = NUM_CLASSES
  config.train.global_batch_size = BATCH
  config.num_eval_samples = NUM
  config_validation.validate(config)
  return config


def _strategy(config, replicas: int) -> tf.distribute.Strategy:
  config = config.copy_and_resolve_references()
  config.distribution.cpu_replicas = replicas
  config.distribution.strategy = 'mirrored' if replicas > 1 else 'one_device'
  strategy = distribution.create_strategy(config)
  assert strategy.num_replicas_in_sync == replicas
  return strategy


def _evaluation_noise(config, num: int) -> np.ndarray:
  """The z of the first `num` evaluation samples, as the evaluator documents them."""
  batch = config.train.global_batch_size
  return np.concatenate([tf.random.stateless_normal(
      [batch, config.model.noise_dim],
      seed=random_keys.key(config.seed, tf.constant(index, tf.int64), 0,
                           random_keys.EVAL_NOISE)).numpy()
                         for index in range(-(-num // batch))])[:num]


class _Lookup(keras.layers.Layer):
  """(z, label) -> table[(label + shift) mod K, (index of z among keys) // K]."""

  def __init__(self, keys: np.ndarray, table: np.ndarray, shift: int, **kwargs):
    super().__init__(**kwargs)
    self._keys = tf.constant(keys, tf.float32)
    self._table = tf.constant(table, tf.float32)
    self._shift = shift

  def call(self, inputs):
    z, label = inputs
    distances = tf.reduce_sum(tf.square(z[:, None, :] - self._keys[None]), axis=-1)
    position = tf.cast(tf.argmin(distances, axis=1), tf.int32) // NUM_CLASSES
    kind = tf.math.floormod(tf.cast(label, tf.int32) + self._shift, NUM_CLASSES)
    return tf.gather_nd(self._table, tf.stack([kind, position], axis=1))

  def compute_output_shape(self, input_shape):
    return (input_shape[0][0],) + tuple(self._table.shape[2:])


class _IgnoreLabel(keras.layers.Layer):
  """(z, label) -> images[index of z among keys]: the label has no effect."""

  def __init__(self, keys: np.ndarray, images: np.ndarray, **kwargs):
    super().__init__(**kwargs)
    self._keys = tf.constant(keys, tf.float32)
    self._images = tf.constant(images, tf.float32)

  def call(self, inputs):
    z, label = inputs
    distances = tf.reduce_sum(tf.square(z[:, None, :] - self._keys[None]), axis=-1)
    return (tf.gather(self._images, tf.argmin(distances, axis=1))
            + 0.0 * tf.cast(label, tf.float32)[:, None, None, None])

  def compute_output_shape(self, input_shape):
    return (input_shape[0][0],) + tuple(self._images.shape[1:])


def _inputs(config) -> list:
  return [keras.Input((config.model.noise_dim,), name='z'),
          keras.Input((), dtype='int32', name='label')]


def _generator(config, images: np.ndarray, labels: np.ndarray, shift: int = 0) -> keras.Model:
  """A conditional stand-in over uint8 `images` with `labels` (the first PER_CLASS per class)."""
  rows = classifier_lib.first_per_class(labels, PER_CLASS)
  table = np.stack([classifier_lib.to_model_range(images[rows][labels[rows] == k])
                    for k in range(NUM_CLASSES)])  # [10, 100, 28, 28, 1]
  inputs = _inputs(config)
  image = _Lookup(_evaluation_noise(config, NUM), table, shift, name='lookup')(inputs)
  return keras.Model(inputs, image, name=f'lookup_generator_{shift}')


@pytest.fixture(scope='module')
def split():
  return classifier_lib.embedded_split()


@pytest.fixture(scope='module')
def real_figures(split):
  return classifier_lib.held_out_report(classifier_lib.load_classifier(), split)


@pytest.fixture(scope='module')
def evaluations(split):
  """{replicas: {generator kind: Evaluation, 'labels': the labels the generators got}}: every
  kind on 1 replica, 'shifted' on 2."""
  config = _config()
  results = {}
  for replicas in (1, 2):
    evaluator = evaluator_lib.Evaluator(config, _strategy(config, replicas))
    assert evaluator.scalar_tags == (evaluator_lib.SCALAR_TAGS +
                                     evaluator_lib.CONDITIONAL_SCALAR_TAGS)
    generators = {
        'held_out': _generator(config, split.held_out_images, split.held_out_labels),
        'train': _generator(config, split.train_images, split.train_labels),
        'shifted': _generator(config, split.held_out_images, split.held_out_labels, shift=1),
        'ignoring': keras.Model(inputs := _inputs(config), _IgnoreLabel(
            _evaluation_noise(config, NUM),
            classifier_lib.to_model_range(split.held_out_images))(inputs))}
    # Two replicas evaluate one generator only (the comparison needs one with label-dependent,
    # non-trivial figures): every evaluation costs a pass of the classifier over 1,000 images.
    kinds = generators if replicas == 1 else ('shifted',)
    results[replicas] = {kind: evaluator.evaluate(generators[kind]) for kind in kinds}
    results[replicas]['labels'] = evaluator.labelled_outputs(generators['shifted'])[2]
  return results


def test_labels_are_balanced_and_keyed_on_the_global_index(evaluations):
  expected = np.arange(NUM) % NUM_CLASSES
  for replicas in (1, 2):
    labels = evaluations[replicas]['labels']
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, expected, err_msg=f'{replicas} replicas')
  np.testing.assert_array_equal(np.bincount(expected), [PER_CLASS] * NUM_CLASSES)
  # The graph's labels for a later batch, as a check of the batch offset.
  np.testing.assert_array_equal(evaluator_lib.eval_labels(tf.constant(3, tf.int64), 7, 4),
                                (21 + np.arange(7)) % 4)


def test_held_out_lookup_scores_the_classifiers_own_accuracy_and_zero_distances(
    evaluations, real_figures):
  evaluation = evaluations[1]['held_out']
  scalars = evaluation.scalars
  assert tuple(scalars) == evaluator_lib.SCALAR_TAGS + evaluator_lib.CONDITIONAL_SCALAR_TAGS
  # The same 1,000 images the classifier's held-out accuracy is measured on; one image's
  # near-tie may round the other way in another batch.
  assert scalars['eval/conditional_accuracy'] == pytest.approx(
      real_figures['held_out_accuracy'], abs=1.5e-3)
  assert scalars['eval/conditional_accuracy'] > 0.95
  # Each class's samples are that class's real images: 0 up to float32 feature rounding, far
  # below the floor of two different real samples.
  floor = real_figures['real_intra_fid_floor']
  assert scalars['eval/intra_fid'] < 1e-3 * floor
  assert np.all(evaluation.class_fids < 1e-3 * floor) and evaluation.class_fids.shape == (10,)
  assert scalars['eval/fid'] < 1e-3 * real_figures['real_fid_floor']
  np.testing.assert_allclose(evaluation.class_histogram, 0.1, atol=0.01)


def test_train_lookup_scores_the_intra_fid_floor(evaluations, real_figures):
  evaluation = evaluations[1]['train']
  # Per class the first 100 train-split digits against the 100 held-out ones: the floor's
  # definition, so the same value (to float32 feature rounding).
  assert evaluation.scalars['eval/intra_fid'] == pytest.approx(
      real_figures['real_intra_fid_floor'], rel=1e-4)
  assert evaluation.scalars['eval/conditional_accuracy'] > 0.95  # Digits it was trained on.


@pytest.fixture(scope='module')
def held_out_outputs(split):
  """The classifier's (features, predicted class) of the held-out digits, in split order."""
  features, probabilities = classifier_lib.feature_model(classifier_lib.load_classifier())(
      classifier_lib.to_model_range(split.held_out_images))
  return features.numpy(), np.argmax(probabilities.numpy(), axis=1)


def test_a_generator_shifting_its_labels_scores_near_zero_accuracy(evaluations, split,
                                                                   real_figures,
                                                                   held_out_outputs):
  shifted = evaluations[1]['shifted']
  features, predicted = held_out_outputs
  labels = split.held_out_labels
  # The held-out digits of class k + 1 the classifier calls k (docs/evaluation.md: 0.002).
  expected_accuracy = np.mean(predicted == (labels - 1) % 10)
  assert shifted.scalars['eval/conditional_accuracy'] == pytest.approx(expected_accuracy,
                                                                        abs=1.5e-3)
  assert shifted.scalars['eval/conditional_accuracy'] == pytest.approx(0.002, abs=1.5e-3)
  # Class k's samples are held-out digits k + 1: its distance is that of two real digits.
  expected = [metrics.frechet_distance_of_features(features[labels == (k + 1) % 10],
                                                   features[labels == k]) for k in range(10)]
  np.testing.assert_allclose(shifted.class_fids, expected, rtol=1e-3)
  assert shifted.scalars['eval/intra_fid'] > 10 * real_figures['real_intra_fid_floor']
  # The unconditional metrics cannot see the mistake: the same 1,000 images in another order.
  held_out = evaluations[1]['held_out']
  assert shifted.scalars['eval/fid'] < 1e-3 * real_figures['real_fid_floor']
  assert shifted.scalars['eval/classifier_score'] == pytest.approx(
      held_out.scalars['eval/classifier_score'], rel=1e-4)


def test_a_generator_ignoring_its_labels_scores_about_a_tenth(evaluations, split,
                                                              held_out_outputs):
  ignoring, labels = evaluations[1]['ignoring'], evaluations[1]['labels']
  _, predicted = held_out_outputs
  expected = np.mean(predicted == labels)  # Sample i: held-out digit i, asked for i mod 10.
  assert ignoring.scalars['eval/conditional_accuracy'] == pytest.approx(expected, abs=1.5e-3)
  assert 0.05 < ignoring.scalars['eval/conditional_accuracy'] < 0.15
  assert ignoring.scalars['eval/fid'] < 1e-3  # The 1,000 held-out digits, each once.


def test_the_intra_fid_floor_figures_the_docs_state(evaluations, split, held_out_outputs):
  # docs/evaluation.md: per digit the floor runs from 7.2 to 35.7 (the train lookup's class
  # distances are exactly those floors); other disjoint train samples of 100 per digit give 13.5
  # to 14.3; 100 vs 100 mixed digits score 36 on average (10 disjoint pairs).
  train_lookup = evaluations[1]['train']
  assert min(train_lookup.class_fids) == pytest.approx(7.2, abs=0.05)
  assert max(train_lookup.class_fids) == pytest.approx(35.7, abs=0.05)
  held_features, _ = held_out_outputs
  train_features, _ = classifier_lib.feature_model(classifier_lib.load_classifier())(
      classifier_lib.to_model_range(split.train_images))
  train_features, train_labels = train_features.numpy(), split.train_labels
  floors = []
  for start in range(0, 400, 100):
    rows = np.concatenate([np.flatnonzero(train_labels == k)[start:start + 100]
                           for k in range(10)])
    floors.append(metrics.intra_frechet_distance(train_features[rows], train_labels[rows],
                                                 held_features, split.held_out_labels, 10))
  assert floors[0] == pytest.approx(train_lookup.scalars['eval/intra_fid'], rel=1e-4)
  assert min(floors) == pytest.approx(13.5, abs=0.05) and max(floors) == pytest.approx(14.3,
                                                                                       abs=0.05)
  mixed = np.mean([metrics.frechet_distance_of_features(train_features[i:i + 100],
                                                        held_features[i:i + 100])
                   for i in range(0, 1000, 100)])
  assert mixed == pytest.approx(36, abs=0.5)


def test_one_and_two_replicas_give_the_same_figures(evaluations):
  for kind in ('shifted',):
    one, two = evaluations[1][kind], evaluations[2][kind]
    assert tuple(one.scalars) == tuple(two.scalars)
    for tag in one.scalars:
      assert two.scalars[tag] == pytest.approx(one.scalars[tag], rel=1e-4, abs=1e-6), (kind, tag)
    np.testing.assert_allclose(two.class_fids, one.class_fids, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(two.class_histogram, one.class_histogram)


def test_ema_generator_gets_the_same_conditional_tags(split):
  # The evaluate action's evaluation of a state with an EMA generator (the state stands in for a
  # TrainState: conditional models are built elsewhere).
  config = _config()
  config.num_eval_samples = 200  # 20 per class: enough for finite figures here.
  evaluator = evaluator_lib.Evaluator(config, _strategy(config, 1))
  tags = evaluator_lib.metric_tags(evaluator, with_ema=True)
  for tag in evaluator_lib.CONDITIONAL_SCALAR_TAGS:
    assert tag in tags and tag.replace('eval/', 'eval_ema/') in tags
  state = types.SimpleNamespace(
      generator=_generator(config, split.held_out_images, split.held_out_labels),
      ema_generator=_generator(config, split.held_out_images, split.held_out_labels, shift=1))
  scalars = evaluate_action.evaluate(evaluator, state)
  assert scalars['eval/conditional_accuracy'] > 0.9
  assert scalars['eval_ema/conditional_accuracy'] < 0.05
  assert scalars['eval_ema/intra_fid'] > scalars['eval/intra_fid']
  assert {tag for tag in scalars if not tag.split('/')[1].startswith('class_share_')} == set(tags)


@pytest.mark.parametrize('field, value, expected', [
    ('model.num_classes', 5, "model.num_classes=5 is not allowed with the MNIST evaluation; "
                             "allowed: 0 (unconditional) or 10"),
    ('num_eval_samples', 19, 'num_eval_samples=19 is not allowed with model.num_classes=10; '
                             'allowed: >= 20'),
])
def test_conditional_configs_it_cannot_score_are_one_line_errors(field, value, expected):
  config = _config()
  section, _, name = field.rpartition('.')
  (config[section] if section else config)[name] = value
  assert evaluator_lib.conditional_error(config).startswith(expected)
  with pytest.raises(config_validation.ConfigError, match=expected.split(';')[0]):
    evaluator_lib.Evaluator(config, _strategy(config, 1))
  evaluator = evaluator_lib.Evaluator(_config(), _strategy(config, 1))
  with pytest.raises(ValueError, match='num_samples=19: intra-FID needs at least 2 samples per '
                                       'class, >= 20'):
    evaluator.labelled_outputs(None, 19)


def _reference_frechet(x: np.ndarray, y: np.ndarray) -> float:
  """Float64 Fréchet distance by the textbook formula, tr (Σ₁Σ₂)^½ from the eigenvalues of the
  (non-symmetric) product: another route than metrics' symmetric square roots."""
  def moments(f):
    mean = f.sum(axis=0) / len(f)
    centred = f - mean
    return mean, centred.T @ centred / (len(f) - 1)
  (mu1, sigma1), (mu2, sigma2) = moments(x), moments(y)
  eigenvalues = np.linalg.eigvals(sigma1 @ sigma2)
  trace_sqrt = np.sum(np.sqrt(np.clip(eigenvalues.real, 0, None)))
  return float(np.sum((mu1 - mu2)**2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def test_class_frechet_distances_match_a_float64_reference():
  rng = np.random.default_rng(0)
  dim, num_classes = 5, 3
  counts1, counts2 = (40, 25, 60), (30, 50, 20)
  labels1 = rng.permutation(np.repeat(np.arange(num_classes), counts1))
  labels2 = rng.permutation(np.repeat(np.arange(num_classes), counts2))
  mixing = rng.normal(size=(num_classes, dim, dim))
  # Each class its own mean and correlated covariance, the two sets apart.
  def draw(labels):
    return np.einsum('nd,nde->ne', rng.normal(size=(len(labels), dim)), mixing[labels])
  x = draw(labels1) + labels1[:, None]
  y = draw(labels2) * 1.3 + 0.5 * labels2[:, None] + 0.2
  expected = [_reference_frechet(x[labels1 == k], y[labels2 == k]) for k in range(num_classes)]
  got = metrics.class_frechet_distances(x, labels1, y, labels2, num_classes)
  np.testing.assert_allclose(got, expected, rtol=1e-9)
  assert metrics.intra_frechet_distance(x, labels1, y, labels2, num_classes) == pytest.approx(
      np.mean(expected), rel=1e-9)
  assert min(expected) > 0.1  # Not a trivial case.
  keep = np.setdiff1d(np.arange(len(labels1)), np.flatnonzero(labels1 == 2)[1:])  # One of 2.
  with pytest.raises(ValueError, match='class 2 has 1 and 20 samples'):
    metrics.class_frechet_distances(x[keep], labels1[keep], y, labels2, num_classes)


def test_conditional_accuracy_counts_argmax_matches():
  probabilities = np.eye(4)[[0, 1, 2, 3, 0]] * 0.6 + 0.1
  assert metrics.conditional_accuracy(probabilities, [0, 1, 2, 0, 1]) == pytest.approx(0.6)
  assert metrics.conditional_accuracy(probabilities, [1, 2, 3, 0, 1]) == 0.0
  with pytest.raises(ValueError, match=r'labels \[N\]'):
    metrics.conditional_accuracy(probabilities, [0, 1])


def test_training_refuses_a_config_the_evaluation_cannot_score_before_any_work(tmp_path):
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.model.num_classes = 12  # The embedded digits fit, the MNIST classifier's ten do not.
  config.eval_every_steps = 2
  workdir = tmp_path / 'run'
  with pytest.raises(config_validation.ConfigError,
                     match='model.num_classes=12 is not allowed with the MNIST evaluation'):
    train.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()
