"""Multi-worker training with real worker processes on 127.0.0.1 (one CPU replica each).

Two workers must compute what one process with two logical CPU replicas computes; only the chief
writes into the workdir; a lost worker ends the others with a message naming it, and the job
then resumes from the chief's last checkpoint.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import helpers
from tests.conftest import REPO_ROOT
from wgan_dist.dist import distribution
from wgan_dist.dist import peers

# Every test here shares a training run or starts processes: the full suite only.
pytestmark = pytest.mark.slow

TINY = 'configs/mnist.py:tiny'
OFFLINE = '--config.data.allow_download=False'
LOSS_TAGS = ('critic_loss', 'gradient_penalty', 'wasserstein_estimate', 'generator_loss')


def _start_worker(hosts: list[str], index: int, flags: list[str], tmpdir: str,
                  log_path: str) -> subprocess.Popen:
  env = dict(os.environ, TMPDIR=tmpdir, TF_CPP_MIN_LOG_LEVEL='2', TF_CONFIG=json.dumps(
      {'cluster': {'worker': hosts}, 'task': {'type': 'worker', 'index': index}}))
  with open(log_path, 'w') as log:
    return subprocess.Popen(
        [sys.executable, '-m', 'wgan_dist.main', f'--config={TINY}', OFFLINE,
         '--config.distribution.strategy=multi_worker', *flags],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _start_cluster(num_workers: int, flags: list[str], tmp_path, name: str):
  hosts = distribution.loopback_hosts(num_workers)
  workers, logs = [], []
  for index in range(num_workers):
    tmpdir = tmp_path / f'{name}_tmp{index}'
    tmpdir.mkdir()
    logs.append(str(tmp_path / f'{name}_worker{index}.log'))
    workers.append(_start_worker(hosts, index, flags, str(tmpdir), logs[-1]))
  return workers, logs


def _wait(workers, logs, timeout: float) -> list[int]:
  deadline = time.monotonic() + timeout
  codes = []
  for worker, log in zip(workers, logs):
    try:
      codes.append(worker.wait(timeout=max(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
      for other in workers:
        other.kill()
      pytest.fail(f'a worker did not finish within {timeout} s; log:\n' + _tail(log))
  return codes


def _tail(path: str, lines: int = 30) -> str:
  with open(path) as f:
    return ''.join(f.readlines()[-lines:])


def _local_cluster(tmp_path, *flags: str):
  """launch/local_cluster.sh 2 with the tiny config; returns (workdir, scratch, exit code, the
  chief's and worker 1's logs)."""
  workdir, scratch, logs = tmp_path / 'workdir', tmp_path / 'tmp', tmp_path / 'logs'
  scratch.mkdir()
  env = dict(os.environ, TMPDIR=str(scratch), LOCAL_CLUSTER_LOG_DIR=str(logs),
             TF_CPP_MIN_LOG_LEVEL='2')
  with open(tmp_path / 'chief.log', 'w') as chief_log:
    code = subprocess.run(
        ['launch/local_cluster.sh', '2', f'--config={TINY}', OFFLINE, f'--workdir={workdir}',
         *flags], cwd=REPO_ROOT, env=env, stdout=chief_log, stderr=subprocess.STDOUT,
        timeout=300, check=False).returncode
  return workdir, scratch, code, [str(tmp_path / 'chief.log'), str(logs / 'worker1.log')]


@pytest.fixture(scope='module')
def two_worker_run(tmp_path_factory):
  """launch/local_cluster.sh: the tiny config for 3 steps on two workers, logging every step."""
  return _local_cluster(tmp_path_factory.mktemp('two_workers'), '--config.train.num_steps=3',
                        '--config.log_every_steps=1', '--config.checkpoint_every_steps=2')


def test_both_workers_finish_and_only_the_chief_writes(two_worker_run):
  workdir, scratch, code, logs = two_worker_run
  assert code == 0, [_tail(log) for log in logs]
  assert sorted(os.listdir(workdir)) == ['checkpoints', 'config.json', 'samples', 'train']
  assert sorted(os.listdir(workdir / 'checkpoints')) == [
      'checkpoint', 'ckpt-2.data-00000-of-00001', 'ckpt-2.index', 'ckpt-3.data-00000-of-00001',
      'ckpt-3.index']
  assert len(os.listdir(workdir / 'train')) == 1  # One event file: the chief's.
  assert helpers.event_scalars(str(workdir), 'train/critic_loss').keys() == {1, 2, 3}
  # The non-chief saved into a temporary directory each time, and removed it.
  assert 'Saved checkpoint at step 3: the chief keeps it' in _tail(logs[1], 200)
  assert os.listdir(scratch) == []


def test_two_workers_equal_two_replicas_in_one_process(two_worker_run, tiny_config):
  workdir, _, code, _ = two_worker_run
  assert code == 0
  history, _, _ = helpers.train_steps(tiny_config, cpu_replicas=2, num_steps=3)
  for tag in LOSS_TAGS:
    logged = helpers.event_scalars(str(workdir), f'train/{tag}')
    expected = [step_metrics[tag] for step_metrics in history]
    np.testing.assert_allclose([logged[step] for step in (1, 2, 3)], expected, rtol=1e-5,
                               atol=1e-6, err_msg=tag)


def test_two_conditional_workers_equal_two_replicas_in_one_process(tmp_path, tiny_config):
  """Labels follow their images into each worker's slice, the generator's labels are the same
  global draw on every worker, conditional batch norm (dcgan) syncs across the workers, and the
  augmentation's draws (p = 0.5) are the global batch's, sliced per worker."""
  flags = ['--config.model.num_classes=10', '--config.model.conditioning=projection',
           '--config.model.architecture=dcgan', '--config.augment.policy=translation,cutout',
           '--config.augment.p=0.5']
  workdir, _, code, logs = _local_cluster(tmp_path, '--config.train.num_steps=2',
                                          '--config.log_every_steps=1', *flags)
  assert code == 0, [_tail(log) for log in logs]
  tiny_config.model.num_classes = 10
  tiny_config.model.conditioning = 'projection'
  tiny_config.model.architecture = 'dcgan'
  tiny_config.augment.policy = 'translation,cutout'
  tiny_config.augment.p = 0.5
  history, _, _ = helpers.train_steps(tiny_config, cpu_replicas=2, num_steps=2)
  for tag in LOSS_TAGS:
    logged = helpers.event_scalars(str(workdir), f'train/{tag}')
    np.testing.assert_allclose([logged[step] for step in (1, 2)],
                               [step_metrics[tag] for step_metrics in history], rtol=1e-5,
                               atol=1e-6, err_msg=tag)


def test_a_profiled_run_keeps_the_workers_in_step(tmp_path):
  """profile_steps ends loop calls at its edges on every worker, not only on the chief (which
  traces): otherwise the workers would call the step with different sizes and deadlock."""
  # steps_per_loop=2 and a trace of step 1 alone: calls of 1, 1 and 1 steps on both workers.
  workdir, _, code, logs = _local_cluster(
      tmp_path, '--config.train.num_steps=3', '--config.train.steps_per_loop=2',
      '--config.log_every_steps=3', '--config.checkpoint_every_steps=3',
      '--config.sample_every_steps=3', '--config.profile_steps=(1,2)')
  assert code == 0, [_tail(log) for log in logs]
  assert helpers.event_scalars(str(workdir), 'train/critic_loss').keys() == {3}
  traces = [name for _, _, names in os.walk(workdir / 'profile') for name in names]
  assert any(name.endswith('.xplane.pb') for name in traces), traces


def test_a_killed_worker_stops_the_other_and_the_job_resumes(tmp_path):
  workdir = tmp_path / 'workdir'
  timeout = 20
  flags = [f'--workdir={workdir}', '--config.train.num_steps=100000',
           '--config.train.steps_per_loop=1', '--config.checkpoint_every_steps=5',
           '--config.log_every_steps=5', '--config.sample_every_steps=100000',
           f'--config.distribution.peer_timeout_secs={timeout}']
  workers, logs = _start_cluster(2, flags, tmp_path, 'killed')
  checkpoints = workdir / 'checkpoints'
  deadline = time.monotonic() + 240
  while not (checkpoints.exists() and any(n.endswith('.index') for n in os.listdir(checkpoints))):
    if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
      for worker in workers:
        worker.kill()
      pytest.fail('no checkpoint appeared; chief log:\n' + _tail(logs[0]))
    time.sleep(0.5)
  workers[1].send_signal(signal.SIGKILL)
  killed_at = time.monotonic()
  code = _wait(workers[:1], logs[:1], timeout=timeout + 60)[0]
  assert time.monotonic() - killed_at < timeout + 60
  chief_log = _tail(logs[0], 400)
  assert code == peers.EXIT_LOST_WORKER, chief_log
  assert 'error: lost worker 1 (127.0.0.1:' in chief_log

  # Rerun the job: it resumes from the chief's newest checkpoint and finishes 2 steps later.
  with open(checkpoints / 'checkpoint') as f:
    saved_step = int(f.readline().split('ckpt-')[1].strip().strip('"'))
  flags = [flag for flag in flags if 'num_steps' not in flag]
  workers, logs = _start_cluster(
      2, flags + [f'--config.train.num_steps={saved_step + 2}'], tmp_path, 'rerun')
  assert _wait(workers, logs, timeout=300) == [0, 0], _tail(logs[0])
  assert f'Resuming at step {saved_step} of {saved_step + 2}' in _tail(logs[0], 400)
  assert f'ckpt-{saved_step + 2}.index' in os.listdir(checkpoints)


def test_a_worker_that_never_starts_ends_the_job_within_the_timeout(tmp_path):
  workdir = tmp_path / 'workdir'
  hosts = distribution.loopback_hosts(2)
  log = str(tmp_path / 'alone.log')
  started = time.monotonic()
  worker = _start_worker(hosts, 0, [f'--workdir={workdir}',
                                    '--config.distribution.peer_timeout_secs=5'],
                         str(tmp_path), log)
  code = _wait([worker], [log], timeout=120)[0]
  assert code == peers.EXIT_LOST_WORKER, _tail(log)
  assert f'lost worker 1 ({hosts[1]})' in _tail(log)
  assert time.monotonic() - started < 90
  assert not (workdir / 'checkpoints').exists()


def test_sigterm_to_one_worker_stops_both_at_the_same_step_with_a_checkpoint(tmp_path):
  workdir = tmp_path / 'workdir'
  flags = [f'--workdir={workdir}', '--config.train.num_steps=100000',
           '--config.train.steps_per_loop=1', '--config.log_every_steps=1',
           '--config.checkpoint_every_steps=100000', '--config.sample_every_steps=100000']
  workers, logs = _start_cluster(2, flags, tmp_path, 'term')
  deadline = time.monotonic() + 240
  while 'step 3/' not in open(logs[1]).read():  # Both are training.
    if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
      for worker in workers:
        worker.kill()
      pytest.fail('training did not start; logs:\n' + _tail(logs[0]) + _tail(logs[1]))
    time.sleep(0.2)
  workers[1].send_signal(signal.SIGTERM)  # The non-chief: the chief must stop too, and save.
  assert _wait(workers, logs, timeout=120) == [143, 143], _tail(logs[0]) + _tail(logs[1])
  saved = sorted(name for name in os.listdir(workdir / 'checkpoints') if name.endswith('.index'))
  assert len(saved) == 1, saved
  step = int(saved[0][len('ckpt-'):-len('.index')])
  for log in logs:
    assert f'stopped by SIGTERM at step {step}' in _tail(log, 100)


def test_every_periodic_option_at_once_keeps_the_workers_in_step(tmp_path):
  """Log, sample, evaluation, checkpoint and profile at different intervals together: each worker
  ends its calls at the nearest of them (here every step from 1 to 7), the same on both."""
  workdir, _, code, logs = _local_cluster(
      tmp_path, '--config.train.num_steps=7', '--config.train.steps_per_loop=4',
      '--config.log_every_steps=2', '--config.sample_every_steps=3',
      '--config.eval_every_steps=4', '--config.num_eval_samples=16',
      '--config.checkpoint_every_steps=5', '--config.profile_steps=(1,3)')
  assert code == 0, [_tail(log) for log in logs]
  assert helpers.event_scalars(str(workdir), 'train/critic_loss').keys() == {2, 4, 6, 7}
  assert helpers.event_scalars(str(workdir), 'eval/fid').keys() == {4, 7}
  assert sorted(os.listdir(workdir / 'samples')) == [
      'step_000003.png', 'step_000006.png', 'step_000007.png']
  assert sorted(name for name in os.listdir(workdir / 'checkpoints')
                if name.endswith('.index')) == ['ckpt-5.index', 'ckpt-7.index']
  traces = [name for _, _, names in os.walk(workdir / 'profile') for name in names]
  assert any(name.endswith('.xplane.pb') for name in traces), traces
