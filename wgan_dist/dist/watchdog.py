"""Bounded stalls: no training call or periodic action waits for ever, and a stop signal ends
the process within a bounded time even when the main thread is stuck inside TensorFlow.

A worker that is alive but never reaches the next collective (a hung read of shared storage, a
deadlock) keeps sending heartbeats, so TensorFlow never declares it lost (peers.py), and every
other worker waits in that collective for ever with its main thread blocked in C++: Python code
on that thread, a signal handler included, does not run again. This module watches from a
thread of its own:

- `Watchdog.watch(kind, description, units)` arms a deadline around one call (a training call
  of `units` generator steps, a save, an evaluation, the stop-signal agreement, ...). The bound
  is max(`distribution.step_timeout_secs`, 10 x the slowest such call so far per unit, 2 x the
  first call of the kind); the first call of each kind (it traces the graph, and the workers
  arrive at different times) gets 3 x step_timeout_secs and is left out of the per-unit measure
  (a training call's tracing would swamp it). A call that overruns ends the process with
  EXIT_STALLED and one line naming it.
- `Watchdog.stop_requested(signum)` (called from signals.StopSignals' watcher thread as the
  signal arrives) gives the process `distribution.stop_grace_secs` after its call in flight's
  own deadline (or after the signal, if none is in flight) to finish that call, run the actions
  then due, save and exit as usual: a slow but healthy call is not cut short by the signal, and
  a stuck one still ends at its deadline. Past that, it exits unsaved with 128 + the signal,
  saying so. A second SIGINT leaves min(grace, 5 s): enough for the main thread, if it is
  responsive, to stop the profiler and close the summaries on its way out.

The process ends with os._exit: the main thread is blocked, so nothing else could end it, and
nothing half-done is written by exiting (a save cut short is skipped on resume, checkpointing.py).
"""

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator, Optional

from absl import logging

# The exit status of a stalled worker: the same as a lost peer's, for the scheduler and the
# user the same situation (restart the job; it resumes from the last checkpoint).
EXIT_STALLED = 3
# The bound is this many times the slowest call of a kind so far (per step for training calls).
SLACK = 10.0
# The first call of a kind traces (and maybe compiles) its graph and waits for the other workers
# to arrive: it may take this many times distribution.step_timeout_secs.
FIRST_CALL_SLACK = 3.0
# A later call of a kind is never bounded below this many times the first one's duration (an
# evaluation or a save whose first run was slow, then measured by the floor alone, would be cut).
FIRST_CALL_REPEAT = 2.0
# A second SIGINT leaves at most this long to end (the user does not want to wait for a save).
SECOND_SIGINT_SECS = 5.0


def _exit(message: str, code: int) -> None:
  logging.error('%s', message)
  print(f'error: {message}', file=sys.stderr, flush=True)
  # os._exit skips every buffer's flush: whatever the run logged last would be lost.
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


class Watchdog:
  """Deadlines on calls and on stopping, enforced from a daemon thread (module docstring).

  `expire(message, exit_code)` ends the process (tests pass their own); it is called at most
  once, from the watchdog's thread. `clock` is time.monotonic (tests may pass another).
  """

  def __init__(self, timeout_secs: float, grace_secs: float, *,
               expire: Callable[[str, int], None] = _exit,
               clock: Callable[[], float] = time.monotonic):
    self._timeout, self._grace = float(timeout_secs), float(grace_secs)
    self._expire, self._clock = expire, clock
    self._condition = threading.Condition()
    self._call: Optional[tuple[str, float, float]] = None  # (description, deadline, bound)
    self._stop: Optional[tuple[int, float]] = None  # (signal, deadline)
    self._at_once = False  # A second SIGINT: exit soon.
    self._slowest: dict[str, float] = {}  # Seconds per unit, the first call of a kind left out.
    self._first: dict[str, float] = {}  # Seconds the first call of each kind took.
    self._closed = False
    # Started by the first deadline: a run that fails before arming one leaves no thread.
    self._thread: Optional[threading.Thread] = None

  def _arm(self) -> None:
    """Wakes the thread up for a new deadline (starting it the first time); holds the lock."""
    if self._thread is None:
      self._thread = threading.Thread(target=self._run, name='wgan_dist-watchdog', daemon=True)
      self._thread.start()
    self._condition.notify()

  def bound(self, kind: str, units: int = 1) -> float:
    """Seconds a call of `kind` over `units` may take."""
    if kind not in self._first:
      return FIRST_CALL_SLACK * self._timeout
    return max(self._timeout, SLACK * self._slowest.get(kind, 0.0) * units,
               FIRST_CALL_REPEAT * self._first[kind])

  @contextlib.contextmanager
  def watch(self, kind: str, description: str, units: int = 1) -> Iterator[None]:
    """Ends the process if the block has not finished within `bound(kind, units)` seconds."""
    bound = self.bound(kind, units)
    start = self._clock()
    with self._condition:
      self._call = (description, start + bound, bound)
      self._arm()
    try:
      yield
    finally:
      elapsed = self._clock() - start
      with self._condition:
        self._call = None
      if kind in self._first:
        self._slowest[kind] = max(self._slowest.get(kind, 0.0), elapsed / max(units, 1))
      else:
        self._first[kind] = elapsed

  def stop_requested(self, signum: int) -> None:
    """A stop signal arrived: the process must end within the grace period (any thread)."""
    with self._condition:
      if self._stop is not None:
        if signum == signal.SIGINT and self._stop[0] == signal.SIGINT and not self._at_once:
          # Asked twice: the user does not want to wait for the save. Not 0 s: a responsive
          # main thread still stops the profiler and closes the summaries on its way out.
          deadline = self._clock() + min(self._grace, SECOND_SIGINT_SECS)
          self._stop, self._at_once = (signum, min(self._stop[1], deadline)), True
          self._arm()
        return
      deadline = self._clock() + self._grace
      if self._call is not None:  # Its own deadline bounds the call; the grace comes after it.
        deadline = max(deadline, self._call[1] + self._grace)
      self._stop = (signum, deadline)
      self._arm()

  def close(self) -> None:
    """Disarms everything (the run ended, one way or another)."""
    with self._condition:
      self._closed = True
      self._condition.notify()
    if self._thread is not None:
      self._thread.join(timeout=5)

  def _stop_message(self, signum: int, in_flight: Optional[str], at_once: bool) -> str:
    name = signal.Signals(signum).name
    what = f'{in_flight} was still running' if in_flight else 'the process had not ended'
    if at_once:
      return f'stopped by a second {name} without saving ({what})'
    return (f'stopped by {name} without saving: {what} {self._grace:g} s after the signal or '
            'the deadline of the call then in flight (distribution.stop_grace_secs; a worker '
            'may be stuck); rerun the same command to resume from the last checkpoint')

  def _run(self) -> None:
    with self._condition:
      while not self._closed:
        now = self._clock()
        if self._stop is not None and now >= self._stop[1]:
          signum = self._stop[0]
          message = self._stop_message(signum, self._call[0] if self._call else None,
                                       self._at_once)
          break
        if self._call is not None and now >= self._call[1]:
          description, _, bound = self._call
          message = (f'stalled: {description} did not return within {bound:g} s '
                     f'(the largest of distribution.step_timeout_secs={self._timeout:g}, '
                     f'{SLACK:g}x the slowest such call so far and {FIRST_CALL_REPEAT:g}x the '
                     f'first; {FIRST_CALL_SLACK:g}x step_timeout_secs for the first): a '
                     'worker is stuck (e.g. on shared storage) or deadlocked, or the steps are '
                     'slower than that (then raise it); restart the job to resume from the last '
                     'checkpoint')
          signum = None
          break
        deadlines = [entry[1] for entry in (self._call, self._stop) if entry is not None]
        self._condition.wait(timeout=min(deadlines) - now if deadlines else None)
      else:
        return
    self._expire(message, EXIT_STALLED if signum is None else 128 + signum)
