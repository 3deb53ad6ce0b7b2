"""The profile action: a TensorFlow profiler trace of generator steps [first, last) of
`profile_steps` ((0, 0) = off) into workdir/profile (TensorBoard's Profile tab; the chief only).

Its schedule, the same on every worker, ends loop calls at `first` and `last`, so a trace holds
whole calls; it starts or stops the trace there (and once before the first call, for a run that
resumes inside the window). Each training call in the trace is marked as step `step` of 'train'
(TensorBoard's Profile tab groups by it).
"""

import contextlib
import os
from typing import Iterator

import tensorflow as tf
from absl import logging

from wgan_dist.training import context
from wgan_dist.training import controller
from wgan_dist.training import schedules


class Profiler(controller.PeriodicAction):
  """Traces generator steps [steps_range[0], steps_range[1]) into `logdir` (chief only)."""
  name = 'profile'
  field = 'profile_steps'
  at_start = True

  @classmethod
  def from_run(cls, run: context.Run) -> 'Profiler':
    return cls(run.config[cls.field], os.path.join(run.workdir, 'profile'), run.is_chief)

  def __init__(self, steps_range: tuple[int, int], logdir: str, is_chief: bool):
    self._first, self._last = (int(steps_range[0]), int(steps_range[1]))
    self._logdir = logdir
    self._on = self._last > self._first
    self._is_chief = is_chief
    self._running = False
    self.schedule = schedules.AtSteps((self._first, self._last) if self._on else ())

  def run(self, step: int) -> None:
    """Starts or stops the trace for the steps about to run from `step`."""
    if not (self._on and self._is_chief):
      return
    if not self._running and self._first <= step < self._last:
      tf.profiler.experimental.start(self._logdir)
      self._running = True
      logging.info('Profiling steps %d to %d into %s', self._first, self._last, self._logdir)
    elif self._running and step >= self._last:
      self.close()

  @contextlib.contextmanager
  def around_call(self, step: int) -> Iterator[None]:
    if not self._running:
      yield
      return
    with tf.profiler.experimental.Trace('train', step_num=step, _r=1):
      yield

  def close(self) -> None:
    if self._running:
      tf.profiler.experimental.stop()
      self._running = False
