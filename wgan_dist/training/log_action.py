"""The log action: every `log_every_steps` generator steps (0 = off) and at the last step, the
window's mean metrics, throughput and the state's scalars (learning rates, loss scales) to
TensorBoard and the console (monitoring.py)."""

from wgan_dist.training import context
from wgan_dist.training import controller
from wgan_dist.training import schedules
from wgan_dist.training import state as train_state


class Log(controller.PeriodicAction):
  """Writes the log window; `last_means` are the means it wrote last ({} before any)."""
  name = 'log'
  field = 'log_every_steps'

  def __init__(self, run: context.Run):
    self.schedule = schedules.Every(run.config[self.field], run.total_steps)
    self._monitor, self._state = run.monitor, run.state
    self.last_means: dict[str, float] = {}

  def run(self, step: int) -> None:
    self.last_means = self._monitor.log(step, train_state.scalars(self._state))
