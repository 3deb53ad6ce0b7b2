"""Bounded stalls: a call that overruns its bound ends the process naming it; a stop signal
bounds the time left even while the main thread is blocked inside TensorFlow; and, with real
worker processes on 127.0.0.1, a worker made to hang outside the collectives (as on a hung
read of shared storage) no longer holds the other one for ever."""

# pylint: disable=protected-access

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import tensorflow as tf

from tests import test_multi_worker as cluster
from tests.conftest import REPO_ROOT
from wgan_dist.dist import distribution
from wgan_dist.dist import signals
from wgan_dist.dist import watchdog as watchdog_lib


class _Expiries:
  """The watchdog's `expire`, recording instead of ending the process."""

  def __init__(self):
    self.calls: list[tuple[str, int]] = []
    self.event = threading.Event()

  def __call__(self, message: str, code: int) -> None:
    self.calls.append((message, code))
    self.event.set()

  def wait(self) -> tuple[str, int]:
    assert self.event.wait(60), 'the watchdog did not fire'
    return self.calls[0]


class _Clock:
  def __init__(self):
    self.now = 0.0

  def __call__(self) -> float:
    return self.now


def test_the_bound_is_3x_the_floor_first_then_10x_the_slowest_call_per_step():
  clock = _Clock()
  dog = watchdog_lib.Watchdog(5, 60, expire=_Expiries(), clock=clock)
  try:
    assert dog.bound('train', 50) == 15
    with dog.watch('train', 'first', units=2):
      clock.now += 2  # The first call traces the graph: left out of the per-step measure.
    assert dog.bound('train', 50) == 5
    with dog.watch('train', 'second', units=2):
      clock.now += 4  # 2 s per step.
    with dog.watch('train', 'third', units=4):
      clock.now += 4  # 1 s per step: the slowest stays 2.
    assert dog.bound('train', 3) == 60
    assert dog.bound('train', 0) == 5
    assert dog.bound('checkpoint') == 15  # Each kind is measured on its own.
  finally:
    dog.close()


def test_a_later_call_is_never_bounded_below_twice_the_first_of_its_kind():
  clock = _Clock()
  dog = watchdog_lib.Watchdog(5, 60, expire=_Expiries(), clock=clock)
  try:
    with dog.watch('evaluation', 'the evaluation action at step 100'):
      clock.now += 12  # Slow, within its 15 s; not measured per step, but not forgotten.
    assert dog.bound('evaluation') == 24
    with dog.watch('train', 'first', units=10):
      clock.now += 14  # Tracing 10 steps.
    assert dog.bound('train', 10) == 28
    assert dog.bound('train', 1) == 28
  finally:
    dog.close()


def test_a_call_that_overruns_ends_the_process_naming_it():
  expiries = _Expiries()
  dog = watchdog_lib.Watchdog(0.2, 60, expire=expiries)
  with dog.watch('checkpoint', 'the checkpoint action at step 2'):
    pass
  with dog.watch('checkpoint', 'the checkpoint action at step 4'):
    message, code = expiries.wait()
  dog.close()
  assert code == watchdog_lib.EXIT_STALLED == 3
  assert message.startswith('stalled: the checkpoint action at step 4 did not return within '
                            '0.2 s (the largest of distribution.step_timeout_secs=0.2, 10x the '
                            'slowest such call so far and 2x the first; 3x step_timeout_secs '
                            'for the first)'), message
  assert '\n' not in message


def test_the_stop_grace_starts_after_the_deadline_of_the_call_in_flight():
  """A slow but healthy call is not cut short by the signal; the grace then covers the due
  actions and the final save."""
  clock = _Clock()
  dog = watchdog_lib.Watchdog(600, 60, expire=_Expiries(), clock=clock)
  try:
    with dog.watch('train', 'the training call of generator steps 1 to 2', units=2):
      clock.now = 10
      dog.stop_requested(signal.SIGTERM)
    assert dog._stop == (signal.SIGTERM, 1800 + 60)  # The first call's bound is 3 x 600 s.
  finally:
    dog.close()
  dog = watchdog_lib.Watchdog(600, 60, expire=_Expiries(), clock=clock)
  try:
    dog.stop_requested(signal.SIGTERM)  # Between calls: the grace from the signal.
    assert dog._stop == (signal.SIGTERM, 10 + 60)
  finally:
    dog.close()


def test_a_stop_signal_leaves_the_grace_period_then_exits_unsaved_saying_so():
  expiries = _Expiries()
  dog = watchdog_lib.Watchdog(600, 0.2, expire=expiries)
  dog.stop_requested(signal.SIGTERM)
  with dog.watch('checkpoint', 'the final checkpoint save'):  # Stuck in it.
    message, code = expiries.wait()
  dog.close()
  assert code == 143
  assert message.startswith('stopped by SIGTERM without saving: the final checkpoint save was '
                            'still running 0.2 s after the signal or the deadline of the call '
                            'then in flight (distribution.stop_grace_secs'), message


def test_a_second_sigint_leaves_a_few_seconds_at_most():
  clock = _Clock()
  dog = watchdog_lib.Watchdog(600, 60, expire=_Expiries(), clock=clock)
  try:
    dog.stop_requested(signal.SIGINT)
    clock.now = 30
    dog.stop_requested(signal.SIGINT)
    assert dog._stop == (signal.SIGINT, 30 + watchdog_lib.SECOND_SIGINT_SECS)
    clock.now = 58
    dog.stop_requested(signal.SIGINT)  # A third one changes nothing; nor would an earlier end.
    assert dog._stop == (signal.SIGINT, 35)
  finally:
    dog.close()


def test_a_second_sigint_exits_unsaved():
  expiries = _Expiries()
  dog = watchdog_lib.Watchdog(600, 0.2, expire=expiries)
  dog.stop_requested(signal.SIGINT)
  dog.stop_requested(signal.SIGINT)
  message, code = expiries.wait()
  dog.close()
  assert code == 130
  assert message.startswith('stopped by a second SIGINT without saving (the process had not '
                            'ended)'), message


_EXITING = '''
import signal, sys
from wgan_dist.dist import watchdog
print('logged before the exit', end='')  # Buffered: stdout is a pipe.
dog = watchdog.Watchdog(600, 0.1)
dog.stop_requested(signal.SIGINT)
dog.stop_requested(signal.SIGINT)
dog._thread.join()
'''


def test_the_exit_flushes_what_the_process_wrote_before_it():
  env = {name: value for name, value in os.environ.items() if name != 'PYTHONUNBUFFERED'}
  done = subprocess.run([sys.executable, '-c', _EXITING], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode == 130, done.stderr
  assert done.stdout == 'logged before the exit'
  assert done.stderr.strip().splitlines()[-1].startswith(
      'error: stopped by a second SIGINT without saving'), done.stderr


def test_close_ends_the_watchdog_thread():
  dog = watchdog_lib.Watchdog(600, 600, expire=_Expiries())
  dog.stop_requested(signal.SIGTERM)
  dog.close()
  assert not dog._thread.is_alive()


def test_a_signal_reaches_on_signal_while_the_main_thread_is_blocked_in_tensorflow():
  """The main thread waits in a TensorFlow queue (C++, like a collective); Python's handler
  cannot run, but on_signal, called from the wakeup socket's thread, can (it closes the queue)."""
  queue = tf.queue.FIFOQueue(1, tf.float32)
  received = []

  def on_signal(signum):
    received.append(signum)
    queue.close(cancel_pending_enqueues=True)

  safety = threading.Timer(60, lambda: queue.close(cancel_pending_enqueues=True))
  sender = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM))
  with signals.StopSignals(on_signal=on_signal) as stop_signals:
    safety.start()
    sender.start()
    with pytest.raises(tf.errors.OutOfRangeError):
      queue.dequeue()
    safety.cancel()
  assert received == [signal.SIGTERM]
  assert stop_signals.requested == signal.SIGTERM


# Worker 1 runs wgan_dist.main with its checkpoint save replaced by a sleep from step 2 on: a
# main thread blocked outside TensorFlow's collectives while its heartbeats go on, as on a hung
# read of shared storage (which cannot be had on purpose here).
_BLOCKING_WORKER = '''
import sys, time
from absl import app
from wgan_dist.training import checkpointing
from wgan_dist import main
original_save = checkpointing.Checkpointer.save
def save(self, step):
  if step >= 2:
    print(f'blocking on purpose in the save at step {step}', flush=True)
    time.sleep(3600)
  return original_save(self, step)
checkpointing.Checkpointer.save = save
app.run(main.main, flags_parser=main.parse_flags)
'''


def _start(hosts, index, flags, tmp_path, blocking: bool):
  tmpdir = tmp_path / f'tmp{index}'
  tmpdir.mkdir()
  log = str(tmp_path / f'worker{index}.log')
  env = dict(os.environ, TMPDIR=str(tmpdir), TF_CPP_MIN_LOG_LEVEL='2', TF_CONFIG=json.dumps(
      {'cluster': {'worker': hosts}, 'task': {'type': 'worker', 'index': index}}))
  program = ['-c', _BLOCKING_WORKER] if blocking else ['-m', 'wgan_dist.main']
  with open(log, 'w') as out:
    worker = subprocess.Popen(
        [sys.executable, *program, f'--config={cluster.TINY}', cluster.OFFLINE,
         '--config.distribution.strategy=multi_worker', *flags],
        cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
  return worker, log


def _blocked_job(tmp_path, chief_flags, worker_flags):
  """Chief and blocking worker 1, saving every 2 steps; returns once worker 1 blocks."""
  hosts = distribution.loopback_hosts(2)
  common = [f'--workdir={tmp_path / "workdir"}', '--config.train.num_steps=100000',
            '--config.train.steps_per_loop=1', '--config.checkpoint_every_steps=2',
            '--config.log_every_steps=1', '--config.sample_every_steps=100000',
            # Heartbeats go on: TensorFlow must not be what ends the job here.
            '--config.distribution.peer_timeout_secs=300']
  chief, chief_log = _start(hosts, 0, common + chief_flags, tmp_path, blocking=False)
  worker, worker_log = _start(hosts, 1, common + worker_flags, tmp_path, blocking=True)
  deadline = time.monotonic() + 240
  while 'blocking on purpose' not in open(worker_log).read():
    if time.monotonic() > deadline or chief.poll() is not None or worker.poll() is not None:
      chief.kill()
      worker.kill()
      pytest.fail('worker 1 did not reach its save; logs:\n' + cluster._tail(chief_log) +
                  cluster._tail(worker_log))
    time.sleep(0.2)
  return (chief, chief_log), (worker, worker_log)


def _last_line(log: str) -> str:
  return open(log).read().strip().splitlines()[-1]


@pytest.mark.slow
def test_a_worker_stuck_outside_the_collectives_ends_the_job_naming_the_stalled_call(tmp_path):
  # Worker 1's own bound is long: the chief's watchdog is what must end the job.
  (chief, chief_log), (worker, worker_log) = _blocked_job(
      tmp_path, ['--config.distribution.step_timeout_secs=25'],
      ['--config.distribution.step_timeout_secs=3000'])
  try:
    code = chief.wait(timeout=180)  # The chief's first calls of a kind get 75 s.
    assert worker.poll() is None  # Alive and stuck all along.
  finally:
    chief.kill()
    worker.kill()
  last = _last_line(chief_log)
  assert code == watchdog_lib.EXIT_STALLED, cluster._tail(chief_log)
  assert last.startswith('error: stalled: the '), last
  # The chief is in its own save at step 2 or in a collective after it; those calls have each
  # run before (measured), or run first (3x the floor).
  assert 'did not return within ' in last and 'distribution.step_timeout_secs=25, ' in last, last
