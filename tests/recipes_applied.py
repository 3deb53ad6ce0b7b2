"""Run by tests/test_extending.py inside a copy of the checkout to which docs/extending.md's
recipes were applied (as tests/test_recipes_applied.py there; not collected here, where the new
entries do not exist): the tiny config trains two steps with all the new entries at once (the
'mlp' architecture on 'tfrecord' data with the 'projection_acgan' conditioning and the
'histograms' action), and the data source refuses what the doc says it refuses."""

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from tests import helpers
from wgan_dist import train
from wgan_dist.algorithm import conditioning
from wgan_dist.data import errors
from wgan_dist.data import sources
from wgan_dist.models import architectures
from wgan_dist.training import actions

NUM_CLASSES = 3


def _write_records(path: str, labels: list[int]) -> np.ndarray:
  """TFRecord examples of PNG digits-to-be (known pixels) and int64 labels; the images."""
  images = np.stack([np.full((28, 28, 1), 20 * i, np.uint8) for i in range(len(labels))])
  with tf.io.TFRecordWriter(path) as writer:
    for image, label in zip(images, labels):
      feature = {'image': tf.train.Feature(bytes_list=tf.train.BytesList(
                     value=[tf.io.encode_png(image).numpy()])),
                 'label': tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feature)).SerializeToString())
  return images


def _config(path: str):
  config = helpers.tiny_config_for('mlp')
  config.data.source, config.data.path = 'tfrecord', path
  config.model.num_classes, config.model.conditioning = NUM_CLASSES, 'projection_acgan'
  config.train.num_steps = config.train.steps_per_loop = 2
  config.train.global_batch_size = 4
  config.histogram_every_steps = 1
  return config


def test_the_new_entries_are_registered():
  assert 'mlp' in architectures.ARCHITECTURES and 'tfrecord' in sources.SOURCES
  assert 'projection_acgan' in conditioning.CONDITIONINGS and 'histograms' in actions.ACTIONS
  assert list(actions.ACTIONS)[-1] == 'profile'


def test_the_tiny_config_trains_with_every_new_entry(tmp_path):
  images = _write_records(str(tmp_path / 'digits.tfrecord'), [0, 1, 2, 0, 1, 2])
  config = _config(str(tmp_path / '*.tfrecord'))
  source = sources.load_source(config)
  np.testing.assert_array_equal(source.images, images)
  np.testing.assert_array_equal(source.labels, [0, 1, 2, 0, 1, 2])
  workdir = tmp_path / 'run'
  means = train.train_and_evaluate(config, str(workdir))
  assert all(np.isfinite(value) for value in means.values())
  # The conditioning's two terms are reported; the critic's comes from the critic update.
  assert {'critic_classifier_loss', 'generator_classifier_loss'} <= set(means)
  assert 2 in helpers.event_scalars(str(workdir), 'train/critic_loss')  # Logged at the end.
  events = event_accumulator.EventAccumulator(str(workdir / 'train'),
                                              size_guidance={event_accumulator.TENSORS: 0})
  events.Reload()
  tags = [tag for tag in events.Tags()['tensors'] if tag.startswith('weights/')]
  assert any(tag.startswith('weights/mlp_generator/') for tag in tags)
  assert any(tag.startswith('weights/mlp_critic/') for tag in tags)
  assert {event.step for event in events.Tensors(tags[0])} == {1, 2}


def test_the_source_refuses_a_path_matching_nothing_and_a_label_out_of_range(tmp_path):
  config = _config(str(tmp_path / 'none*.tfrecord'))
  with pytest.raises(errors.DataError, match=r"^data\.path='.*none\*\.tfrecord' "
                     r"\(data\.source='tfrecord'\) matches no file$"):
    sources.load_source(config)
  _write_records(str(tmp_path / 'bad.tfrecord'), [0, 5])
  config = _config(str(tmp_path / 'bad.tfrecord'))
  with pytest.raises(errors.DataError, match=r"^data\.path=.*bad\.tfrecord.*lie outside"):
    sources.load_source(config)
