"""Nothing lost: stop on SIGTERM/SIGINT with a checkpoint, fall back past an unreadable
checkpoint, refuse a checkpoint of another model, and stop on NaN before saving it."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tests.conftest import REPO_ROOT
from wgan_dist.training import checkpointing
from wgan_dist.algorithm import steps
from wgan_dist import train

MAIN = [sys.executable, '-m', 'wgan_dist.main', '--config=configs/mnist.py:tiny',
        '--config.data.allow_download=False']


def _checkpoint_steps(workdir) -> list[int]:
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    return []
  return sorted(int(name[len('ckpt-'):-len('.index')]) for name in os.listdir(directory)
                if name.endswith('.index'))


def _run_main(args, timeout=180) -> subprocess.CompletedProcess:
  return subprocess.run(MAIN + args, cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=timeout, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'),
                        check=False)


@pytest.mark.slow
@pytest.mark.parametrize('signum, exit_code', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_a_checkpoint_and_the_rerun_resumes(tmp_path, signum, exit_code):
  workdir = str(tmp_path / 'workdir')
  # Long enough never to finish; no periodic checkpoint, so the only save is the signal's.
  args = [f'--workdir={workdir}', '--config.train.num_steps=1000000',
          '--config.train.steps_per_loop=1', '--config.log_every_steps=1',
          '--config.checkpoint_every_steps=1000000', '--config.sample_every_steps=1000000']
  log_path = tmp_path / 'run.log'
  with open(log_path, 'w') as log:
    process = subprocess.Popen(MAIN + args, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    deadline = time.monotonic() + 120
    while 'step 3/' not in log_path.read_text():  # Training is under way.
      assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
      time.sleep(0.2)
    process.send_signal(signum)
    assert process.wait(timeout=60) == exit_code, log_path.read_text()[-3000:]
  output = log_path.read_text()
  saved = _checkpoint_steps(workdir)
  assert len(saved) == 1 and saved[0] >= 3, output[-2000:]
  assert f'stopped by {signal.Signals(signum).name} at step {saved[0]}' in output

  rerun = _run_main([f'--workdir={workdir}', f'--config.train.num_steps={saved[0] + 2}'])
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f'Resuming at step {saved[0]} of {saved[0] + 2}' in rerun.stderr
  assert _checkpoint_steps(workdir)[-1] == saved[0] + 2


@pytest.mark.slow
def test_an_unreadable_newest_checkpoint_is_skipped_with_a_warning(tiny_config, tmp_path,
                                                                   caplog):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config, workdir)  # Saves at steps 2 and 4.
  assert _checkpoint_steps(workdir) == [2, 4]
  newest = os.path.join(workdir, 'checkpoints', 'ckpt-4.data-00000-of-00001')
  with open(newest, 'r+b') as f:  # What a save killed midway can leave: a truncated file.
    f.truncate(os.path.getsize(newest) // 3)
  tiny_config.train.num_steps = 6
  caplog.set_level('INFO')
  train.train_and_evaluate(tiny_config, workdir)
  messages = '\n'.join(record.getMessage() for record in caplog.records)
  assert 'Skipping checkpoint' in messages and 'ckpt-4' in messages
  assert 'Resuming at step 2 of 6' in messages
  assert _checkpoint_steps(workdir)[-1] == 6


@pytest.mark.slow
def test_a_checkpoint_of_another_model_is_a_clear_error(tiny_config, tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config, workdir)
  before = sorted(os.listdir(os.path.join(workdir, 'checkpoints')))
  wider = tiny_config.copy_and_resolve_references()
  wider.model.base_filters = 8
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match='does not fit the configured model.*another --workdir'):
    train.train_and_evaluate(wider, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == before  # Nothing lost.

  # The command line says it in one line, with status 1.
  result = _run_main([f'--workdir={workdir}', '--config.model.base_filters=8'])
  assert result.returncode == 1
  assert 'error: checkpoint ' in result.stderr and 'Traceback' not in result.stderr


def test_non_finite_training_stops_naming_the_step_and_saves_nothing_broken(tiny_config,
                                                                           tmp_path):
  workdir = str(tmp_path)
  tiny_config.train.learning_rate = 1e30  # Weights overflow within a few steps.
  tiny_config.train.num_steps = 50
  tiny_config.checkpoint_every_steps = 1
  tiny_config.train.steps_per_loop = 10
  with pytest.raises(steps.NonFiniteError, match='non-finite .* at generator step') as raised:
    train.train_and_evaluate(tiny_config, workdir)
  bad_step = raised.value.step
  assert 1 <= bad_step < 50
  saved = _checkpoint_steps(workdir)
  assert all(step < bad_step for step in saved), (saved, bad_step)
  for step in saved:  # Every checkpoint kept holds finite weights only.
    reader = tf.train.load_checkpoint(os.path.join(workdir, 'checkpoints', f'ckpt-{step}'))
    for name in reader.get_variable_to_shape_map():
      value = reader.get_tensor(name)
      if np.issubdtype(np.asarray(value).dtype, np.floating):
        assert np.all(np.isfinite(value)), (step, name)


# The conditional case also augments with an adaptive p, adjusted at every step: p, the gauge's
# readings and the augmentation draws must continue exactly across the resume.
ADAPTIVE_AUGMENTATION = ['--config.augment.policy=translation,cutout', '--config.augment.p=0.5',
                         '--config.augment.target=0.01', '--config.augment.interval=1',
                         '--config.augment.adjust_kimg=0.16']


@pytest.mark.parametrize('model_flags', [
    [], ['--config.model.num_classes=10', '--config.model.conditioning=acgan',
         *ADAPTIVE_AUGMENTATION]],
    ids=['unconditional', 'conditional_augmented'])
@pytest.mark.slow
def test_exact_resume_equals_training_straight_through(tmp_path, model_flags):
  """2N steps in one run == N steps, stop, resume, N more: losses, weights, Adam state, EMA
  (and, for the conditional augmented run, the labels read and drawn after the resume, the
  augmentation's draws and its adaptive p)."""
  common = ['--config.log_every_steps=1', '--config.checkpoint_every_steps=3',
            '--config.train.ema_decay=0.9', '--config.train.steps_per_loop=3', *model_flags]
  # TF_ENABLE_ONEDNN_OPTS=0: once, with the suite on two processes, step 3 of this test
  # differed by 4e-6 relative. The likely cause (from TensorFlow's source): its oneDNN kernels
  # (the x86 default) run single-threaded when called from a thread of the intra-op pool and in
  # parallel otherwise, which depends on scheduling, and the two sum in different orders.
  # Eigen's kernels split work by the pool's size only. docs/resume.md.
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', TF_DETERMINISTIC_OPS='1',
             TF_ENABLE_ONEDNN_OPTS='0')

  def run(workdir, num_steps):
    result = subprocess.run(MAIN + common + [f'--workdir={workdir}',
                                             f'--config.train.num_steps={num_steps}'],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, env=env,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]

  straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
  run(straight, 6)
  run(resumed, 3)
  run(resumed, 6)
  tags = ['train/critic_loss', 'train/gradient_penalty', 'train/generator_loss',
          'train/critic_grad_norm'] + (['train/critic_classifier_loss', 'train/augment_p',
                                        'train/critic_overfit'] if model_flags else [])
  for tag in tags:
    a = helpers.event_scalars(str(straight), tag)
    b = helpers.event_scalars(str(resumed), tag)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6], tag
    np.testing.assert_array_equal([b[step] for step in sorted(b)],
                                  [a[step] for step in sorted(a)], err_msg=tag)
  readers = [tf.train.load_checkpoint(str(workdir / 'checkpoints' / 'ckpt-6'))
             for workdir in (straight, resumed)]
  names = set(readers[0].get_variable_to_shape_map())
  assert names == set(readers[1].get_variable_to_shape_map())
  assert any(name.startswith('ema_generator/') for name in names)
  assert any('critic_optimizer' in name for name in names)
  for name in names - {'save_counter/.ATTRIBUTES/VARIABLE_VALUE'}:
    np.testing.assert_array_equal(readers[1].get_tensor(name), readers[0].get_tensor(name),
                                  err_msg=name)


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(tiny_config, tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config, workdir)
  for step in _checkpoint_steps(workdir):
    data_file = os.path.join(workdir, 'checkpoints', f'ckpt-{step}.data-00000-of-00001')
    with open(data_file, 'r+b') as f:
      f.truncate(os.path.getsize(data_file) // 3)
  before = sorted(os.listdir(os.path.join(workdir, 'checkpoints')))
  tiny_config.train.num_steps = 6
  with pytest.raises(checkpointing.UnreadableCheckpointsError, match='none of the 2 checkpoints'):
    train.train_and_evaluate(tiny_config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == before  # Nothing rotated.


def test_turning_on_ema_for_a_run_without_it_resumes(tiny_config, tmp_path, caplog):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config, workdir)  # No EMA; checkpoints at 2 and 4.
  tiny_config.train.ema_decay = 0.9
  tiny_config.train.num_steps = 6
  caplog.set_level('INFO')
  train.train_and_evaluate(tiny_config, workdir)
  messages = '\n'.join(record.getMessage() for record in caplog.records)
  assert 'Resuming at step 4 of 6' in messages
  assert 'Starting the EMA generator from the restored generator' in messages
  reader = tf.train.load_checkpoint(os.path.join(workdir, 'checkpoints', 'ckpt-6'))
  assert any(name.startswith('ema_generator/') for name in reader.get_variable_to_shape_map())
