"""The periodic actions as objects: the one list of them, "0 = off" the same for every interval,
and a new action added through that list alone, run at its steps by a real training run."""

import pytest

from configs import default
from tests import helpers
from wgan_dist import train
from wgan_dist.training import actions
from wgan_dist.training import controller
from wgan_dist.training import schedules


def test_every_action_in_the_list_is_an_action_named_by_its_key_with_a_config_field():
  config = default.get_config()
  for name, cls in actions.ACTIONS.items():
    assert issubclass(cls, controller.PeriodicAction), name
    assert cls.name == name  # What the watchdog's messages call it.
    section, _, leaf = (cls.field or '').rpartition('.')
    assert cls.field is None or leaf in (config[section] if section else config), (name,
                                                                                   cls.field)
  # Every interval of the config belongs to an action of the list (tests/test_registries.py
  # walks each action's field: a bad value is refused in one line).
  assert {field for field in config if field.endswith('_every_steps')} <= set(actions.fields())
  assert set(actions.fields().values()) <= set(actions.ACTIONS)
  # Profile last: a trace that starts at a step leaves out the actions before it.
  assert list(actions.ACTIONS)[-1] == 'profile'


def test_interval_zero_is_never_due_and_never_ends_a_call():
  off = schedules.Every(0, 10)
  assert not any(off.is_due(step) for step in range(11))
  assert off.next_due(0) is None
  ran = []
  calls = []

  def train_steps(num_steps: int) -> int:
    calls.append(num_steps)
    return sum(calls)

  reached = controller.run(
      train_steps, [controller.Action('off', off, ran.append),
                    controller.Action('on', schedules.Every(4, 10), lambda step: None)],
      first_step=0, last_step=10, steps_per_loop=10)
  assert reached == 10 and calls == [4, 4, 2] and ran == []


class _Recorded(controller.PeriodicAction):
  """Records (step, the train state's step then) at every run; `built` keeps each instance."""
  built: list['_Recorded'] = []

  def __init__(self, run):
    self._state = run.state
    self.ran: list[tuple[int, int]] = []
    _Recorded.built.append(self)

  def run(self, step: int) -> None:
    self.ran.append((step, int(self._state.step.numpy())))


class _Count(_Recorded):
  """The new action: every config.count_every_steps steps (a field this test adds)."""
  name = 'count'
  field = 'count_every_steps'

  def __init__(self, run):
    super().__init__(run)
    self.schedule = schedules.Every(run.config[self.field], run.total_steps)


class _CallEnds(_Recorded):
  """Where each training call ended (always due, never shortens a call)."""
  name = 'call ends'
  schedule = schedules.AfterEveryCall()


@pytest.mark.slow
@pytest.mark.parametrize('every, counted, call_ends', [
    (2, [2, 4, 6], [2, 4, 6]),  # Its schedule ends the calls at its steps.
    (0, [], [6]),  # Off: never runs, not even at the last step, and one call of 6 steps.
])
@pytest.mark.slow
def test_a_new_action_added_to_the_list_runs_at_its_steps(tiny_config, tmp_path, monkeypatch,
                                                          every, counted, call_ends):
  # One line in the list (before 'profile'), as docs/extending.md tells.
  table = dict(actions.ACTIONS)
  profile = table.pop('profile')
  monkeypatch.setattr(actions, 'ACTIONS', {**table, 'count': _Count, 'call ends': _CallEnds,
                                           'profile': profile})
  monkeypatch.setattr(_Recorded, 'built', [])
  config = tiny_config
  config.count_every_steps = every
  config.train.num_steps = config.train.steps_per_loop = 6
  # The built-in actions only at the last step: the new one alone shortens the calls.
  config.log_every_steps = config.sample_every_steps = config.checkpoint_every_steps = 6
  means = train.train_and_evaluate(config, str(tmp_path))
  count, ends = _Recorded.built
  assert count.ran == [(step, step) for step in counted]
  assert ends.ran == [(step, step) for step in call_ends]
  assert set(means) and helpers.event_scalars(str(tmp_path), 'train/critic_loss').keys() == {6}
