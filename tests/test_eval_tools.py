"""The evaluator, checkpoint restore and the sample / evaluate / export command lines, on a
tiny trained workdir; and the figures docs/evaluation.md states."""

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

from tests.conftest import REPO_ROOT
from wgan_dist import distribution
from wgan_dist import models
from wgan_dist import restore
from wgan_dist import train
from wgan_dist.eval import classifier as classifier_lib
from wgan_dist.eval import evaluator as evaluator_lib


def _run(module: str, *flags: str) -> subprocess.CompletedProcess:
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'CUDA_VISIBLE_DEVICES': ''}
  return subprocess.run([sys.executable, '-m', module, *flags], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


def _assert_ok(result: subprocess.CompletedProcess) -> None:
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def _assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
  assert result.returncode == 1, result.stdout + result.stderr[-3000:]
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith('error: '), result.stderr[-3000:]
  for text in expected:
    assert text in last_line, last_line
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]


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


def test_export_loads_in_plain_tensorflow(workdir, tmp_path):
  out = tmp_path / 'exported'
  _assert_ok(_run('wgan_dist.export', f'--workdir={workdir}', f'--out={out}'))
  noise = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
  np.save(tmp_path / 'noise.npy', noise)
  # A fresh interpreter in which importing wgan_dist fails: the SavedModel must not need it.
  script = textwrap.dedent(f"""
      import sys
      sys.modules['wgan_dist'] = None
      import numpy as np
      import tensorflow as tf
      model = tf.saved_model.load({str(out)!r})
      noise = np.load({str(tmp_path / 'noise.npy')!r})
      images = model(tf.constant(noise)).numpy()
      served = model.signatures['serving_default'](noise=tf.constant(noise))['images'].numpy()
      assert int(model.noise_dim) == 8 and int(model.step) == 4
      np.save({str(tmp_path / 'images.npy')!r}, images)
      np.save({str(tmp_path / 'served.npy')!r}, served)
      """)
  result = subprocess.run([sys.executable, '-c', script], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  _assert_ok(result)
  images = np.load(tmp_path / 'images.npy')
  assert images.shape == (3, 28, 28, 1) and images.dtype == np.float32
  assert images.min() >= -1 and images.max() <= 1
  np.testing.assert_array_equal(images, np.load(tmp_path / 'served.npy'))
  # The same function as the checkpoint's generator.
  generator = restore.load_generator(workdir).generator
  np.testing.assert_allclose(images, generator(noise, training=False).numpy(), atol=1e-6)
