"""The training loop's controller: periodic actions, when each is next due, and the loop that
runs the trainer up to the nearest of them.

The shape of orbit's `Controller` (TF Model Garden) without depending on it: the trainer runs
several generator steps per call; each action (log, sample, evaluate, checkpoint, profile, stop
signal) has a schedule that says when it is next due, and a loop call ends at the nearest due
step, so no call runs past one. The boundaries are a pure function of the config and the step:
every worker of a multi-worker job computes the same ones and calls the trainer (whose steps are
collectives) with the same sizes. Only what an action does may differ by role (the chief writes
files; every worker takes part in a save or an evaluation).
"""

import contextlib
import dataclasses
from typing import Callable, Iterator, Optional, Protocol, Sequence

import tensorflow as tf
from absl import logging


class Schedule(Protocol):
  """When an action runs, in generator steps done."""

  def is_due(self, step: int) -> bool:
    """Whether the action runs when a loop call ends at `step`."""

  def next_due(self, step: int) -> Optional[int]:
    """The first step after `step` at which it is due (a loop call ends there), or None."""


@dataclasses.dataclass(frozen=True)
class Every:
  """Due at every multiple of `interval` and at `last_step` (the last step always runs it)."""
  interval: int
  last_step: int

  def is_due(self, step: int) -> bool:
    return step % self.interval == 0 or step == self.last_step

  def next_due(self, step: int) -> Optional[int]:
    if step >= self.last_step:
      return None
    return min(step + self.interval - step % self.interval, self.last_step)


@dataclasses.dataclass(frozen=True)
class AtSteps:
  """Due at each of `steps`."""
  steps: tuple[int, ...]

  def is_due(self, step: int) -> bool:
    return step in self.steps

  def next_due(self, step: int) -> Optional[int]:
    ahead = [due for due in self.steps if due > step]
    return min(ahead) if ahead else None


class AfterEveryCall:
  """Due whenever a loop call ends, wherever that is; never shortens a call."""

  def is_due(self, step: int) -> bool:
    del step
    return True

  def next_due(self, step: int) -> Optional[int]:
    del step
    return None


@dataclasses.dataclass(frozen=True)
class Action:
  """`run(step)` whenever `schedule` is due; with `at_start`, also once before the first call."""
  name: str
  schedule: Schedule
  run: Callable[[int], None]
  at_start: bool = False


def next_boundary(step: int, last_step: int, steps_per_loop: int,
                  schedules: Sequence[Schedule]) -> int:
  """Where the loop call starting at `step` ends: the nearest of step + steps_per_loop,
  `last_step` and every schedule's next due step."""
  ends = [step + steps_per_loop, last_step]
  ends += [due for due in (schedule.next_due(step) for schedule in schedules) if due is not None]
  return min(ends)


def run(train: Callable[[int], int], actions: Sequence[Action], *, first_step: int,
        last_step: int, steps_per_loop: int) -> int:
  """Calls `train(num_steps) -> step after it` in chunks up to the nearest due action, then runs
  the due actions in order, until `last_step`; returns the step reached."""
  step = first_step
  for action in actions:
    if action.at_start:
      action.run(step)
  schedules = [action.schedule for action in actions]
  while step < last_step:
    step = train(next_boundary(step, last_step, steps_per_loop, schedules) - step)
    for action in actions:
      if action.schedule.is_due(step):
        action.run(step)
  return step


class Profiler:
  """TensorFlow profiler trace of generator steps [first, last) into `logdir` (chief only).

  `schedule` (the same on every worker) ends loop calls at `first` and `last`, so a trace holds
  whole calls; `update(step)` starts or stops it there. `step_marker(step)` marks each call in
  the trace as step `step` of 'train' (TensorBoard's Profile tab groups by it).
  """

  def __init__(self, steps_range: tuple[int, int], logdir: str, is_chief: bool):
    self._first, self._last = (int(steps_range[0]), int(steps_range[1]))
    self._logdir = logdir
    self._on = self._last > self._first
    self._is_chief = is_chief
    self._running = False
    self.schedule = AtSteps((self._first, self._last) if self._on else ())

  def update(self, step: int) -> None:
    """Starts or stops the trace for the steps about to run from `step`."""
    if not (self._on and self._is_chief):
      return
    if not self._running and self._first <= step < self._last:
      tf.profiler.experimental.start(self._logdir)
      self._running = True
      logging.info('Profiling steps %d to %d into %s', self._first, self._last, self._logdir)
    elif self._running and step >= self._last:
      self.stop()

  @contextlib.contextmanager
  def step_marker(self, step: int) -> Iterator[None]:
    if not self._running:
      yield
      return
    with tf.profiler.experimental.Trace('train', step_num=step, _r=1):
      yield

  def stop(self) -> None:
    if self._running:
      tf.profiler.experimental.stop()
      self._running = False
