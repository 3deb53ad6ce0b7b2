"""The critic-overfitting gauge r_v (training/overfit.py), the held-out images it reads, the
adaptive p (training/augment_action.py), data.limit, and an augmented run end to end: p and
r_v in TensorBoard (read back with its reader) and p in the checkpoint."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from wgan_dist import train
from wgan_dist.config import validation as config_validation
from wgan_dist.data import errors
from wgan_dist.data import limit
from wgan_dist.data import sources
from wgan_dist.eval import classifier
from wgan_dist.training import augment_action
from wgan_dist.training import overfit


def _linear_critic(scale: float) -> keras.Model:
  """D(x) = scale · Σ pixels: its mean over a set is computable by hand."""
  critic = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(
                                 scale), bias_initializer='zeros')])
  return critic


def _constant_generator(noise_dim: int, value: float) -> keras.Model:
  """G(z) = an image of `value` everywhere, whatever z."""
  return keras.Sequential([
      keras.Input((noise_dim,)),
      keras.layers.Dense(28 * 28, kernel_initializer='zeros',
                         bias_initializer=keras.initializers.Constant(value)),
      keras.layers.Reshape((28, 28, 1))])


def _model_range(images: np.ndarray) -> np.ndarray:
  return images.astype(np.float64) / 127.5 - 1.0


@pytest.mark.parametrize('cpu_replicas', [1, 2])
def test_the_gauge_reads_r_v_by_its_formula(tiny_config, cpu_replicas):
  tiny_config.distribution.cpu_replicas = cpu_replicas
  tiny_config.distribution.strategy = 'mirrored' if cpu_replicas > 1 else 'one_device'
  strategy = train.distribution.create_strategy(tiny_config)
  loaded = sources.load_source(tiny_config)
  training, _ = train.training_data(tiny_config, loaded)
  heldout = overfit.heldout_source(tiny_config, loaded)
  with strategy.scope():
    # Fakes darker than any digit: the critic scores its training images above them.
    critic, generator = _linear_critic(0.01), _constant_generator(tiny_config.model.noise_dim,
                                                                   -0.95)
    brighter = _constant_generator(tiny_config.model.noise_dim, 0.25)
  gauge = overfit.Gauge(tiny_config, strategy, training, heldout, critic, generator,
                        max_images=100)
  assert gauge.num_images == 96  # Whole global batches of 8.
  reading = gauge.read()
  # A fixed random sample of each set, not the stored order's first images (by class here).
  train_sample = training.images[overfit.sample_indices(training.size, 96)]
  heldout_images = classifier.embedded_split().held_out_images
  heldout_sample = heldout_images[overfit.sample_indices(len(heldout_images), 96)]
  assert len(set(training.labels[overfit.sample_indices(training.size, 96)]) if
             training.labels is not None else range(10)) == 10
  train_mean = 0.01 * _model_range(train_sample).sum(axis=(1, 2, 3)).mean()
  heldout_mean = 0.01 * _model_range(heldout_sample).sum(axis=(1, 2, 3)).mean()
  fake_mean = 0.01 * -0.95 * 28 * 28
  np.testing.assert_allclose(reading.train_score, train_mean, rtol=1e-5)
  np.testing.assert_allclose(reading.heldout_score, heldout_mean, rtol=1e-5)
  np.testing.assert_allclose(reading.fake_score, fake_mean, rtol=1e-5)
  np.testing.assert_allclose(reading.overfit,
                             (train_mean - heldout_mean) / (train_mean - fake_mean), rtol=1e-4)
  smaller = gauge.read(num_images=20)  # Rounded down to whole batches: 16.
  assert smaller.images == 16
  # Fakes scored above the training images: no scale to read r_v on (not a flipped sign).
  upside_down = overfit.Gauge(tiny_config, strategy, training, heldout, critic, brighter,
                              max_images=100).read()
  assert upside_down.fake_score > upside_down.train_score and np.isnan(upside_down.overfit)


def test_held_out_images_per_source(tiny_config):
  loaded = sources.load_source(tiny_config)
  heldout = overfit.heldout_source(tiny_config, loaded)  # The MNIST reference: 1,000 digits.
  np.testing.assert_array_equal(heldout.images, classifier.embedded_split().held_out_images)
  tiny_config.eval_reference = 'train_full'  # Trained on: no held-out images ...
  assert overfit.heldout_source(tiny_config, loaded) is None
  tiny_config.data.limit = 4900  # ... unless data.limit leaves some out: the ones after it.
  after = overfit.heldout_source(tiny_config, loaded)
  kept = limit.first_indices(5000, 4900)
  left_out = np.setdiff1d(np.arange(5000), kept)
  np.testing.assert_array_equal(after.images, loaded.subset(left_out).images)
  tiny_config.augment.policy, tiny_config.augment.target = 'cutout', 0.5
  training = loaded.subset(kept)
  overfit.check_adaptive(tiny_config, training, after)
  with pytest.raises(errors.DataError, match=r"augment.target=0.5 .* data.source='embedded_mnist'"
                     r" has no held-out split: set data.limit"):
    overfit.check_adaptive(tiny_config, training, None)
  # Fewer held-out images than a global batch: refused before any model is built, and the
  # evaluation's gauge is off instead of failing the run.
  few = loaded.subset(left_out[:5])
  with pytest.raises(errors.DataError, match=r'reads at least train.global_batch_size=8 '
                     r'held-out and training images; there are 5 and 4900'):
    overfit.check_adaptive(tiny_config, training, few)
  assert overfit.make_gauge(tiny_config, None, training, few, None, None) is None


def test_data_limit_keeps_a_fixed_sample_after_the_held_out_split(tiny_config):
  whole, _ = train.training_data(tiny_config)
  tiny_config.data.limit = 500
  limited, steps = train.training_data(tiny_config)
  assert limited.size == 500
  chosen = limit.first_indices(4000, 500)
  np.testing.assert_array_equal(limited.images, whole.images[chosen])
  # A fixed random sample, not the stored order's first 500 (the sample is stored by class):
  # every digit is among them, and the same ones whatever the seed.
  tiny_config.model.num_classes = 10
  labels = train.training_data(tiny_config)[0].labels
  assert np.all(np.bincount(labels, minlength=10) >= 30), np.bincount(labels)
  tiny_config.seed = 7
  np.testing.assert_array_equal(train.training_data(tiny_config)[0].labels, labels)
  tiny_config.model.num_classes = 0
  tiny_config.train.num_steps = -1
  tiny_config.train.num_epochs = 2
  assert train.training_data(tiny_config)[1] == 2 * 500 // (8 * 2) + 1  # Epochs of the 500.
  tiny_config.data.limit = 4001
  with pytest.raises(errors.DataError) as error:
    train.training_data(tiny_config)
  assert str(error.value) == ("data.limit=4001 is more than the 4000 training images of "
                              "'embedded_mnist'; allowed: 0 (all) or 1..4000")
  del steps


@pytest.mark.parametrize('field, value, expected', [
    ('augment.policy', 'translation,rotate',
     "augment.policy='translation,rotate' is not allowed; allowed: '' (off) or a comma list of "
     "('color', 'translation', 'cutout'); 'rotate' is not one of them"),
    ('augment.policy', 'color',
     "augment.policy='color' is not allowed; allowed: transforms without ['color'] for "
     "data.channels=1 (colour transforms need 3-channel images)"),
    ('augment.p', 1.5, 'augment.p=1.5 is not allowed; allowed: a finite number in [0, 1]'),
    ('augment.p', -0.1, 'augment.p=-0.1 is not allowed; allowed: a finite number in [0, 1]'),
    ('augment.target', -0.5,
     'augment.target=-0.5 is not allowed; allowed: a finite number >= 0 (0 = p fixed)'),
    ('augment.interval', 0,
     'augment.interval=0 is not allowed; allowed: an integer >= 1 (generator steps)'),
    ('data.limit', -1, 'data.limit=-1 is not allowed; allowed: an integer >= 0 (0 = all images)'),
])
def test_bad_augmentation_settings_are_one_line_errors(tiny_config, field, value, expected):
  section, leaf = field.split('.')
  tiny_config[section][leaf] = value
  with pytest.raises(config_validation.ConfigError) as error:
    config_validation.validate(tiny_config)
  assert str(error.value) == expected


def test_a_target_without_a_policy_is_refused(tiny_config):
  tiny_config.augment.target = 0.6
  with pytest.raises(config_validation.ConfigError, match=r"augment.target=0.6 .* 0 when "
                     r"augment.policy is ''"):
    config_validation.validate(tiny_config)


def test_colour_augmentation_validates_on_rgb_data():
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  config = cifar10.get_config('tiny')
  config.augment.policy = 'color,translation,cutout'
  config_validation.validate(config)


def test_the_adaptive_p_moves_one_notch_toward_the_target(tiny_config):
  tiny_config.augment.interval = 4
  tiny_config.augment.adjust_kimg = 0.5
  # 4 steps × n_critic 2 × batch 8 = 64 images over 500: 0.128 per adjustment.
  step = augment_action.adjustment(tiny_config)
  assert step == pytest.approx(0.128)
  assert augment_action.next_p(0.5, 0.8, 0.6, step) == pytest.approx(0.628)
  assert augment_action.next_p(0.5, 0.2, 0.6, step) == pytest.approx(0.372)
  assert augment_action.next_p(0.5, 0.6, 0.6, step) == 0.5
  assert augment_action.next_p(0.95, 0.9, 0.6, step) == 1.0
  assert augment_action.next_p(0.05, 0.1, 0.6, step) == 0.0
  assert augment_action.next_p(0.3, float('nan'), 0.6, step) == 0.3


@pytest.mark.slow
def test_an_adaptive_run_logs_p_and_r_v_and_saves_p(tiny_config, tmp_path):
  tiny_config.augment.policy = 'translation,cutout'
  tiny_config.augment.p = 0.5
  tiny_config.augment.target = 0.01
  tiny_config.augment.interval = 1
  tiny_config.augment.adjust_kimg = 0.16  # 16 images a step: p moves by 0.1 per step.
  tiny_config.eval_every_steps = 4
  tiny_config.log_every_steps = 1
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(tiny_config, workdir)
  readings = helpers.event_scalars(workdir, 'train/critic_overfit')
  p = helpers.event_scalars(workdir, 'train/augment_p')
  assert sorted(readings) == [1, 2, 3, 4] and sorted(p) == [1, 2, 3, 4]
  # The log at step s shows the p steps up to s used: 0.5, then one notch per reading.
  expected = 0.5
  for step in (1, 2, 3, 4):
    assert p[step] == pytest.approx(expected, abs=1e-6)
    reading = readings[step]
    expected = min(1.0, max(0.0, expected + 0.1 * np.sign(reading - 0.01)))
  gauge = helpers.event_scalars(workdir, 'eval/critic_overfit')
  assert sorted(gauge) == [4] and np.isfinite(gauge[4])
  reader = tf.train.load_checkpoint(os.path.join(workdir, 'checkpoints', 'ckpt-4'))
  saved = [name for name in reader.get_variable_to_shape_map() if name.startswith('augment_p')]
  assert len(saved) == 1
  assert reader.get_tensor(saved[0]) == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_a_fixed_p_is_the_configs_on_resume(tiny_config, tmp_path):
  tiny_config.augment.policy = 'cutout'
  tiny_config.augment.p = 0.3
  workdir = str(tmp_path / 'run')
  tiny_config.train.num_steps = 2
  train.train_and_evaluate(tiny_config, workdir)
  tiny_config.augment.p = 0.8
  tiny_config.train.num_steps = 4
  train.train_and_evaluate(tiny_config, workdir)
  p = helpers.event_scalars(workdir, 'train/augment_p')
  assert p[2] == pytest.approx(0.3) and p[4] == pytest.approx(0.8)


@pytest.mark.slow
def test_evaluate_reads_the_gauge_training_wrote(tiny_config, tmp_path):
  """`python -m wgan_dist.evaluate` on a finished run reads the r_v its last evaluation wrote
  (the same checkpointed critic and generator, the same fixed samples); with data that hold
  nothing out it says so and still scores."""
  tiny_config.eval_every_steps = 4
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(tiny_config, workdir)
  logged = helpers.event_scalars(workdir, 'eval/critic_overfit')[4]
  result = helpers.run_module('wgan_dist.evaluate', f'--workdir={workdir}', '--num=50')
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['step'] == 4
  assert report['eval/critic_overfit'] == pytest.approx(logged, rel=1e-4, abs=1e-6)
  assert 'eval/critic_overfit: ' in result.stdout
  skipped = helpers.run_module('wgan_dist.evaluate', f'--workdir={workdir}', '--num=50',
                               '--nocritic_overfit', '--norecord')
  assert skipped.returncode == 0, skipped.stderr[-3000:]
  assert 'eval/critic_overfit' not in json.loads(skipped.stdout.strip().splitlines()[-1])
