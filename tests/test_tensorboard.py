"""What TensorBoard shows to compare runs: both learning rates as scalars, and the HParams
dashboard (the flattened config as hyperparameters, eval/* as metrics), read back with
TensorBoard's own readers."""

import glob
import os

import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import plugin_data_pb2

from tests import helpers
from wgan_dist import train

LEARNING_RATE = 1e-4
GENERATOR_LEARNING_RATE = 3e-4


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """The tiny config, 4 steps, both rates decaying linearly to 0, evaluated at step 4."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.train.learning_rate = LEARNING_RATE
  config.train.generator_learning_rate = GENERATOR_LEARNING_RATE
  config.train.lr_decay = 'linear'
  config.eval_every_steps = 4
  config.num_eval_samples = 16
  path = str(tmp_path_factory.mktemp('tensorboard'))
  train.train_and_evaluate(config, path)
  return path


def test_learning_rates_are_logged(workdir):
  # Logged after steps 2 and 4 of 4: the rate the next update uses, lr * (1 - s/4).
  critic = helpers.event_scalars(workdir, 'train/learning_rate')
  generator = helpers.event_scalars(workdir, 'train/generator_learning_rate')
  assert critic == pytest.approx({2: LEARNING_RATE / 2, 4: 0.0})
  assert generator == pytest.approx({2: GENERATOR_LEARNING_RATE / 2, 4: 0.0})


def _hparams_plugin_data(workdir: str) -> dict:
  """{tag: HParamsPluginData} of every hparams-plugin summary in workdir/train."""
  found = {}
  for path in glob.glob(os.path.join(workdir, 'train', 'events.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        plugin = value.metadata.plugin_data
        if plugin.plugin_name == hparams_metadata.PLUGIN_NAME:
          found[value.tag] = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
  return found


def test_hparams_dashboard_has_the_config_and_eval_metrics(workdir):
  found = _hparams_plugin_data(workdir)
  assert {hparams_metadata.EXPERIMENT_TAG, hparams_metadata.SESSION_START_INFO_TAG} <= set(found)
  hparams = found[hparams_metadata.SESSION_START_INFO_TAG].session_start_info.hparams
  assert hparams['train.learning_rate'].number_value == pytest.approx(LEARNING_RATE)
  assert hparams['train.lr_decay'].string_value == 'linear'
  assert hparams['data.source'].string_value == 'embedded_mnist'
  assert hparams['train.jit_compile'].bool_value is False
  assert hparams['profile_steps'].string_value == '(0, 0)'
  experiment = found[hparams_metadata.EXPERIMENT_TAG].experiment
  assert {info.name for info in experiment.hparam_infos} == set(hparams)
  metrics = [info.name.tag for info in experiment.metric_infos]
  assert metrics == ['eval/fid', 'eval/kid', 'eval/precision', 'eval/recall',
                     'eval/classifier_score', 'eval/min_class_share']
  # The metrics are scalars of the same run, so the dashboard finds their values.
  for tag in metrics:
    assert set(helpers.event_scalars(workdir, tag)) == {4}
