"""The evaluator, checkpoint restore and the sample / evaluate / export command lines, on a
tiny trained workdir (and, for sample and export, a class-conditional workdir written from a
built generator); and the figures docs/evaluation.md states."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests import helpers
from wgan_dist.dist import distribution
from wgan_dist.data import images as images_lib
from wgan_dist.models import layers as model_layers
from wgan_dist.models import architectures as models
from wgan_dist.tools import restore
from wgan_dist.tools import sampling
from wgan_dist import train
from wgan_dist.eval import classifier as classifier_lib
from wgan_dist.eval import evaluator as evaluator_lib

# Every test here shares a training run or starts processes: the full suite only.
pytestmark = pytest.mark.slow


# `python -m <module>` as a user runs it, and its one-line error (shared with other tests).
_run = helpers.run_module
_assert_one_line_error = helpers.assert_one_line_error


def _assert_ok(result: subprocess.CompletedProcess) -> None:
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def _strategy(config, replicas: int) -> tf.distribute.Strategy:
  config = config.copy_and_resolve_references()
  config.distribution.cpu_replicas = replicas
  config.distribution.strategy = 'mirrored' if replicas > 1 else 'one_device'
  return distribution.create_strategy(config)


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """The tiny config trained for its 4 steps (checkpoints at 2 and 4, no EMA)."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  path = str(tmp_path_factory.mktemp('tiny_run'))
  train.train_and_evaluate(mnist.get_config('tiny'), path)
  return path


def test_evaluation_does_not_depend_on_the_replica_count(tiny_config):
  results = []
  weights = None
  for replicas in (1, 2):
    strategy = _strategy(tiny_config, replicas)
    with strategy.scope():
      keras.utils.set_random_seed(0)
      generator, _ = models.build_models(tiny_config)
    if weights is None:
      weights = generator.get_weights()
    generator.set_weights(weights)
    evaluator = evaluator_lib.Evaluator(tiny_config, strategy)
    # 20 samples at global batch 8: three batches, the last one cut (the remainder path).
    features, probabilities = evaluator.outputs(generator, 20)
    evaluation = evaluator.evaluate(generator, 20)
    results.append((features, probabilities, evaluation.scalars, evaluation.class_histogram))
  (features1, probabilities1, scalars1, histogram1), (features2, probabilities2, scalars2,
                                                      histogram2) = results
  assert features1.shape == (20, 64) and probabilities1.shape == (20, 10)
  np.testing.assert_allclose(features1, features2, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(probabilities1, probabilities2, rtol=1e-5, atol=1e-6)
  for tag in evaluator_lib.SCALAR_TAGS:
    assert scalars1[tag] == pytest.approx(scalars2[tag], rel=1e-4), tag
  np.testing.assert_array_equal(histogram1, histogram2)
  assert histogram1.sum() == pytest.approx(1.0)


def test_other_data_are_unsupported(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.data.source = 'cifar10'
  config.data.image_size, config.data.channels = 32, 3
  strategy = _strategy(tiny_config, 1)
  assert evaluator_lib.make_evaluator(config, strategy) is None
  with pytest.raises(evaluator_lib.UnsupportedEvaluation, match='cifar10'):
    evaluator_lib.Evaluator(config, strategy)


# The figures docs/evaluation.md states; tolerances cover CPU-to-CPU rounding only.
def test_committed_classifier_accuracy_and_real_floor():
  figures = classifier_lib.held_out_report(classifier_lib.load_classifier(),
                                            classifier_lib.embedded_split())
  assert figures['held_out_images'] == 1000 and figures['floor_samples'] == 1000
  assert figures['held_out_accuracy'] == pytest.approx(0.969, abs=0.003)
  assert figures['real_fid_floor'] == pytest.approx(4.23, abs=0.05)
  assert figures['real_classifier_score'] == pytest.approx(9.44, abs=0.02)
  # Intra-FID's floor: per digit 100 train-split vs its 100 held-out images (conditional runs).
  assert figures['floor_per_class'] == 100
  assert figures['real_intra_fid_floor'] == pytest.approx(14.28, abs=0.05)


def test_untrained_quick_generator_is_far_above_the_floor():
  # docs/evaluation.md: FID 506.8, classifier score 1.00, every sample classed as one digit.
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('quick')
  strategy = _strategy(config, 1)
  with strategy.scope():
    keras.utils.set_random_seed(config.seed)  # As train_state.create_train_state initialises.
    generator, _ = models.build_models(config)
  scalars = evaluator_lib.Evaluator(config, strategy).evaluate(generator).scalars
  assert scalars['eval/fid'] == pytest.approx(506.8, rel=0.01)
  assert scalars['eval/classifier_score'] == pytest.approx(1.0, abs=0.01)
  assert scalars['eval/min_class_share'] == 0.0


def _write_workdir(path, config, generator, ema_generator=None, step=7):
  with open(os.path.join(path, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  objects = {'generator': generator, 'step': tf.Variable(step, dtype=tf.int64)}
  if ema_generator is not None:
    objects['ema_generator'] = ema_generator
  tf.train.CheckpointManager(tf.train.Checkpoint(**objects), os.path.join(path, 'checkpoints'),
                             1, checkpoint_name='ckpt').save(checkpoint_number=step)


def test_restore_picks_the_ema_generator_when_asked(tiny_config, tmp_path):
  keras.utils.set_random_seed(1)
  generator, _ = models.build_models(tiny_config)
  ema_generator, _ = models.build_models(tiny_config)
  _write_workdir(str(tmp_path), tiny_config, generator, ema_generator)
  plain = restore.load_generator(str(tmp_path))
  ema = restore.load_generator(str(tmp_path), ema=True)
  assert (plain.step, ema.step, plain.ema, ema.ema) == (7, 7, False, True)
  for restored, expected in ((plain, generator), (ema, ema_generator)):
    for got, want in zip(restored.generator.get_weights(), expected.get_weights()):
      np.testing.assert_array_equal(got, want)
  assert not np.array_equal(plain.generator.get_weights()[0], ema.generator.get_weights()[0])


def test_restore_errors_name_the_path(tiny_config, tmp_path):
  with pytest.raises(restore.RestoreError, match=f'{tmp_path}/config.json not found'):
    restore.load_generator(str(tmp_path))
  (tmp_path / 'config.json').write_text(tiny_config.to_json_best_effort())
  with pytest.raises(restore.RestoreError, match=f'no checkpoint in {tmp_path}/checkpoints'):
    restore.load_generator(str(tmp_path))


def test_sample_writes_a_png_grid_and_a_strip(workdir, tmp_path):
  grid_path, strip_path = tmp_path / 'grid.png', tmp_path / 'strip.png'
  _assert_ok(_run('wgan_dist.sample', f'--workdir={workdir}', f'--out={grid_path}', '--num=12',
                  '--seed=3'))
  _assert_ok(_run('wgan_dist.sample', f'--workdir={workdir}', f'--out={strip_path}',
                  '--interpolate', '--num=5'))
  with Image.open(grid_path) as grid, Image.open(strip_path) as strip:
    assert grid.format == strip.format == 'PNG'
    # 12 images of 28 px, 2 px padding: 3 rows x 4 columns; the strip is 1 x 5.
    assert grid.size == (4 * 30 + 2, 3 * 30 + 2) and strip.size == (5 * 30 + 2, 32)
    pixels = np.asarray(grid)
  assert pixels.std() > 0  # Not a blank image.


def test_evaluate_prints_metrics_with_a_json_last_line(workdir):
  result = _run('wgan_dist.evaluate', f'--workdir={workdir}', '--num=50')
  _assert_ok(result)
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['step'] == 4 and report['num_samples'] == 50 and report['ema'] is False
  assert report['eval/fid'] > 0 and np.isfinite(report['eval/fid'])
  assert 1 <= report['eval/classifier_score'] <= 10
  assert sum(report['eval/class_histogram']) == pytest.approx(1.0)
  assert report['eval/min_class_share'] == min(report['eval/class_histogram'])


def test_tools_fail_in_one_line_without_a_checkpoint_or_ema(workdir, tmp_path):
  _assert_one_line_error(_run('wgan_dist.sample', f'--workdir={tmp_path}'),
                         f'{tmp_path}/config.json')
  _assert_one_line_error(_run('wgan_dist.evaluate', f'--workdir={workdir}', '--ema'),
                         'no EMA generator')


def _load_in_plain_tensorflow(out, tmp_path, noise, labels=None) -> dict:
  """Runs the SavedModel at `out` in a fresh interpreter in which importing wgan_dist fails
  (the SavedModel must not need it); returns its images (by __call__ and by the serving
  signature), its noise_dim, step and num_classes, and (given labels) the error a label of
  num_classes raises."""
  np.save(tmp_path / 'noise.npy', noise)
  args = 'tf.constant(noise)'
  named = 'noise=tf.constant(noise)'
  bad_label = "error = ''\n"
  if labels is not None:
    np.save(tmp_path / 'labels.npy', labels)
    args += ', tf.constant(np.load("labels.npy"))'
    named += ', label=tf.constant(np.load("labels.npy"))'
    bad_label = textwrap.dedent("""\
        try:
          model(tf.constant(noise[:1]), tf.constant([int(model.num_classes)]))
          error = 'no error'
        except tf.errors.InvalidArgumentError as e:
          error = e.message
        """)
  script = textwrap.dedent(f"""
      import json, sys
      sys.modules['wgan_dist'] = None
      import numpy as np
      import tensorflow as tf
      model = tf.saved_model.load({str(out)!r})
      noise = np.load('noise.npy')
      np.save('images.npy', model({args}).numpy())
      np.save('served.npy', model.signatures['serving_default']({named})['images'].numpy())
      """) + bad_label + textwrap.dedent("""\
      print(json.dumps({'error': error, **{name: int(getattr(model, name))
                                          for name in ('noise_dim', 'step', 'num_classes')}}))
      """)
  result = subprocess.run([sys.executable, '-c', script], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  _assert_ok(result)
  return {'images': np.load(tmp_path / 'images.npy'), 'served': np.load(tmp_path / 'served.npy'),
          **json.loads(result.stdout.strip().splitlines()[-1])}


def test_export_loads_in_plain_tensorflow(workdir, tmp_path):
  out = tmp_path / 'exported'
  _assert_ok(_run('wgan_dist.export', f'--workdir={workdir}', f'--out={out}'))
  noise = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
  loaded = _load_in_plain_tensorflow(out, tmp_path, noise)
  assert (loaded['noise_dim'], loaded['step'], loaded['num_classes']) == (8, 4, 0)
  images = loaded['images']
  assert images.shape == (3, 28, 28, 1) and images.dtype == np.float32
  assert images.min() >= -1 and images.max() <= 1
  np.testing.assert_array_equal(images, loaded['served'])
  # The same function as the checkpoint's generator.
  generator = restore.load_generator(workdir).generator
  np.testing.assert_allclose(images, generator(noise, training=False).numpy(), atol=1e-6)


# Class-conditional workdirs: a built (untrained) generator written as training writes one,
# with its class tables randomised so that every class draws different images.
NUM_CLASSES = 3


@pytest.fixture(scope='module')
def conditional_workdir(tmp_path_factory):
  """The tiny MNIST config with the dcgan models (class-conditional batch norm), 3 classes."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.model.architecture = 'dcgan'
  config.model.num_classes, config.model.conditioning = NUM_CLASSES, 'projection'
  keras.utils.set_random_seed(2)
  generator, _ = models.build_models(config)
  rng = np.random.default_rng(0)
  for layer in generator.layers:
    if isinstance(layer, model_layers.ConditionalBatchNorm):
      layer.gamma.assign(1 + 0.5 * rng.standard_normal(layer.gamma.shape))
      layer.beta.assign(0.5 * rng.standard_normal(layer.beta.shape))
  path = str(tmp_path_factory.mktemp('conditional'))
  _write_workdir(path, config, generator)
  return path


def _generate(workdir, z, labels):
  return sampling.generate(restore.load_generator(workdir).generator, z, labels)


def _assert_png_grid(path, expected_grid):
  """The PNG at `path` is `expected_grid` (uint8) up to one level of rounding per pixel."""
  with Image.open(path) as image:
    assert image.format == 'PNG'
    pixels = np.asarray(image)
  if pixels.ndim == 2:
    pixels = pixels[..., None]
  assert pixels.shape == expected_grid.shape
  assert np.abs(pixels.astype(int) - expected_grid.astype(int)).max() <= 1


def test_class_rows_repeat_the_noise_in_every_row():
  noise = np.arange(6, dtype=np.float32).reshape(3, 2)
  z, labels = images_lib.class_rows(noise, [4, 0])
  np.testing.assert_array_equal(z, np.concatenate([noise, noise]))
  np.testing.assert_array_equal(labels, [4, 4, 4, 0, 0, 0])
  assert labels.dtype == np.int32


def test_sample_inputs_are_fixed_by_the_flags():
  kwargs = {'seed': 3, 'noise_dim': 8, 'num_classes': NUM_CLASSES}
  z, labels, rows = sampling.sample_inputs(**kwargs, label=None, num=None, interpolate=False)
  # One row per class, sampling.DEFAULT_PER_CLASS columns, column j the same noise in every row.
  columns = sampling.DEFAULT_PER_CLASS
  assert (z.shape, rows) == ((NUM_CLASSES * columns, 8), NUM_CLASSES)
  np.testing.assert_array_equal(labels, np.repeat(np.arange(NUM_CLASSES), columns))
  np.testing.assert_array_equal(z, np.tile(sampling.noise(3, columns, 8), (NUM_CLASSES, 1)))
  again, labels_again, _ = sampling.sample_inputs(**kwargs, label=None, num=None,
                                                  interpolate=False)
  np.testing.assert_array_equal(again, z)
  np.testing.assert_array_equal(labels_again, labels)
  z, labels, rows = sampling.sample_inputs(**kwargs, label=2, num=None, interpolate=False)
  assert (z.shape, rows) == ((sampling.DEFAULT_GRID, 8), 8)
  np.testing.assert_array_equal(labels, np.full(sampling.DEFAULT_GRID, 2))
  z, labels, rows = sampling.sample_inputs(**kwargs, label=None, num=4, interpolate=True)
  assert (z.shape, rows) == ((NUM_CLASSES * 4, 8), NUM_CLASSES)  # A strip per class.
  np.testing.assert_array_equal(labels, np.repeat(np.arange(NUM_CLASSES), 4))
  np.testing.assert_array_equal(z[4:8], z[:4])
  z, labels, rows = sampling.sample_inputs(**kwargs, label=1, num=4, interpolate=True)
  assert (z.shape, rows) == ((4, 8), 1)
  np.testing.assert_array_equal(labels, [1, 1, 1, 1])
  z, labels, rows = sampling.sample_inputs(seed=3, noise_dim=8, num_classes=0, label=None,
                                           num=5, interpolate=False)
  assert (z.shape, labels, rows) == ((5, 8), None, 2)


def test_sample_draws_a_row_per_class_or_one_class(conditional_workdir, tmp_path):
  rows_path, one_path = tmp_path / 'rows.png', tmp_path / 'one.png'
  _assert_ok(_run('wgan_dist.sample', f'--workdir={conditional_workdir}', f'--out={rows_path}',
                  '--num=5', '--seed=3'))
  _assert_ok(_run('wgan_dist.sample', f'--workdir={conditional_workdir}', f'--out={one_path}',
                  '--num=6', '--seed=3', '--label=2'))
  # 3 classes x 5 columns of 28 px images with 2 px padding; class 2 alone: 2 rows x 3 columns.
  z, labels = images_lib.class_rows(sampling.noise(3, 5, 8), range(NUM_CLASSES))
  generated = _generate(conditional_workdir, z, labels)
  expected_rows = images_lib.to_grid(generated, rows=NUM_CLASSES)
  assert expected_rows.shape == (NUM_CLASSES * 30 + 2, 5 * 30 + 2, 1)
  _assert_png_grid(rows_path, expected_rows)
  # The label matters: the same noise draws different images in each row.
  for a in range(NUM_CLASSES):
    for b in range(a):
      assert np.abs(generated[5 * a:5 * a + 5] - generated[5 * b:5 * b + 5]).max() > 0.05
  expected_one = images_lib.to_grid(
      _generate(conditional_workdir, sampling.noise(3, 6, 8), np.full(6, 2, np.int32)), rows=2)
  assert expected_one.shape == (2 * 30 + 2, 3 * 30 + 2, 1)
  _assert_png_grid(one_path, expected_one)


def test_sample_label_errors_name_the_value_and_the_range(conditional_workdir, tiny_config,
                                                          tmp_path):
  _assert_one_line_error(_run('wgan_dist.sample', f'--workdir={conditional_workdir}',
                              '--label=3'), '--label=3', '[0, 3)')
  _assert_one_line_error(_run('wgan_dist.sample', f'--workdir={conditional_workdir}',
                              '--label=-1'), '--label=-1', '[0, 3)')
  # An unconditional run takes no label (no training needed to find that out).
  generator, _ = models.build_models(tiny_config)
  _write_workdir(str(tmp_path), tiny_config, generator)
  _assert_one_line_error(_run('wgan_dist.sample', f'--workdir={tmp_path}', '--label=0'),
                         '--label=0', 'unconditional', 'model.num_classes=0')
  assert not os.path.exists(tmp_path / 'sample.png')


def test_conditional_export_takes_noise_and_label_in_plain_tensorflow(conditional_workdir,
                                                                      tmp_path):
  out = tmp_path / 'exported'
  _assert_ok(_run('wgan_dist.export', f'--workdir={conditional_workdir}', f'--out={out}'))
  # The same noise for every class, and each class twice.
  noise = np.tile(np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32), (3, 1))
  labels = np.repeat(np.arange(NUM_CLASSES, dtype=np.int32), 2)
  loaded = _load_in_plain_tensorflow(out, tmp_path, noise, labels)
  assert (loaded['noise_dim'], loaded['step'], loaded['num_classes']) == (8, 7, NUM_CLASSES)
  images = loaded['images']
  assert images.shape == (6, 28, 28, 1) and images.dtype == np.float32
  np.testing.assert_array_equal(images, loaded['served'])
  np.testing.assert_allclose(images, _generate(conditional_workdir, noise, labels), atol=1e-6)
  assert np.abs(images[0:2] - images[2:4]).max() > 0.05  # Labels 0 and 1, the same noise.
  assert 'label must be < num_classes = 3' in loaded['error'], loaded['error']
