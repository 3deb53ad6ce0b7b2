"""When a periodic action is due, in generator steps done: a pure function of the config and
the step, so every worker of a multi-worker job computes the same loop-call boundaries.

`Every(interval, last_step)` is the schedule of every "every N steps" field of the config, and
interval 0 means off for all of them alike: never due, not even at the last step, and never
shortening a loop call.
"""

import dataclasses
from typing import Optional, Protocol


class Schedule(Protocol):
  """When an action runs, in generator steps done."""

  def is_due(self, step: int) -> bool:
    """Whether the action runs when a loop call ends at `step`."""

  def next_due(self, step: int) -> Optional[int]:
    """The first step after `step` at which it is due (a loop call ends there), or None."""


@dataclasses.dataclass(frozen=True)
class Every:
  """Due at every multiple of `interval` and at `last_step` (the last step always runs it);
  never when `interval` is 0 (off)."""
  interval: int
  last_step: int

  def is_due(self, step: int) -> bool:
    if self.interval == 0:
      return False
    return step % self.interval == 0 or step == self.last_step

  def next_due(self, step: int) -> Optional[int]:
    if self.interval == 0 or step >= self.last_step:
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
