"""Multi-worker jobs never hang on a lost worker: bounded waits and a message naming the peer.

TensorFlow bounds the waits once it is configured for it (distribution.py): registration waits
for all workers at most `distribution.peer_timeout_secs`; a crashed peer resets its connections
(the next collective fails at once); a hung or unreachable one stops sending heartbeats, and
the coordination service fails every collective after the same timeout. This module
- turns those errors (long gRPC dumps) into one-line `LostWorkerError`s that say which worker
  (task and address from TF_CONFIG) was lost, and
- adds a last-resort deadline on the start of the job, for any wait TensorFlow leaves unbounded.
"""

import contextlib
import os
import re
import socket
import sys
import threading
from typing import Iterator

import tensorflow as tf
from absl import logging

from wgan_dist.dist import distribution

# Exit status of a worker that lost a peer (documented in docs/distributed.md, "Several nodes").
EXIT_LOST_WORKER = 3
_TASK_PATTERN = re.compile(r'/job:(chief|worker)/(?:replica:\d+/)?task:(\d+)')


class LostWorkerError(RuntimeError):
  """Another worker of the job died, hung or never started."""


def _describe(tasks: list[tuple[str, int, str]]) -> str:
  return ', '.join(f'{job} {index} ({address})' for job, index, address in tasks)


def _unreachable_tasks() -> list[tuple[str, int, str]]:
  """Other tasks of TF_CONFIG whose server port refuses or times out a connection."""
  me = distribution.this_task()
  lost = []
  for job, index, address in distribution.cluster_tasks():
    if (job, index) == me:
      continue
    host, _, port = address.rpartition(':')
    try:
      with socket.create_connection((host, int(port)), timeout=2):
        pass
    except OSError:
      lost.append((job, index, address))
  return lost


def lost_worker_error(error: tf.errors.OpError) -> LostWorkerError:
  """A one-line LostWorkerError for a failed collective, naming the peer(s) it blames."""
  me = distribution.this_task()
  by_name = {(job, index): (job, index, address)
             for job, index, address in distribution.cluster_tasks()}
  message = error.message or ''
  # A registration timeout also names the first task that arrived; only what follows is lost.
  _, _, blamed_part = message.rpartition('timed out task names:')
  named = {(job, int(index)) for job, index in _TASK_PATTERN.findall(blamed_part)}
  blamed = [by_name[task] for task in sorted(named) if task != me and task in by_name]
  blamed = blamed or _unreachable_tasks()
  who = _describe(blamed) if blamed else 'a peer (TensorFlow did not say which)'
  first_line = message.strip().splitlines()[0] if message.strip() else ''
  return LostWorkerError(f'lost {who}: {type(error).__name__} ({first_line[:160]}); restart '
                         'the job to resume from the last checkpoint')


# Errors of a collective whose peer went away (others, out of memory above all, are not renamed).
_LOST_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                     tf.errors.AbortedError, tf.errors.CancelledError)


def is_lost_worker(error: tf.errors.OpError) -> bool:
  """Whether `error` looks like a lost peer: its type, or a message naming another task.

  Under multi-worker every op's error names a task ("... on /job:worker/replica:0/task:1/
  device:GPU:0"): one naming only this worker's own task is this worker's own failure. Never
  for out of memory, which names a device of a task too (out_of_memory.py).
  """
  if isinstance(error, tf.errors.ResourceExhaustedError):
    return False
  if isinstance(error, _LOST_PEER_ERRORS):
    return True
  me = distribution.this_task()
  return any((job, int(index)) != me for job, index in _TASK_PATTERN.findall(error.message or ''))


@contextlib.contextmanager
def naming_lost_workers(multi_worker: bool) -> Iterator[None]:
  """Turns a lost-peer TensorFlow error inside the block into a one-line LostWorkerError."""
  try:
    yield
  except tf.errors.OpError as error:
    if multi_worker and is_lost_worker(error):
      raise lost_worker_error(error) from error
    raise


@contextlib.contextmanager
def startup_deadline(timeout_secs: float) -> Iterator[None]:
  """Bounds the start of a multi-worker job (creating the strategy: registration).

  A TensorFlow error inside the block becomes a LostWorkerError. As a last resort, if the block
  still runs after twice `timeout_secs` (TensorFlow's own bound plus a margin), the process ends
  with EXIT_LOST_WORKER from a timer thread: the main thread is then blocked inside TensorFlow.
  os._exit skips cleanup, which is safe here because nothing has been written yet.
  """
  if len(distribution.cluster_tasks()) <= 1:
    yield
    return
  last_resort_secs = 2 * timeout_secs + 10

  def expire() -> None:
    missing = _unreachable_tasks()
    who = _describe(missing) if missing else 'some worker (all ports answer; one may be stuck)'
    message = (f'error: lost {who}: the job did not start within {last_resort_secs:g} s '
               f'(distribution.peer_timeout_secs={timeout_secs:g})')
    logging.error('%s', message)
    print(message, file=sys.stderr, flush=True)
    os._exit(EXIT_LOST_WORKER)  # pylint: disable=protected-access

  timer = threading.Timer(last_resort_secs, expire)
  timer.daemon = True
  timer.start()
  try:
    yield
  except tf.errors.OpError as error:
    raise lost_worker_error(error) from error
  finally:
    timer.cancel()


def check_same_step(strategy: tf.distribute.Strategy, step: int) -> None:
  """Raises if the workers resumed at different steps (each restores on its own, and the
  strategy does not broadcast afterwards: a flaky shared file system could split them)."""
  @tf.function
  def moments(value: tf.Tensor) -> tf.Tensor:
    per_replica = strategy.run(lambda: tf.stack([value, value * value]))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

  total, total_of_squares = moments(tf.constant(float(step), tf.float64)).numpy()
  replicas = strategy.num_replicas_in_sync
  mean = total / replicas
  if total_of_squares / replicas - mean * mean > 0.25:  # Zero iff every worker has `step`.
    raise RuntimeError(f'the workers resumed at different steps (this one at {step}, mean '
                       f'{mean:g}): their views of the checkpoint directory differ; rerun the job '
                       'when the shared file system is consistent')
