"""Class labels (model.num_classes > 0) through sources and the input pipeline: every source that
has labels carries them, each label stays with its image through the order, the replica and
worker slices and a resume, and a source without usable labels fails with one named line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import REPO_ROOT
from tests import helpers
from wgan_dist.dist import distribution
from wgan_dist.data import input_pipeline
from wgan_dist.data import sources
from wgan_dist import train
from wgan_dist.eval import classifier as classifier_lib

NUM_CLASSES = 5
NUM_EXAMPLES = 20  # Not a multiple of the batch: global batches straddle epochs.
_RNG = np.random.default_rng(0)


# Fixtures whose pixels say which example they are: example i is an image filled with the value
# 10 * i + 5, so a batch tells each example's index (and so its true label) exactly.

def _pixel_value(index: int) -> int:
  return 10 * index + 5


def _index_of(images: np.ndarray) -> np.ndarray:
  """The example index each float image in [-1, 1] encodes (every pixel must agree)."""
  values = np.rint((images + 1.0) * 127.5).reshape(len(images), -1)
  assert (values == values[:, :1]).all()
  return (values[:, 0].astype(np.int64) - 5) // 10


def _labelled_npz(config, tmp_path, key='y', labels=None, images=None):
  """An .npz of NUM_EXAMPLES encoded images and their labels; returns the true labels."""
  if labels is None:
    labels = _RNG.integers(0, NUM_CLASSES, NUM_EXAMPLES).astype(np.int64)
  if images is None:
    images = np.stack([np.full((28, 28), _pixel_value(i), np.uint8)
                       for i in range(NUM_EXAMPLES)])
  path = tmp_path / 'data.npz'
  np.savez(path, x=images, **({key: labels} if key else {}))
  config.data.source, config.data.path = 'npz', str(path)
  config.model.num_classes = NUM_CLASSES
  return labels


def _labelled_folder(config, tmp_path):
  """Class sub-directories c0..c4 of encoded PNGs (nested one level deeper in c2); returns the
  true labels by example index."""
  labels = _RNG.integers(0, NUM_CLASSES, NUM_EXAMPLES)
  labels[:NUM_CLASSES] = np.arange(NUM_CLASSES)  # Every class has an image.
  for index, label in enumerate(labels):
    folder = tmp_path / 'images' / f'c{label}' / ('deeper' if label == 2 else '')
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((28, 28), _pixel_value(index), np.uint8)).save(
        folder / f'img{index:02d}.png')
  config.data.source, config.data.path = 'folder', str(tmp_path / 'images')
  config.model.num_classes = NUM_CLASSES
  return labels


def _make_fixture(kind, config, tmp_path):
  return (_labelled_npz if kind == 'npz' else _labelled_folder)(config, tmp_path)


def _unconditional(config):
  config = config.copy_and_resolve_references()
  config.model.num_classes = 0
  return config


def _check_pairs(images: np.ndarray, labels: np.ndarray, true_labels: np.ndarray) -> None:
  assert labels.dtype == np.int32 and labels.shape == (len(images),)
  np.testing.assert_array_equal(labels, true_labels[_index_of(images)])


def _strategy(config, replicas: int) -> tf.distribute.Strategy:
  config.distribution.cpu_replicas = replicas
  config.distribution.strategy = 'mirrored' if replicas > 1 else 'one_device'
  strategy = distribution.create_strategy(config)
  assert strategy.num_replicas_in_sync == replicas
  return strategy


# Labels travel with their images.

@pytest.mark.parametrize('kind', ['npz', 'folder'])
def test_labels_travel_with_their_images_in_the_unconditional_order(tiny_config, tmp_path, kind):
  true_labels = _make_fixture(kind, tiny_config, tmp_path)
  source = sources.load_source(tiny_config)
  assert source.labels.dtype == np.int32
  unconditional_source = sources.load_source(_unconditional(tiny_config))
  assert unconditional_source.labels is None
  batch = tiny_config.train.global_batch_size
  conditional = iter(input_pipeline.make_dataset(source, tiny_config, batch))
  unconditional = iter(input_pipeline.make_dataset(unconditional_source,
                                                   _unconditional(tiny_config), batch))
  seen = set()
  for _ in range(6):  # 48 examples: more than two epochs of 20.
    images, labels = (part.numpy() for part in next(conditional))
    _check_pairs(images, labels, true_labels)
    np.testing.assert_array_equal(images, next(unconditional).numpy())
    seen |= set(_index_of(images).tolist())
  assert seen == set(range(NUM_EXAMPLES))


@pytest.mark.parametrize('kind', ['npz', 'folder'])
def test_two_replicas_get_their_slices_with_labels(tiny_config, tmp_path, kind):
  true_labels = _make_fixture(kind, tiny_config, tmp_path)
  source = sources.load_source(tiny_config)
  global_batch = tiny_config.train.global_batch_size
  whole = iter(input_pipeline.make_dataset(source, tiny_config, global_batch))
  strategy = _strategy(tiny_config, 2)
  distributed = iter(input_pipeline.make_distributed_dataset(strategy, tiny_config, source))
  for _ in range(4):
    images, labels = next(distributed)
    parts = [strategy.experimental_local_results(x) for x in (images, labels)]
    assert len(parts[0]) == 2 and parts[0][0].shape[0] == global_batch // 2
    replica_images, replica_labels = (np.concatenate([p.numpy() for p in x]) for x in parts)
    _check_pairs(replica_images, replica_labels, true_labels)
    expected_images, expected_labels = next(whole)
    np.testing.assert_array_equal(replica_images, expected_images.numpy())
    np.testing.assert_array_equal(replica_labels, expected_labels.numpy())


@pytest.mark.parametrize('kind', ['npz', 'folder'])
def test_two_input_pipelines_read_their_slices_with_labels(tiny_config, tmp_path, kind):
  true_labels = _make_fixture(kind, tiny_config, tmp_path)
  source = sources.load_source(tiny_config)
  global_batch = tiny_config.train.global_batch_size
  whole = iter(input_pipeline.make_dataset(source, tiny_config, global_batch))
  contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                         num_replicas_in_sync=2) for pipeline in range(2)]
  shares = [iter(input_pipeline.make_dataset(source, tiny_config, global_batch // 2, context))
            for context in contexts]
  for _ in range(4):
    parts = [[x.numpy() for x in next(share)] for share in shares]
    assert not np.array_equal(parts[0][0], parts[1][0])
    for images, labels in parts:
      _check_pairs(images, labels, true_labels)
    expected_images, expected_labels = next(whole)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), expected_images)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), expected_labels)


@pytest.mark.parametrize('replicas', [1, 2])
def test_resume_gives_the_same_pairs(tiny_config, tmp_path, replicas):
  true_labels = _labelled_npz(tiny_config, tmp_path)
  source = sources.load_source(tiny_config)
  strategy = _strategy(tiny_config, replicas)
  first_step = 3
  skipped = first_step * tiny_config.train.n_critic  # Global batches a resumed run has used.

  def batches(step: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    stream = iter(input_pipeline.make_distributed_dataset(strategy, tiny_config, source, step))
    out = []
    for _ in range(count):
      images, labels = next(stream)
      out.append(tuple(np.concatenate([p.numpy() for p in strategy.experimental_local_results(x)])
                       for x in (images, labels)))
    return out

  fresh = batches(0, skipped + 3)[skipped:]
  resumed = batches(first_step, 3)
  for (images, labels), (fresh_images, fresh_labels) in zip(resumed, fresh):
    _check_pairs(images, labels, true_labels)
    np.testing.assert_array_equal(images, fresh_images)
    np.testing.assert_array_equal(labels, fresh_labels)


@pytest.mark.parametrize('kind', ['npz', 'folder'])
def test_preprocessed_holds_every_example_once_with_its_label(tiny_config, tmp_path, kind):
  """The fixed real sets (evaluation, the overfitting gauge, the augmentation preview) are
  `preprocessed`: each example exactly once, its label beside it; unconditional: no labels."""
  true_labels = _make_fixture(kind, tiny_config, tmp_path)
  source = sources.load_source(tiny_config)
  images, labels = input_pipeline.preprocessed(source, tiny_config)
  assert images.dtype == np.float32 and images.shape == (NUM_EXAMPLES, 28, 28, 1)
  assert sorted(_index_of(images).tolist()) == list(range(NUM_EXAMPLES))
  _check_pairs(images, labels, true_labels)
  subset = source.subset(np.array([3, 7, 11]))
  labelled, _ = input_pipeline.preprocessed(subset, tiny_config)
  unlabelled, none = input_pipeline.preprocessed(subset, _unconditional(tiny_config))
  assert none is None and len(set(_index_of(unlabelled).tolist())) == 3
  np.testing.assert_array_equal(unlabelled, labelled)
  if kind == 'npz':  # Stored in example order (a folder is stored in path order).
    assert sorted(_index_of(unlabelled).tolist()) == [3, 7, 11]


def test_unconditional_ignores_labels_and_yields_images_only(tiny_config, tmp_path):
  _labelled_npz(tiny_config, tmp_path)
  config = _unconditional(tiny_config)
  source = sources.load_source(config)
  assert source.labels is None and source.class_names is None
  element = next(iter(input_pipeline.make_dataset(source, config, 4)))
  assert isinstance(element, tf.Tensor) and element.shape == (4, 28, 28, 1)


def test_pipeline_refuses_a_source_without_labels_when_conditional(tiny_config, tmp_path):
  _labelled_npz(tiny_config, tmp_path)
  source = sources.load_source(_unconditional(tiny_config))
  with pytest.raises(ValueError, match="model.num_classes=5 but source 'npz' carries no labels"):
    input_pipeline.make_dataset(source, tiny_config, 4)


# Sources with known labels and class names.

def test_embedded_mnist_carries_its_labels(tiny_config):
  tiny_config.model.num_classes = 10
  source = sources.load_source(tiny_config)
  assert source.name == 'embedded_mnist' and source.class_names == tuple('0123456789')
  # The sample is sorted by class, 500 digits each.
  np.testing.assert_array_equal(source.labels, np.repeat(np.arange(10, dtype=np.int32), 500))


def test_mnist_offline_fallback_carries_the_embedded_labels(tiny_config, tmp_path, monkeypatch):
  monkeypatch.setenv('KERAS_HOME', str(tmp_path))  # An empty cache.
  tiny_config.data.source, tiny_config.data.allow_download = 'mnist', False
  tiny_config.model.num_classes = 10
  source = sources.load_source(tiny_config)
  assert source.name == 'embedded_mnist' and source.class_names == tuple('0123456789')
  np.testing.assert_array_equal(np.bincount(source.labels), [500] * 10)
  np.testing.assert_array_equal(source.labels, sources.load_embedded_mnist()[1])


def test_pipeline_labels_agree_with_the_mnist_classifier(tiny_config):
  """Real digits: the project's classifier (97% on held-out digits) reads the pipeline's images
  as the labels the pipeline gives them. Mispaired labels would agree about 10% of the time."""
  tiny_config.model.num_classes = 10
  source = sources.load_source(tiny_config)
  images, labels = next(iter(input_pipeline.make_dataset(source, tiny_config, 200)))
  predicted = np.argmax(classifier_lib.load_classifier()(images, training=False), axis=1)
  assert np.mean(predicted == labels.numpy()) >= 0.95


@pytest.mark.parametrize('name, shape, names', [
    ('cifar10', (32, 32, 3), sources.CIFAR10_CLASS_NAMES),
    ('fashion_mnist', (28, 28, 1), sources.FASHION_MNIST_CLASS_NAMES),
])
def test_keras_datasets_carry_labels_and_names(tiny_config, monkeypatch, name, shape, names):
  # keras.datasets cannot download here: a loader with keras' return layout stands in (CIFAR-10
  # gives labels as [N, 1], Fashion-MNIST as [N] and images without a channel axis).
  images = _RNG.integers(0, 256, (12,) + (shape if shape[-1] == 3 else shape[:2]), np.uint8)
  labels = np.arange(12, dtype=np.uint8) % 10
  keras_labels = labels[:, None] if name == 'cifar10' else labels
  monkeypatch.setattr(getattr(tf.keras.datasets, name), 'load_data',
                      lambda: ((images, keras_labels), (images[:1], keras_labels[:1])))
  tiny_config.data.source, tiny_config.data.allow_download = name, True
  tiny_config.data.channels, tiny_config.data.image_size = shape[-1], shape[0]
  tiny_config.model.num_classes = 10
  source = sources.load_source(tiny_config)
  assert source.class_names == names and len(names) == 10
  np.testing.assert_array_equal(source.labels, labels)


def test_folder_class_names_are_the_sorted_sub_directories_and_are_written(tiny_config,
                                                                           tmp_path, caplog):
  _labelled_folder(tiny_config, tmp_path)
  caplog.set_level('INFO')
  source = sources.load_source(tiny_config)
  assert source.class_names == ('c0', 'c1', 'c2', 'c3', 'c4')
  mapping = [r.getMessage() for r in caplog.records if r.getMessage().startswith('Classes of')]
  assert len(mapping) == 1 and 'c0 -> 0, c1 -> 1, c2 -> 2, c3 -> 3, c4 -> 4' in mapping[0]
  train.write_class_names(str(tmp_path / 'run'), source)
  with open(tmp_path / 'run' / 'class_names.json', encoding='utf-8') as f:
    assert json.load(f) == ['c0', 'c1', 'c2', 'c3', 'c4']


def test_no_class_names_no_file(tiny_config, tmp_path):
  _labelled_npz(tiny_config, tmp_path)
  source = sources.load_source(tiny_config)
  assert source.labels is not None and source.class_names is None
  train.write_class_names(str(tmp_path / 'run'), source)
  assert not (tmp_path / 'run' / 'class_names.json').exists()


def test_folder_skipping_bad_files_keeps_labels_aligned(tiny_config, tmp_path):
  true_labels = _labelled_folder(tiny_config, tmp_path)
  (tmp_path / 'images' / 'c1' / 'broken.png').write_text('not an image')
  tiny_config.data.on_bad_image = 'skip'
  source = sources.load_source(tiny_config)
  assert source.size == NUM_EXAMPLES
  images, labels = next(iter(input_pipeline.make_dataset(source, tiny_config, NUM_EXAMPLES)))
  _check_pairs(images.numpy(), labels.numpy(), true_labels)


def test_unconditional_folder_keeps_accepting_any_layout(tiny_config, tmp_path):
  _labelled_folder(tiny_config, tmp_path)
  Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / 'images' / 'root.png')
  source = sources.load_source(_unconditional(tiny_config))
  assert source.size == NUM_EXAMPLES + 1 and source.labels is None


# Errors: one line, naming the source and what is allowed.

def test_npz_without_labels_names_the_file(tiny_config, tmp_path):
  _labelled_npz(tiny_config, tmp_path, key=None)
  message = helpers.load_source_error(tiny_config)
  assert message.startswith(f"data.path={tiny_config.data.path!r} (data.source='npz') has no 'y' "
                            "or 'labels' array (it holds ['x']); model.num_classes=5 needs")
  assert 'model.num_classes=0 (unconditional)' in message


def test_npz_labels_key_is_accepted(tiny_config, tmp_path):
  true_labels = _labelled_npz(tiny_config, tmp_path, key='labels')
  np.testing.assert_array_equal(sources.load_source(tiny_config).labels, true_labels)


def test_plain_npy_has_no_labels(tiny_config, tmp_path):
  path = tmp_path / 'images.npy'
  np.save(path, np.zeros((5, 28, 28, 1), np.uint8))
  tiny_config.data.source, tiny_config.data.path = 'npz', str(path)
  tiny_config.model.num_classes = NUM_CLASSES
  assert ("is a plain .npy array, with no 'y' or 'labels' array"
          in helpers.load_source_error(tiny_config))


@pytest.mark.parametrize('labels, found', [
    (np.array([0, 1, 12, 3, 12] * 4), "8 of 20 labels lie outside [0, 5) (model.num_classes=5): "
     '12 (8x); allowed: 0..4; set model.num_classes=13'),
    (np.array([0, -1, 2, 3, 7] * 4), "8 of 20 labels lie outside [0, 5) (model.num_classes=5): "
     '-1 (4x), 7 (4x); allowed: 0..4'),
    (np.arange(15), '15 labels for 20 images; allowed: one label per image'),
    (np.zeros(20, np.float32), 'labels of dtype float32; allowed: integers in [0, 5)'),
    (np.eye(5, dtype=np.int64)[np.arange(20) % 5], 'labels of shape (20, 5); allowed: one integer '
     'label per image, shape [20] (one-hot? store labels.argmax(1))'),
])
def test_bad_npz_labels_name_the_file_the_values_and_the_range(tiny_config, tmp_path, labels,
                                                               found):
  _labelled_npz(tiny_config, tmp_path, labels=labels)
  message = helpers.load_source_error(tiny_config)
  assert message.startswith(f"data.path={tiny_config.data.path!r} (data.source='npz') array 'y': "
                            f'{found}'), message
  if 'outside' in found and labels.min() < 0:
    assert 'set model.num_classes' not in message  # More classes would not fix negative labels.


def test_embedded_mnist_with_too_few_classes(tiny_config):
  tiny_config.model.num_classes = 4
  assert helpers.load_source_error(tiny_config) == (
      "data.source='embedded_mnist': 3000 of 5000 labels lie outside [0, 4) "
      '(model.num_classes=4): 4 (500x), 5 (500x), 6 (500x), 7 (500x), 8 (500x), ...; allowed: '
      '0..3; set model.num_classes=10')


def test_folder_without_class_sub_directories(tiny_config, tmp_path):
  for index in range(3):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / f'img{index}.png')
  tiny_config.data.source, tiny_config.data.path = 'folder', str(tmp_path)
  tiny_config.model.num_classes = NUM_CLASSES
  assert helpers.load_source_error(tiny_config).startswith(
      f"data.path={str(tmp_path)!r} (data.source='folder') has images but no class "
      'sub-directories; model.num_classes=5 needs a label per image')


def test_folder_with_images_beside_the_class_sub_directories_fails_before_decoding(tiny_config,
                                                                                  tmp_path):
  _labelled_folder(tiny_config, tmp_path)
  # Does not decode either: the layout error comes first, before the files are decoded.
  (tmp_path / 'images' / 'stray.png').write_text('not an image')
  assert helpers.load_source_error(tiny_config) == (
      f"data.path={tiny_config.data.path!r} (data.source='folder') has 1 image file(s) directly "
      'in it (stray.png) besides its 5 class sub-directories; with model.num_classes=5 every '
      'image must be in a class sub-directory')


def test_folder_with_more_classes_than_num_classes(tiny_config, tmp_path):
  _labelled_folder(tiny_config, tmp_path)
  tiny_config.model.num_classes = 3
  assert helpers.load_source_error(tiny_config) == (
      f"data.path={tiny_config.data.path!r} (data.source='folder') has 5 class sub-directories "
      '(c0, c1, c2, c3, c4) but model.num_classes=3; allowed: at most num_classes class '
      'sub-directories (set model.num_classes=5)')


def test_source_refuses_misaligned_labels():
  with pytest.raises(ValueError, match=r"labels must be int32 \[3\] \(one per image\), got "
                     r'int32 \(2,\)'):
    sources.Source('npz', images=np.zeros((3, 2, 2, 1), np.uint8),
                   labels=np.zeros(2, np.int32))


def test_subset_keeps_labels_with_their_examples():
  source = sources.Source('npz', images=np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1),
                          labels=np.array([3, 2, 1, 0], np.int32))
  subset = source.subset(np.array([2, 0]))
  np.testing.assert_array_equal(subset.images.reshape(-1), [2, 0])
  np.testing.assert_array_equal(subset.labels, [1, 3])


def test_fewer_class_sub_directories_than_num_classes_warn_naming_the_empty_labels(
    tiny_config, tmp_path, caplog):
  true_labels = _labelled_folder(tiny_config, tmp_path)
  tiny_config.model.num_classes = 7
  source = sources.load_source(tiny_config)
  np.testing.assert_array_equal(np.sort(source.labels), np.sort(true_labels))
  warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
  assert warnings == ['Data: folder has no images of label(s) 5, 6 of model.num_classes=7; the '
                      'generator is still trained on them, against no real examples']


def test_command_line_names_labels_out_of_range_before_any_work(tmp_path):
  workdir = tmp_path / 'run'
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'CUDA_VISIBLE_DEVICES': ''}
  result = subprocess.run(
      [sys.executable, '-m', 'wgan_dist.main', '--config=configs/mnist.py:tiny',
       f'--workdir={workdir}', '--config.model.num_classes=4'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: data.source='embedded_mnist': 3000 of 5000 labels lie outside [0, 4)")
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()
