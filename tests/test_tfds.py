"""data.source='tfds' on real TFDS data sets built here (tensorflow-datasets is in the test extra):
a split and a data directory of our choosing, read example by example into one array in the
split's order, labels and their names; varying image sizes, a missing label feature, a data set
not prepared offline and a missing package are one line each, before any work."""

import re
import sys

import numpy as np
import pytest

from tests import helpers
from wgan_dist.data import sources

tfds = pytest.importorskip('tensorflow_datasets')

_SPLITS = {'train': 10, 'test': 4}


def _image(index: int, shape=(28, 28, 1)) -> np.ndarray:
  return np.random.default_rng(index).integers(0, 256, shape, np.uint8)


class WganTestDigits(tfds.core.GeneratorBasedBuilder):
  """28x28x1 images with a ClassLabel feature of five named classes."""
  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(28, 28, 1)),
        'label': tfds.features.ClassLabel(names=list('abcde'))}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split, count) for split, count in _SPLITS.items()}

  def _generate_examples(self, split, count):
    offset = 100 if split == 'test' else 0
    for index in range(count):
      yield index, {'image': _image(offset + index), 'label': index % 5}


class WganTestPlainLabels(WganTestDigits):
  """A label feature of plain integers (no class names)."""

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(28, 28, 1)), 'label': np.int64}))


class WganTestNoLabels(WganTestDigits):
  """Images only."""

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(28, 28, 1))}))

  def _generate_examples(self, split, count):
    for index, example in super()._generate_examples(split, count):
      yield index, {'image': example['image']}


class WganTestMixedSizes(WganTestNoLabels):
  """Images of two sizes: a split loaded whole would be padded to the larger one."""

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(None, None, 1))}))

  def _generate_examples(self, split, count):
    for index in range(count):
      yield index, {'image': _image(index, (20 + 8 * (index % 2), 24, 1))}


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """The four data sets, prepared once into a directory of their own."""
  directory = str(tmp_path_factory.mktemp('tfds'))
  for name in ('wgan_test_digits', 'wgan_test_plain_labels', 'wgan_test_no_labels',
               'wgan_test_mixed_sizes'):
    tfds.builder(name, data_dir=directory).download_and_prepare()
  return directory


def _config(config, data_dir, name='wgan_test_digits', split='train', num_classes=0):
  config.data.source, config.data.path, config.data.split = 'tfds', name, split
  config.data.tfds_data_dir = data_dir
  config.data.allow_download = False  # Only what is prepared in data_dir.
  config.model.num_classes = num_classes
  return config


def _expected(split: str, name: str = 'wgan_test_digits', data_dir: str = ''):
  """(images, labels) in the order TFDS reads the split with shuffle_files=False."""
  examples = list(tfds.as_numpy(tfds.builder(name, data_dir=data_dir).as_dataset(
      split=split, shuffle_files=False)))
  return (np.stack([example['image'] for example in examples]),
          np.array([example.get('label', -1) for example in examples]))


@pytest.mark.slow
@pytest.mark.parametrize('split, count', [('train', 10), ('test', 4), ('train[:50%]', 5)])
def test_the_split_of_the_data_dir_is_read_whole_in_order(tiny_config, data_dir, split, count):
  source = sources.load_source(_config(tiny_config, data_dir, split=split, num_classes=5))
  images, labels = _expected(split, data_dir=data_dir)
  assert source.size == count and source.images.dtype == np.uint8
  np.testing.assert_array_equal(source.images, images)
  np.testing.assert_array_equal(source.labels, labels)
  assert source.class_names == tuple('abcde')
  # The test split's images are others than the train split's.
  assert split != 'test' or not np.array_equal(source.images[0], _image(0))


@pytest.mark.slow
def test_unconditional_reads_images_only_and_plain_labels_have_no_names(tiny_config, data_dir):
  source = sources.load_source(_config(tiny_config, data_dir))
  assert source.labels is None and source.class_names is None and source.size == 10
  plain = sources.load_source(_config(tiny_config, data_dir, 'wgan_test_plain_labels',
                                      num_classes=5))
  np.testing.assert_array_equal(plain.labels,
                                _expected('train', 'wgan_test_plain_labels', data_dir)[1])
  assert plain.class_names is None


@pytest.mark.slow
def test_varying_image_sizes_are_refused_pointing_to_prepare(tiny_config, data_dir):
  assert helpers.load_source_error(_config(tiny_config, data_dir, 'wgan_test_mixed_sizes')) == (
      "data.path='wgan_test_mixed_sizes' (data.source='tfds', data.split='train') has images "
      "of varying size (feature 'image' of shape (None, None, 1)); allowed: one fixed shape "
      '(they are not padded or resized in memory): run `python -m wgan_dist.prepare` to crop '
      "and resize them once, then train with data.source='prepared'")


@pytest.mark.slow
def test_a_conditional_run_without_a_label_feature_names_the_features(tiny_config, data_dir):
  config = _config(tiny_config, data_dir, 'wgan_test_no_labels', num_classes=5)
  assert helpers.load_source_error(config) == (
      "data.path='wgan_test_no_labels' (data.source='tfds', data.split='train') has no 'label' "
      "feature (it has ['image']); model.num_classes=5 needs a label per image; allowed: a "
      'labelled source, or model.num_classes=0 (unconditional)')


@pytest.mark.slow
def test_a_split_or_data_set_not_prepared_offline_is_one_line(tiny_config, data_dir, tmp_path):
  message = helpers.load_source_error(_config(tiny_config, data_dir, split='validation'))
  assert message.startswith("data.path='wgan_test_digits' (data.source='tfds', "
                            "data.split='validation') does not load (data.allow_download=False")
  empty = str(tmp_path / 'empty')
  assert re.match(
      r"^data.path='wgan_test_digits' \(data.source='tfds', data.split='train'\) does not "
      rf'load \(data.allow_download=False: only a data set already prepared in the TFDS data '
      rf'directory {re.escape(empty)} is used\): ',
      helpers.load_source_error(_config(tiny_config, empty)))


def test_tfds_without_the_package_is_a_data_error(tiny_config, monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)  # import raises ImportError.
  with pytest.raises(sources.DataError, match=re.escape(
      'needs the tensorflow-datasets package (pip install "wgan_dist[tfds]")')):
    sources.load_source(_config(tiny_config, ''))
