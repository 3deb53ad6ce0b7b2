"""The checkpoint action: every `checkpoint_every_steps` generator steps (0 = off) and at the
last step, the train state to workdir/checkpoints (checkpointing.py), after checking that its
weights are finite. `save` is also what the stop-signal action calls."""

from typing import Optional

from absl import logging

from wgan_dist.training import checkpointing
from wgan_dist.training import context
from wgan_dist.training import controller
from wgan_dist.training import schedules
from wgan_dist.training import state as train_state


def schedule(run: context.Run) -> schedules.Every:
  """When the action saves (the stop-signal action skips a save it already made)."""
  return schedules.Every(run.config[Checkpoint.field], run.total_steps)


def save(state: train_state.TrainState, checkpointer: checkpointing.Checkpointer,
         step: int) -> Optional[str]:
  """Saves `state` at `step` on every worker; the path (None on the workers but the chief)."""
  # Never save a broken state over a good one.
  train_state.check_finite_weights(state, step, checkpointer.latest())
  path = checkpointer.save(step)
  logging.info('Saved checkpoint at step %d: %s', step, path or 'the chief keeps it')
  return path


class Checkpoint(controller.PeriodicAction):
  """Saves the train state."""
  name = 'checkpoint'
  field = 'checkpoint_every_steps'

  def __init__(self, run: context.Run):
    self.schedule = schedule(run)
    self._state, self._checkpointer = run.state, run.checkpointer

  def run(self, step: int) -> None:
    save(self._state, self._checkpointer, step)
