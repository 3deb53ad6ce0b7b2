"""The training loop's controller: it calls the trainer up to the nearest due periodic action,
then runs the due actions, until the last step.

The shape of orbit's `Controller` (TF Model Garden) without depending on it: a trainer that runs
several generator steps per call, and a list of actions, each with a schedule (schedules.py)
that says when it is next due; a loop call ends at the nearest due step, so no call runs past
one. The boundaries are a pure function of the config and the step: every worker of a
multi-worker job computes the same ones and calls the trainer (whose steps are collectives) and
the actions in the same order with the same sizes. Only what an action does may differ by role
(the chief writes files; every worker takes part in a save or an evaluation).

`Controller` adds what every call needs: the watchdog bounds each training call and each action
(watchdog.py); a call with a non-finite step fails before any action runs (so nothing broken is
saved); the call's metrics go to the monitor's log window. The actions themselves live in their
own modules, listed in actions.py.
"""

import contextlib
import time
from typing import Callable, ContextManager, Optional, Sequence

import ml_collections

from wgan_dist.algorithm import steps
from wgan_dist.dist import watchdog as watchdog_lib
from wgan_dist.training import context
from wgan_dist.training import monitoring
from wgan_dist.training import schedules
from wgan_dist.training import trainer as trainer_lib


class PeriodicAction:
  """A periodic action: `run(step)` whenever `schedule` is due after a loop call.

  Subclasses set `name` (what the watchdog's messages call it), `field` (the config field its
  schedule comes from, if any) and `schedule`, and override `run`; `from_run(run)` builds one
  from a run's parts (context.Run; by default `cls(run)`). The rest is optional: `at_start` also
  runs it once before the first call, `around_call(step)` wraps every training call (the
  profiler marks the call's steps), `hparams_metrics` are the scalar tags the HParams dashboard
  shows as metrics, `close()` runs when the loop ends, however it ends, and
  `config_error(config)` says what the action refuses of a config (checked before any work).
  """
  name: str = ''
  field: Optional[str] = None
  schedule: schedules.Schedule = schedules.AfterEveryCall()
  at_start: bool = False
  hparams_metrics: tuple[str, ...] = ()

  @classmethod
  def from_run(cls, run: context.Run) -> 'PeriodicAction':
    return cls(run)  # pylint: disable=too-many-function-args

  @staticmethod
  def config_error(config: ml_collections.ConfigDict) -> Optional[str]:
    del config
    return None

  def run(self, step: int) -> None:
    raise NotImplementedError

  def around_call(self, step: int) -> ContextManager[None]:
    del step
    return contextlib.nullcontext()

  def close(self) -> None:
    pass


class Action(PeriodicAction):
  """A plain callable `run(step)` as a periodic action."""

  def __init__(self, name: str, schedule: schedules.Schedule, run: Callable[[int], None],
               at_start: bool = False):
    self.name, self.schedule, self.at_start = name, schedule, at_start
    self.run = run  # type: ignore[method-assign]


def next_boundary(step: int, last_step: int, steps_per_loop: int,
                  schedules_: Sequence[schedules.Schedule]) -> int:
  """Where the loop call starting at `step` ends: the nearest of step + steps_per_loop,
  `last_step` and every schedule's next due step."""
  ends = [step + steps_per_loop, last_step]
  ends += [due for due in (schedule.next_due(step) for schedule in schedules_)
           if due is not None]
  return min(ends)


def run(train: Callable[[int], int], actions: Sequence[PeriodicAction], *, first_step: int,
        last_step: int, steps_per_loop: int) -> int:
  """Calls `train(num_steps) -> step after it` in chunks up to the nearest due action, then runs
  the due actions in order, until `last_step`; returns the step reached."""
  step = first_step
  for action in actions:
    if action.at_start:
      action.run(step)
  schedules_ = [action.schedule for action in actions]
  while step < last_step:
    step = train(next_boundary(step, last_step, steps_per_loop, schedules_) - step)
    for action in actions:
      if action.schedule.is_due(step):
        action.run(step)
  return step


class _Watched(PeriodicAction):
  """`action`, each run bounded by the watchdog."""

  def __init__(self, action: PeriodicAction, watchdog: watchdog_lib.Watchdog):
    self._action, self._watchdog = action, watchdog
    self.name, self.schedule, self.at_start = action.name, action.schedule, action.at_start

  def run(self, step: int) -> None:
    with self._watchdog.watch(self.name, f'the {self.name} action at step {step}'):
      self._action.run(step)


class Controller:
  """Runs `trainer` from its state's step to `last_step` with `actions` (in the order they run
  when due at the same step), each training call and action under `watchdog`."""

  def __init__(self, trainer: trainer_lib.Trainer, actions: Sequence[PeriodicAction], *,
               monitor: monitoring.Monitor, watchdog: watchdog_lib.Watchdog,
               latest_checkpoint: Callable[[], Optional[str]], last_step: int,
               steps_per_loop: int):
    self._trainer, self._actions = trainer, list(actions)
    self._monitor, self._watchdog = monitor, watchdog
    self._latest_checkpoint = latest_checkpoint  # Named by the non-finite error.
    self._last_step, self._steps_per_loop = last_step, steps_per_loop
    self._traced = False

  def train(self, num_steps: int) -> int:
    """One trainer call; fails on a non-finite step; returns the step reached."""
    step = int(self._trainer.state.step.numpy())
    start = time.perf_counter()
    with contextlib.ExitStack() as around:
      for action in self._actions:
        around.enter_context(action.around_call(step))
      with self._watchdog.watch(
          'train', f'the training call of generator steps {step + 1} to {step + num_steps}',
          units=num_steps):
        metrics, status = self._trainer.train(num_steps)
    seconds = time.perf_counter() - start
    step += status.steps_run
    if status.nonfinite_step is not None:
      # The quantities of the first bad step: the later steps of the call ran on broken
      # weights, so the call's means would name nearly every metric.
      raise steps.NonFiniteError(status.nonfinite_step, list(status.nonfinite_metrics),
                                 self._latest_checkpoint())
    # The first call traces the loop: leave it out of steps/s.
    self._monitor.accumulate(metrics, status.steps_run, seconds if self._traced else None)
    self._traced = True
    return step

  def run(self) -> int:
    """Trains to the last step, running the actions as they fall due; returns the step reached.
    Closes every action at the end, however the loop ends."""
    try:
      return run(self.train, [_Watched(action, self._watchdog) for action in self._actions],
                 first_step=int(self._trainer.state.step.numpy()), last_step=self._last_step,
                 steps_per_loop=self._steps_per_loop)
    finally:
      for action in self._actions:
        action.close()
