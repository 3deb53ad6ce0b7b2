"""Reference statistics computed once (wgan_dist/eval/reference_stats.py) and the paper protocol
(`evaluate --protocol=paper`), end to end with the MNIST classifier backbone on the tiny config.

`python -m wgan_dist.evaluate --reference_stats=OUT.npz --config=...` writes the file; an
evaluation that reads it (`eval_reference_stats`, in training and in `evaluate`) gives the same
figures as one that embeds the real images; TTUR's mu/sigma-only layout gives FID and the score;
a file from another network or image size is refused with one line naming the file and both
values.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from wgan_dist import train
from wgan_dist.eval import evaluator as evaluator_lib
from wgan_dist.eval import records
from wgan_dist.eval import reference_stats

NUM = 40


def _tiny():
  from configs import mnist  # pylint: disable=import-outside-toplevel
  return mnist.get_config('tiny')


@pytest.fixture(scope='module')
def stats_path(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('stats') / 'mnist_stats.npz')
  result = helpers.run_module('wgan_dist.evaluate', f'--reference_stats={path}',
                              '--config=configs/mnist.py:tiny')
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  assert summary['reference_stats'] == path and summary['num_reference'] == 1000
  return path


def test_the_file_holds_the_evaluators_real_side(stats_path):
  evaluator = evaluator_lib.Evaluator(_tiny(), tf.distribute.get_strategy())
  stats = reference_stats.load(stats_path)
  np.testing.assert_array_equal(stats.mu, evaluator.real_statistics[0])
  np.testing.assert_array_equal(stats.sigma, evaluator.real_statistics[1])
  real_features = evaluator._real_features  # pylint: disable=protected-access
  np.testing.assert_array_equal(stats.features, real_features)
  assert stats.labels.shape == (1000,) and stats.features.shape == (1000, 64)
  for field in reference_stats.CHECKED_FIELDS:
    assert stats.protocol[field] == evaluator.protocol[field]
  assert stats.protocol['reference_split'] == evaluator.protocol['reference_split']


@pytest.mark.slow
def test_evaluate_and_training_reuse_the_file(stats_path, tmp_path):
  workdir = str(tmp_path / 'run')
  config = _tiny()
  # Training evaluates at its last step, reading the real side from the file.
  config.eval_every_steps = 4
  config.num_eval_samples = NUM
  config.eval_reference_stats = stats_path
  train.train_and_evaluate(config, workdir)
  (record,) = records.read(workdir)
  assert record['protocol']['reference_stats'] == stats_path
  assert record['protocol']['reference_split'].endswith(f'statistics from {stats_path}')
  assert {'eval/density', 'eval/coverage'} <= set(record)

  def evaluate(*flags):
    result = helpers.run_module('wgan_dist.evaluate', f'--workdir={workdir}', f'--num={NUM}',
                                '--norecord', *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])

  embedded = evaluate('--eval_reference_stats=')  # The real images embedded again.
  reused = evaluate()  # The run's config names the file.
  assert embedded['protocol']['reference_stats'] is None
  assert reused['protocol']['reference_stats'] == stats_path
  tags = [tag for tag in embedded if tag.startswith('eval/')]
  assert {'eval/fid', 'eval/kid', 'eval/density', 'eval/coverage'} <= set(tags)
  for tag in tags:
    assert reused[tag] == embedded[tag], tag
  # The training-time figures are the same generator's at step 4 on the same noise.
  assert record['eval/fid'] == pytest.approx(embedded['eval/fid'], rel=1e-6)

  # TTUR's layout: mu and sigma only. FID (and the score) against them; no feature metrics.
  stats = reference_stats.load(stats_path)
  ttur = str(tmp_path / 'fid_stats_mnist.npz')
  np.savez(ttur, mu=stats.mu, sigma=stats.sigma)
  published = evaluate(f'--eval_reference_stats={ttur}')
  assert published['eval/fid'] == pytest.approx(embedded['eval/fid'], rel=1e-9)
  assert published['eval/classifier_score'] == embedded['eval/classifier_score']
  assert 'eval/kid' not in published and 'eval/density' not in published
  # A file of another network, on the command line: one line naming the file and both values.
  other = str(tmp_path / 'other_net.npz')
  reference_stats.save(other, stats.mu, stats.sigma, stats.features, stats.labels,
                       {**stats.protocol, 'feature_extractor': 'Another network'})
  helpers.assert_one_line_error(
      helpers.run_module('wgan_dist.evaluate', f'--workdir={workdir}',
                         f'--eval_reference_stats={other}'),
      other, "feature_extractor='Another network'", 'MNIST classifier')


def test_a_file_of_another_network_or_size_is_refused(stats_path, tmp_path):
  stats = reference_stats.load(stats_path)
  other = str(tmp_path / 'other_size.npz')
  reference_stats.save(other, stats.mu, stats.sigma, stats.features, stats.labels,
                       {**stats.protocol, 'image_size': [32, 32, 1]})
  config = _tiny()
  config.eval_reference_stats = other
  with pytest.raises(reference_stats.ReferenceStatsError) as caught:
    evaluator_lib.Evaluator(config, tf.distribute.get_strategy())
  message = str(caught.value)
  assert other in message and '[32, 32, 1]' in message and '[28, 28, 1]' in message
  assert '\n' not in message
  # A 2048-wide (Inception) mu/sigma file for the 64-feature classifier.
  wide = str(tmp_path / 'fid_stats_cifar10_train.npz')
  np.savez(wide, mu=np.zeros(2048), sigma=np.eye(2048))
  config.eval_reference_stats = wide
  with pytest.raises(reference_stats.ReferenceStatsError, match='2048 features.*gives 64'):
    evaluator_lib.Evaluator(config, tf.distribute.get_strategy())
  # Not statistics at all.
  junk = str(tmp_path / 'junk.npz')
  np.savez(junk, x=np.zeros(3))
  config.eval_reference_stats = junk
  with pytest.raises(reference_stats.ReferenceStatsError, match="has keys \\['x'\\]"):
    evaluator_lib.Evaluator(config, tf.distribute.get_strategy())


def test_command_line_needs_data_to_write_statistics(tmp_path):
  helpers.assert_one_line_error(
      helpers.run_module('wgan_dist.evaluate', f'--reference_stats={tmp_path}/x.npz'),
      '--reference_stats needs --config')


@pytest.mark.slow
def test_paper_protocol_end_to_end(tmp_path):
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(_tiny(), workdir)
  result = helpers.run_module('wgan_dist.evaluate', f'--workdir={workdir}', '--protocol=paper',
                              '--num=80')
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  protocol = summary['protocol']
  assert protocol['protocol'] == 'paper' and protocol['score_splits'] == 10
  assert protocol['num_generated'] == 80 and summary['num_samples'] == 80
  # MNIST has a test split: the reference is the whole of it (the embedded sample's 1,000).
  assert protocol['num_reference'] == 1000
  assert 'over 10 splits' in result.stdout
  assert summary['eval/classifier_score_split_std'] > 0
  # The score is the mean over the ten splits of the same samples' probabilities.
  (record,) = [r for r in records.read(workdir) if r['source'] == 'evaluate']
  assert record['eval/classifier_score'] == summary['eval/classifier_score']
  default = helpers.run_module('wgan_dist.evaluate', f'--workdir={workdir}', '--num=80',
                               '--norecord')
  one_split = json.loads(default.stdout.strip().splitlines()[-1])
  assert one_split['eval/fid'] == summary['eval/fid']  # Same samples, same reference.
  assert 'eval/classifier_score_split_std' not in one_split
