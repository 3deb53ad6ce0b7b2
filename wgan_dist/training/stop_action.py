"""The stop-signal action: after every loop call, the workers agree whether any of them got
SIGTERM or SIGINT (signals.py); if so, they save (unless the checkpoint action just did) and
raise signals.Stopped together. At the last step there is nothing left to stop."""

from wgan_dist.dist import signals
from wgan_dist.training import checkpoint_action
from wgan_dist.training import context
from wgan_dist.training import controller
from wgan_dist.training import schedules


class StopSignal(controller.PeriodicAction):
  """Stops the run, saved, when any worker was signalled. Always on: it never shortens a call,
  so a signal waits at most one call of `train.steps_per_loop` steps."""
  name = 'stop signal'
  schedule = schedules.AfterEveryCall()

  def __init__(self, run: context.Run):
    self._agreement = signals.Agreement(run.strategy, run.multi_worker)
    self._stop_signals, self._total_steps = run.stop_signals, run.total_steps
    self._state, self._checkpointer = run.state, run.checkpointer
    self._saved_by_schedule = checkpoint_action.schedule(run)

  def run(self, step: int) -> None:
    stop_signal = self._agreement.signal(self._stop_signals.requested)
    if stop_signal and step < self._total_steps:
      path = (self._checkpointer.latest() if self._saved_by_schedule.is_due(step)
              else checkpoint_action.save(self._state, self._checkpointer, step))
      raise signals.Stopped(stop_signal, step, path)
