"""Stop cleanly on SIGTERM (preemption, `kill`, `scancel`) or SIGINT (Ctrl-C).

While training runs, the signal only sets a flag; the loop finishes the tf.function call in
flight (at most `train.steps_per_loop` steps), saves a checkpoint and raises `Stopped`, and
main.py exits with 128 + the signal number (143 for SIGTERM, 130 for SIGINT), the shell's
convention for "ended by a signal", so schedulers see the job as unfinished. A second SIGINT
stops at once (KeyboardInterrupt), without saving.

Installed after the strategy exists: MultiWorkerMirroredStrategy installs its own SIGTERM
listener (for TensorFlow's preemption handler), which this replaces. Under multi-worker the
workers agree on stopping (any signalled worker stops them all) so they save together.

The flag alone is not enough when the main thread is blocked inside TensorFlow (a collective
waiting for a stuck peer): Python runs signal handlers only on the main thread, between
bytecodes. So the C-level handler also writes the signal number to a wakeup socket
(signal.set_wakeup_fd), and a thread reading it calls `on_signal` at once; train.py hands it to
the watchdog, which bounds the time left to stop (watchdog.py).

Once stopped and saved, the process ends at once (`exit_now`): a scheduler that preempts a job
kills what is still running a few seconds later, and Python's own teardown after `sys.exit`
(collecting TensorFlow's many objects: 4.4 s measured on two busy cores, over 50 s under a heavy
load; BENCHMARKS.md, "Preemption") would hold every worker past the checkpoint for that long.
"""

import logging as std_logging
import os
import signal
import socket
import sys
import threading
import types
from typing import Callable, NoReturn, Optional

import tensorflow as tf
from absl import logging


class Stopped(Exception):
  """Training stopped on a signal after saving; `signum` is the signal."""

  def __init__(self, signum: int, step: int, checkpoint: Optional[str]):
    self.signum = signum
    self.step = step
    self.checkpoint = checkpoint
    super().__init__(f'stopped by {signal.Signals(signum).name} at step {step}; saved '
                     f'{checkpoint or "a checkpoint"}; rerun the same command to resume')

  @property
  def exit_code(self) -> int:
    return 128 + self.signum


def exit_now(code: int) -> NoReturn:
  """Ends the process with `code` after flushing the log and the console, skipping Python's
  teardown (module docstring). Only for a run whose files are all written and closed."""
  logging.flush()
  std_logging.shutdown()  # Every handler flushed and closed, as at a normal exit.
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


class StopSignals:
  """Context manager: SIGTERM and SIGINT set `requested` instead of ending the process.

  `on_signal(signum)`, if given, is also called for each of them from a thread of its own as
  soon as the signal arrives, even while the main thread is blocked (module docstring).
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self, on_signal: Optional[Callable[[int], None]] = None):
    self.requested: Optional[int] = None
    self._previous: dict[int, object] = {}
    self._on_signal = on_signal
    self._wakeup: Optional[tuple[socket.socket, socket.socket]] = None
    self._previous_wakeup_fd = -1
    self._watcher: Optional[threading.Thread] = None

  def _watch(self, reader: socket.socket) -> None:
    while True:
      try:
        data = reader.recv(16)
      except OSError:  # Closed by __exit__.
        return
      if not data:
        return
      for signum in data:
        if signum in self.SIGNALS:
          self._on_signal(signum)

  def _handle(self, signum: int, frame: Optional[types.FrameType]) -> None:
    del frame
    if signum == signal.SIGINT and self.requested == signal.SIGINT:
      raise KeyboardInterrupt  # Asked twice: the user does not want to wait for the save.
    self.requested = signum
    logging.warning('Received %s: stopping after the current steps, with a checkpoint',
                    signal.Signals(signum).name)

  def __enter__(self) -> 'StopSignals':
    for signum in self.SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)
    if self._on_signal is not None:
      reader, writer = socket.socketpair()
      writer.setblocking(False)  # set_wakeup_fd's requirement: a signal never blocks on it.
      self._wakeup = (reader, writer)
      self._previous_wakeup_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
      self._watcher = threading.Thread(target=self._watch, args=(reader,), daemon=True,
                                       name='wgan_dist-signals')
      self._watcher.start()
    return self

  def __exit__(self, *exc_info) -> None:
    if self._wakeup is not None:
      signal.set_wakeup_fd(self._previous_wakeup_fd)
      reader, writer = self._wakeup
      writer.close()  # The watcher's recv returns b'' and it ends.
      self._watcher.join(timeout=5)
      reader.close()
      self._wakeup = None
    for signum, handler in self._previous.items():
      # None: the previous handler was not Python's (TensorFlow's own); the default is closest.
      signal.signal(signum, signal.SIG_DFL if handler is None else handler)


class Agreement:
  """Whether any worker received a stop signal; call at the same points on every worker.

  Multi-worker: a collective sum of the workers' flags (one traced function, built once), so
  all of them stop, and save, at the same step. Single process: the local flag.
  """

  def __init__(self, strategy: tf.distribute.Strategy, multi_worker: bool):
    self._multi_worker = multi_worker
    if multi_worker:
      @tf.function
      def signalled_workers(flag: tf.Tensor) -> tf.Tensor:
        per_replica = strategy.run(lambda: tf.identity(flag))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
      self._signalled_workers = signalled_workers

  def signal(self, requested: Optional[int]) -> Optional[int]:
    """The stop signal if any worker was signalled; `requested` is this process's."""
    if not self._multi_worker:
      return requested
    if float(self._signalled_workers(tf.constant(1.0 if requested else 0.0))) == 0:
      return None
    return requested or signal.SIGTERM  # Stopping because another worker was signalled.
