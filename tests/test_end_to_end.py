"""The real `train_and_evaluate` on the tiny config: events, samples, checkpoints, resume."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from wgan_dist import train

SCALAR_TAGS = {
    'train/critic_loss', 'train/generator_loss', 'train/gradient_penalty',
    'train/wasserstein_estimate', 'train/critic_grad_norm', 'train/generator_grad_norm',
    'perf/steps_per_sec', 'perf/images_per_sec'}


def _events(workdir: str) -> event_accumulator.EventAccumulator:
  accumulator = event_accumulator.EventAccumulator(
      os.path.join(workdir, 'train'), size_guidance={event_accumulator.TENSORS: 0})
  return accumulator.Reload()


def _series(events: event_accumulator.EventAccumulator, tag: str) -> list[tuple[int, float]]:
  """(step, value) of a TF2 scalar summary (stored as a tensor event)."""
  return [(event.step, float(tensor_util.make_ndarray(event.tensor_proto)))
          for event in events.Tensors(tag)]


def _plugin(events: event_accumulator.EventAccumulator, tag: str) -> str:
  return events.SummaryMetadata(tag).plugin_data.plugin_name


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """Tiny config, 4 steps with logs, samples and saves every 2; then resumed to 6 steps."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path_factory.mktemp('workdir'))
  config = mnist.get_config('tiny')
  first = train.train_and_evaluate(config, workdir)
  first_checkpoints = sorted(os.listdir(os.path.join(workdir, 'checkpoints')))
  config.train.num_steps = 6
  second = train.train_and_evaluate(config, workdir)
  return workdir, first, first_checkpoints, second


@pytest.mark.slow
def test_event_files_hold_the_spec_tags(trained):
  workdir, *_ = trained
  events = _events(workdir)
  tags = set(events.Tags()['tensors'])
  assert SCALAR_TAGS <= tags, tags
  assert all(_plugin(events, tag) == 'scalars' for tag in SCALAR_TAGS)
  assert _plugin(events, 'samples') == 'images' and _plugin(events, 'config') == 'text'
  # Logged every 2 steps; the resumed run continues at 6, not at 2 again.
  assert [step for step, _ in _series(events, 'train/critic_loss')] == [2, 4, 6]
  for tag in SCALAR_TAGS:
    assert all(np.isfinite(value) for _, value in _series(events, tag)), tag
  # The first window of each run is the tracing call; throughput is logged where it is measured.
  speeds = _series(events, 'perf/steps_per_sec')
  assert [step for step, _ in speeds] == [4] and speeds[0][1] > 0
  images_per_step = 2 * 8  # n_critic * global batch of the tiny config.
  assert _series(events, 'perf/images_per_sec')[0][1] == pytest.approx(
      speeds[0][1] * images_per_step, rel=1e-5)


def test_samples_are_png_grids(trained):
  workdir, *_ = trained
  names = sorted(os.listdir(os.path.join(workdir, 'samples')))
  assert names == ['step_000002.png', 'step_000004.png', 'step_000006.png']
  with Image.open(os.path.join(workdir, 'samples', names[-1])) as image:
    pixels = np.asarray(image)
  # 4x4 grid of 28x28 digits with 2-pixel borders.
  assert pixels.shape[:2] == (4 * 30 + 2, 4 * 30 + 2)
  assert pixels.std() > 0  # Not a blank image.


def test_checkpoints_and_resume(trained):
  workdir, first, first_checkpoints, second = trained
  assert 'ckpt-4.index' in first_checkpoints
  assert 'ckpt-6.index' in os.listdir(os.path.join(workdir, 'checkpoints'))
  assert set(first) >= {'critic_loss', 'gradient_penalty', 'wasserstein_estimate'}
  assert all(np.isfinite(v) for v in second.values())


def test_config_json_is_the_resolved_config(trained):
  workdir, *_ = trained
  with open(os.path.join(workdir, 'config.json')) as f:
    saved = json.load(f)
  assert saved['train']['num_steps'] == 6
  assert saved['model']['base_filters'] == 4
  assert saved['data']['source'] == 'embedded_mnist'


def test_rerun_when_done_does_nothing(trained):
  workdir, *_ = trained
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.train.num_steps = 6
  before = sorted(os.listdir(os.path.join(workdir, 'checkpoints')))
  assert train.train_and_evaluate(config, workdir) == {}
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == before


@pytest.mark.slow
def test_two_replica_run_trains(tmp_path):
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.distribution.cpu_replicas = 2
  config.train.num_steps = 2
  means = train.train_and_evaluate(config, str(tmp_path))
  assert all(np.isfinite(v) for v in means.values())
  assert os.path.exists(os.path.join(str(tmp_path), 'checkpoints', 'ckpt-2.index'))


@pytest.mark.slow
def test_jit_compile_trains_like_the_plain_loop(tiny_config):
  """train.jit_compile=True compiles the critic's loss and gradients with XLA (not the loop)."""
  from tests import helpers  # pylint: disable=import-outside-toplevel
  plain, _, _ = helpers.train_steps(tiny_config, cpu_replicas=1, num_steps=2)
  tiny_config.train.jit_compile = True
  compiled, _, _ = helpers.train_steps(tiny_config, cpu_replicas=1, num_steps=2)
  for a, b in zip(plain, compiled):
    for name in ('critic_loss', 'gradient_penalty', 'generator_loss'):
      np.testing.assert_allclose(b[name], a[name], rtol=1e-3, atol=1e-4, err_msg=name)
