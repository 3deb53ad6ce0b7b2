"""The evaluator's KID / precision / recall, noise draws, quantisation, protocol, records,
memorisation, and `evaluate --all_checkpoints --seeds` (wgan_dist/eval, tools/history.py).

Stand-in generators return real MNIST digits by looking their exact evaluation noise up (as in
tests/test_conditional_eval.py), so some figures are known in advance.
"""

import hashlib
import json
import os
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from wgan_dist import train
from wgan_dist.algorithm import random_keys
from wgan_dist.data import limit as limit_lib
from wgan_dist.data import sources
from wgan_dist.dist import distribution
from wgan_dist.eval import classifier as classifier_lib
from wgan_dist.eval import density_coverage
from wgan_dist.eval import evaluator as evaluator_lib
from wgan_dist.eval import kid
from wgan_dist.eval import precision_recall
from wgan_dist.eval import protocol
from wgan_dist.eval import records
from wgan_dist.eval import reference
from wgan_dist.models import architectures as models
from wgan_dist.training import evaluate_action

NUM = 200
BATCH = 50


def _config():
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.train.global_batch_size = BATCH
  config.num_eval_samples = NUM
  return config


def _strategy(config, replicas: int = 1) -> tf.distribute.Strategy:
  config = config.copy_and_resolve_references()
  config.distribution.cpu_replicas = replicas
  config.distribution.strategy = 'mirrored' if replicas > 1 else 'one_device'
  return distribution.create_strategy(config)


def _evaluation_noise(config, num: int, draw: int = 0) -> np.ndarray:
  """The z of the first `num` samples of noise draw `draw`, as the evaluator documents them."""
  batch = config.train.global_batch_size
  return np.concatenate([tf.random.stateless_normal(
      [batch, config.model.noise_dim],
      seed=random_keys.key(config.seed, tf.constant(index, tf.int64), draw,
                           random_keys.EVAL_NOISE)).numpy()
                         for index in range(-(-num // batch))])[:num]


class _Lookup(keras.layers.Layer):
  """z -> images[index of the nearest key]: sample i of draw 0 is images[i]."""

  def __init__(self, keys: np.ndarray, images: np.ndarray, **kwargs):
    super().__init__(**kwargs)
    self._keys = tf.constant(keys, tf.float32)
    self._images = tf.constant(images, tf.float32)

  def call(self, z):
    distances = tf.reduce_sum(tf.square(z[:, None, :] - self._keys[None]), axis=-1)
    return tf.gather(self._images, tf.argmin(distances, axis=1))

  def compute_output_shape(self, input_shape):
    return (input_shape[0],) + tuple(self._images.shape[1:])


def _lookup_generator(config, images_uint8: np.ndarray) -> keras.Model:
  z = keras.Input((config.model.noise_dim,), name='z')
  images = classifier_lib.to_model_range(images_uint8[:NUM])
  return keras.Model(z, _Lookup(_evaluation_noise(config, NUM), images)(z))


@pytest.fixture(scope='module')
def setup():
  config = _config()
  strategy = _strategy(config)
  evaluator = evaluator_lib.Evaluator(config, strategy)
  with strategy.scope():
    keras.utils.set_random_seed(0)
    generator, _ = models.build_models(config)
  return config, strategy, evaluator, generator


def test_kid_precision_recall_are_the_metric_functions_on_the_fid_features(setup):
  config, _, evaluator, generator = setup
  evaluation = evaluator.evaluate(generator)
  assert tuple(evaluation.scalars) == evaluator_lib.SCALAR_TAGS == evaluator.scalar_tags
  features, _ = evaluator.outputs(generator)
  real = evaluator._real_features  # pylint: disable=protected-access
  mean, std, _ = kid.kernel_inception_distance(features, real)
  assert evaluation.scalars['eval/kid'] == mean and evaluation.kid_subset_std == std
  assert (evaluation.scalars['eval/precision'],
          evaluation.scalars['eval/recall']) == precision_recall.precision_recall(features, real)
  assert (evaluation.scalars['eval/density'], evaluation.scalars['eval/coverage']) == \
      density_coverage.density_coverage(features, real)
  assert evaluation.protocol['density_coverage_k'] == 5
  # An untrained generator: far from the digits.
  assert mean > 0.1 and evaluation.scalars['eval/recall'] < 0.05
  del config


def test_real_digits_score_near_zero_kid_and_high_precision(setup):
  config, _, evaluator, generator = setup
  split = classifier_lib.embedded_split()
  # Samples that are reference images: each lies inside its own ball.
  copies = evaluator.evaluate(_lookup_generator(config, split.held_out_images)).scalars
  assert copies['eval/precision'] == 1.0
  # ... and in its own ball of the density / coverage manifold: the balls of the 200 copied
  # reference digits (of 1,000) hold a sample at least, and others nearby.
  assert 0.2 <= copies['eval/coverage'] < 1.0
  # Other real digits (the train split): KID is unbiased, so near 0 beside a generator's.
  fresh_evaluation = evaluator.evaluate(_lookup_generator(config, split.train_images))
  fresh = fresh_evaluation.scalars
  untrained = evaluator.evaluate(generator).scalars
  # (200 samples, subsets of 100: a real-vs-real KID of a few units either way.)
  assert abs(fresh['eval/kid']) < 0.03 * untrained['eval/kid']
  assert abs(fresh['eval/kid']) < 2 * fresh_evaluation.kid_subset_std
  # The untrained generator's samples (all alike) fall inside real balls: precision alone
  # cannot tell; recall can.
  assert fresh['eval/precision'] > 0.9 and fresh['eval/recall'] > 0.8
  assert untrained['eval/recall'] < 0.05
  # Density / coverage: real digits about 1 (density counts balls per k, so around 1 for real
  # data). Coverage of M = 200 samples of the real distribution over N = 1,000 real balls
  # is about 1 - (N / (N + M))^k = 0.60 (Naeem et al.'s expectation, k = 5); measured 0.574.
  # The collapsed untrained generator covers almost no real ball.
  assert 0.7 < fresh['eval/density'] < 1.3 and 0.5 < fresh['eval/coverage'] < 0.7
  assert untrained['eval/coverage'] < 0.05


def test_noise_draws_give_means_and_stds_and_draw_zero_is_the_usual_noise(setup):
  _, _, evaluator, generator = setup
  one = evaluator.evaluate(generator)
  three = evaluator.evaluate(generator, seeds=3)
  assert three.per_draw[0] == one.scalars and one.stds == {} and len(one.per_draw) == 1
  for tag in three.scalars:
    values = [draw[tag] for draw in three.per_draw]
    assert three.scalars[tag] == pytest.approx(np.mean(values), rel=1e-12)
    assert three.stds[tag] == pytest.approx(np.std(values, ddof=1), rel=1e-12, abs=1e-15)
  assert three.per_draw[1]['eval/fid'] != three.per_draw[0]['eval/fid']
  assert three.stds['eval/fid'] > 0
  assert three.all_scalars()['eval/fid_std'] == three.stds['eval/fid']
  assert 'eval/fid_std' not in one.all_scalars()
  assert three.protocol['noise_draws'] == 3 and one.protocol['noise_draws'] == 1
  # The second draw is the noise the documentation names.
  features, _ = evaluator.outputs(generator, NUM, draw=1)
  config = setup[0]
  expected = evaluator._features(  # pylint: disable=protected-access
      protocol.quantise_numpy(generator(_evaluation_noise(config, NUM, draw=1)).numpy()))[0]
  np.testing.assert_allclose(features, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_generated_images_are_quantised_to_uint8_before_the_features(setup):
  config, _, evaluator, generator = setup
  features, _ = evaluator.outputs(generator, NUM)
  images = generator(_evaluation_noise(config, NUM)).numpy()
  # The tanh output sits between pixel levels: quantisation moves it.
  assert np.max(np.abs(protocol.quantise_numpy(images) - images)) > 1e-3
  model = classifier_lib.feature_model(classifier_lib.load_classifier())
  quantised = model(protocol.quantise_numpy(images))[0].numpy()
  raw = model(images)[0].numpy()
  np.testing.assert_allclose(features, quantised, rtol=1e-5, atol=1e-5)
  assert np.max(np.abs(features - raw)) > 100 * np.max(np.abs(features - quantised))
  # The pixels a saved PNG would hold (data.images.to_grid's rounding).
  pixels = np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(protocol.quantise_numpy(images),
                                classifier_lib.to_model_range(pixels))


def test_protocol_names_what_the_figures_were_measured_on(setup):
  _, _, evaluator, generator = setup
  evaluation = evaluator.evaluate(generator, 100, seeds=2)
  fields = evaluation.protocol
  with open(classifier_lib.WEIGHTS_PATH, 'rb') as f:
    assert fields['feature_weights_sha256'] == hashlib.sha256(f.read()).hexdigest()
  assert fields['num_generated'] == 100 and fields['num_reference'] == 1000
  assert fields['reference_split'] == 'embedded_mnist/heldout (1000 images, never trained on)'
  assert fields['image_size'] == [28, 28, 1] and fields['resize'] == 'none'
  assert 'MNIST classifier' in fields['feature_extractor'] and 'uint8' in fields['quantisation']
  assert fields['seed'] == 0 and fields['noise_draws'] == 2 and fields['kid_subset_size'] == 50
  report = evaluation.report()
  assert json.loads(json.dumps(report)) == report  # JSON-ready.
  assert report['eval/fid_std'] == evaluation.stds['eval/fid'] and len(report['per_draw']) == 2


def test_training_time_evaluation_writes_a_record_per_generator(setup, tmp_path):
  config, _, evaluator, generator = setup
  state = types.SimpleNamespace(generator=generator, ema_generator=generator)
  scalars = evaluate_action.evaluate(evaluator, state, str(tmp_path), 6)
  written = records.read(str(tmp_path))
  assert [r['protocol']['generator'] for r in written] == ['raw', 'ema']
  for record in written:
    assert record['source'] == 'training' and record['protocol']['step'] == 6
    assert record['protocol']['checkpoint'] is None
    assert record['eval/fid'] == scalars['eval/fid'] == scalars['eval_ema/fid']
    assert record['protocol']['num_generated'] == config.num_eval_samples
  assert evaluate_action.evaluate(evaluator, state) == scalars
  assert len(records.read(str(tmp_path))) == 2  # No workdir, no record.


def test_memorisation_of_copies_is_zero_and_of_fresh_digits_one(setup):
  config, _, evaluator, _ = setup
  train_images = classifier_lib.embedded_split().train_images
  pool = classifier_lib.to_model_range(train_images[:3000])
  copies = evaluator.memorisation(_lookup_generator(config, train_images), NUM, pool)
  assert copies.ratio < 0.01 and copies.copy_share > 0.95
  np.testing.assert_array_equal(copies.generated_nearest, np.arange(NUM))
  fresh = evaluator.memorisation(_lookup_generator(config, train_images[3000:]), NUM, pool)
  assert fresh.ratio == pytest.approx(1.0, abs=0.15) and fresh.copy_share < 0.05


def test_memorisation_of_a_limited_run_compares_with_the_images_it_trained_on(setup):
  """Under data.limit = 300 the generator trained on 300 digits: an evaluator of that config
  (what `evaluate --memorisation` and `report --nearest` build) compares with them, so copies
  of them are copies and copies of other digits of the training split are new to it; against
  the whole split (the unlimited config's evaluator) both would look like copies."""
  config, strategy, evaluator, _ = setup
  limited = config.copy_and_resolve_references()
  limited.data.limit = 300
  limited_evaluator = evaluator_lib.Evaluator(limited, strategy)
  trained_on = evaluator_lib.sampled_images(train.training_data(limited)[0], limited)
  assert trained_on.shape[0] == 300
  # report --nearest indexes these with Memorisation.generated_nearest.
  np.testing.assert_array_equal(limited_evaluator.train_images(),
                                protocol.quantise_numpy(trained_on))
  others = evaluator_lib.sampled_images(limit_lib.images_after(
      reference.training_source(limited, sources.load_source(limited)), 300, NUM), limited)

  def uint8(images):
    return np.round((images + 1.0) * 127.5).astype(np.uint8)
  copies = limited_evaluator.memorisation(_lookup_generator(config, uint8(trained_on)), NUM)
  assert copies.ratio < 0.01 and copies.copy_share > 0.95
  fresh = limited_evaluator.memorisation(_lookup_generator(config, uint8(others)), NUM)
  assert fresh.ratio == pytest.approx(1.0, abs=0.2) and fresh.copy_share < 0.05
  whole_split = evaluator.memorisation(_lookup_generator(config, uint8(others)), NUM)
  assert whole_split.ratio < 0.01


@pytest.fixture(scope='module')
def trained_workdir(tmp_path_factory):
  """The tiny config, 4 steps, checkpoints at 2 and 4, evaluation off during training."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  path = str(tmp_path_factory.mktemp('history'))
  config = mnist.get_config('tiny')
  assert config.eval_every_steps == 0
  train.train_and_evaluate(config, path)
  return path


@pytest.mark.slow
def test_evaluate_all_checkpoints_writes_curves_csv_and_records(trained_workdir):
  result = subprocess.run(
      [sys.executable, '-m', 'wgan_dist.evaluate', f'--workdir={trained_workdir}',
       '--all_checkpoints', '--seeds=2', '--num=20'],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  evaluations = summary['evaluations']
  assert [e['step'] for e in evaluations] == [2, 4]
  # The curves a run trained without eval_every_steps now has, at the checkpoints' steps.
  fid = helpers.event_scalars(trained_workdir, 'eval/fid')
  assert fid == {2: pytest.approx(evaluations[0]['eval/fid'], rel=1e-6),
                 4: pytest.approx(evaluations[1]['eval/fid'], rel=1e-6)}
  assert set(helpers.event_scalars(trained_workdir, 'eval/fid_std')) == {2, 4}
  assert set(helpers.event_scalars(trained_workdir, 'eval/kid')) == {2, 4}
  from wgan_dist import report  # pylint: disable=import-outside-toplevel
  assert list(report.read_series(trained_workdir)['eval/fid'][0]) == [2, 4]
  from wgan_dist.tools import history  # pylint: disable=import-outside-toplevel
  rows = history.read_csv(summary['csv'])
  assert [int(row['step']) for row in rows] == [2, 4]
  assert float(rows[1]['eval/recall']) == pytest.approx(evaluations[1]['eval/recall'])
  written = records.read(trained_workdir)
  assert [r['protocol']['step'] for r in written] == [2, 4]
  for record, evaluation in zip(written, evaluations):
    fields = record['protocol']
    assert fields['checkpoint'].endswith(f'ckpt-{fields["step"]}') or fields['checkpoint']
    assert fields['generator'] == 'raw' and fields['noise_draws'] == 2
    assert fields['num_generated'] == 20 and fields['num_reference'] == 1000
    assert record['eval/fid'] == evaluation['eval/fid'] and 'eval/fid_std' in record


def test_report_nearest_pairs_show_copies_beside_their_training_images(setup):
  config, _, _, _ = setup
  from wgan_dist import report  # pylint: disable=import-outside-toplevel
  train_images = classifier_lib.embedded_split().train_images
  restored = types.SimpleNamespace(config=config,
                                   generator=_lookup_generator(config, train_images))
  grid, text = report.nearest_pairs(restored, 3)
  assert text.startswith('memorisation ratio 0.000')
  # 3 rows of (sample, nearest training image), 28x28 cells with 2-pixel padding.
  assert grid.shape == (3 * 30 + 2, 2 * 30 + 2, 1)
  for row in range(3):
    top = 2 + row * 30
    np.testing.assert_array_equal(grid[top:top + 28, 2:30], grid[top:top + 28, 32:60])
