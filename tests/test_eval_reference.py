"""The MNIST evaluation reference (config.eval_reference): by default the generator never trains
on it (checked by image content over a whole epoch of the training stream), 'train_full'
restores training on every digit, full MNIST is scored against its test split, and the
real-vs-real floors docs/evaluation.md states."""

import hashlib
import math

import numpy as np
import pytest

from configs import default
from wgan_dist import train
from wgan_dist.config import validation as config_validation
from wgan_dist.data import input_pipeline
from wgan_dist.data import sources
from wgan_dist.eval import classifier
from wgan_dist.eval import floors
from wgan_dist.eval import reference


def _hashes(images: np.ndarray) -> set[str]:
  return {hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest() for image in images}


def _default_config(eval_reference: str = 'heldout'):
  """The default config as an offline machine runs it: data.source='mnist' falls back to the
  embedded sample."""
  config = default.get_config()
  config.data.allow_download = False
  config.eval_reference = eval_reference
  return config


def _epoch_hashes(config, source: sources.Source) -> tuple[set[str], int]:
  """(hashes of the uint8 images of the stream's first epoch and a bit more, positions read)."""
  batch = config.train.global_batch_size
  batches = math.ceil(source.size / batch)  # Covers every position of epoch 0.
  seen = set()
  for images in input_pipeline.make_dataset(source, config, batch).take(batches):
    # The pipeline maps uint8 v to v / 127.5 - 1 exactly; invert it to the stored bytes.
    pixels = np.rint((images.numpy() + 1.0) * 127.5).astype(np.uint8)
    seen |= _hashes(pixels)
  return seen, batches * batch


@pytest.fixture(scope='module')
def embedded():
  images, labels = sources.load_embedded_mnist()
  train_rows, held_rows = classifier.embedded_split_indices(labels)
  return images, train_rows, held_rows


def test_split_indices_match_the_split_and_partition_the_sample(embedded):
  images, train_rows, held_rows = embedded
  split = classifier.embedded_split()
  np.testing.assert_array_equal(images[train_rows], split.train_images)
  np.testing.assert_array_equal(images[held_rows], split.held_out_images)
  assert len(train_rows) == 4000 and len(held_rows) == 1000
  np.testing.assert_array_equal(np.sort(np.concatenate([train_rows, held_rows])),
                                np.arange(5000))
  # Distinct images, so that content hashes below identify digits.
  assert len(_hashes(images)) == 5000


def test_default_training_stream_never_contains_a_held_out_digit(embedded):
  images, train_rows, held_rows = embedded
  config = _default_config()
  source, _ = train.training_data(config)
  assert source.name == 'embedded_mnist' and source.size == 4000
  seen, positions = _epoch_hashes(config, source)
  assert positions >= 4000
  assert seen == _hashes(images[train_rows])  # The whole training split, once an epoch...
  assert not seen & _hashes(images[held_rows])  # ...and not one held-out digit.
  ref = reference.mnist_reference(config, source.name)
  assert ref.split == 'embedded_mnist/heldout' and not ref.trained_on
  assert _hashes(ref.images) == _hashes(images[held_rows])


def test_train_full_trains_on_every_digit_and_keeps_the_reference(embedded):
  images, _, held_rows = embedded
  config = _default_config('train_full')
  source, _ = train.training_data(config)
  assert source.size == 5000
  seen, _ = _epoch_hashes(config, source)
  assert seen == _hashes(images)  # The held-out digits are trained on again...
  ref = reference.mnist_reference(config, source.name)
  # ...and are still the reference: the protocol before eval_reference existed.
  assert ref.split == 'embedded_mnist/train_full' and ref.trained_on
  np.testing.assert_array_equal(ref.images, classifier.embedded_split().held_out_images)


def test_conditional_stream_keeps_labels_with_the_training_digits(embedded):
  images, train_rows, _ = embedded
  config = _default_config()
  config.model.num_classes = 10
  source, _ = train.training_data(config)
  _, labels = sources.load_embedded_mnist()
  np.testing.assert_array_equal(source.labels, labels[np.sort(train_rows)])
  np.testing.assert_array_equal(source.images, images[np.sort(train_rows)])


def test_epoch_count_uses_the_training_digits():
  # Default: 50 epochs, batch 64, n_critic 5 = 320 real images per generator step.
  _, steps = train.training_data(_default_config())
  assert steps == math.ceil(50 * 4000 / 320) == 625
  _, steps = train.training_data(_default_config('train_full'))
  assert steps == math.ceil(50 * 5000 / 320) == 782


def test_full_mnist_is_scored_against_its_test_split(tmp_path, monkeypatch):
  # A stand-in for the Keras cache (the real file is 11 MB and not downloadable here).
  rng = np.random.default_rng(0)
  x_train = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
  x_test = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
  (tmp_path / 'datasets').mkdir()
  np.savez(tmp_path / 'datasets' / 'mnist.npz', x_train=x_train, y_train=np.arange(30) % 10,
           x_test=x_test, y_test=np.arange(20) % 10)
  monkeypatch.setenv('KERAS_HOME', str(tmp_path))
  config = _default_config()
  ref = reference.mnist_reference(config, 'mnist')
  assert ref.split == 'mnist/test' and not ref.trained_on
  np.testing.assert_array_equal(ref.images[..., 0], x_test)
  np.testing.assert_array_equal(ref.labels, np.arange(20) % 10)
  # Full MNIST's training images are all trained on, whatever the reference.
  full = sources.Source('mnist', images=x_train[..., None])
  assert reference.training_source(config, full) is full
  config.eval_reference = 'train_full'
  ref = reference.mnist_reference(config, 'mnist')
  assert ref.split == 'mnist/train' and ref.trained_on
  np.testing.assert_array_equal(ref.images[..., 0], x_train)  # All 30 (< 10,000).
  # A run that fell back to the embedded sample keeps the embedded reference.
  config.eval_reference = 'heldout'
  assert reference.mnist_reference(config, 'embedded_mnist').split == 'embedded_mnist/heldout'


def test_eval_reference_is_validated_in_one_line():
  config = _default_config('train')
  with pytest.raises(config_validation.ConfigError) as error:
    config_validation.validate(config)
  message = str(error.value)
  assert 'eval_reference' in message and "'train'" in message and 'train_full' in message
  assert '\n' not in message


@pytest.mark.slow
def test_real_floors_of_both_references():
  figures = floors.real_floors(classifier.load_classifier())
  # 'heldout': disjoint 1,000-digit samples of the 4,000 training digits vs the 1,000 held-out.
  assert figures['heldout']['samples'] == 4 and figures['heldout']['num'] == 1000
  assert figures['heldout']['fid'][0] == pytest.approx(4.23, abs=0.05)  # held_out_report's.
  assert figures['heldout']['fid_mean'] == pytest.approx(4.26, abs=0.05)
  # 'train_full': disjoint 1,000-digit samples of all 5,000, about a fifth of them reference
  # digits: a generator that reproduced its training data would score this.
  assert figures['train_full']['samples'] == 5
  assert figures['train_full']['fid_mean'] == pytest.approx(3.22, abs=0.05)
  assert figures['train_full']['fid_mean'] < figures['heldout']['fid_mean']
  # KID (its mean over subsets of 500) and precision/recall (k = 3) of the same samples.
  assert figures['heldout']['kid_mean'] == pytest.approx(0.994, abs=0.01)
  assert figures['train_full']['kid_mean'] == pytest.approx(0.182, abs=0.01)
  assert figures['heldout']['precision_mean'] == pytest.approx(0.888, abs=0.002)
  assert figures['heldout']['recall_mean'] == pytest.approx(0.867, abs=0.002)
  assert figures['train_full']['precision_mean'] == pytest.approx(0.911, abs=0.002)
  assert figures['train_full']['recall_mean'] == pytest.approx(0.909, abs=0.002)
