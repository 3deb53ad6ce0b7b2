"""The periodic actions of a training run, in one table, and what they are built from.

`ACTIONS` is the one list: name -> class, in the order the actions run when due at the same
step. The driver (train.py) builds every entry from a `context.Run` (the run's parts) and hands
them to the controller (controller.py); each class reads its own schedule from the config
(schedules.py; an interval of 0 is off, the same for all). A new action is a module with a
`controller.PeriodicAction` subclass, one line here, and its interval field in
configs/default.py and config/validation.py (docs/extending.md).
"""

import ml_collections

from wgan_dist.config import registry
from wgan_dist.config import validation as config_validation
from wgan_dist.training import augment_action
from wgan_dist.training import checkpoint_action
from wgan_dist.training import context
from wgan_dist.training import controller
from wgan_dist.training import evaluate_action
from wgan_dist.training import log_action
from wgan_dist.training import profile_action
from wgan_dist.training import sample_action
from wgan_dist.training import stop_action


# Name -> class (a controller.PeriodicAction, built by `cls.from_run(run)`; its `field` is the
# config field of its schedule), in the order they run when due at the same step. The only
# list of actions: the driver builds every entry.
ACTIONS: registry.Registry[type[controller.PeriodicAction]] = registry.Registry(
    'periodic action', {
        'log': log_action.Log,
        # After the log (which writes the p the logged steps used), before the save (which keeps
        # the new p).
        'adapt augment': augment_action.AdaptAugment,
        'sample': sample_action.Sample,
        'evaluate': evaluate_action.Evaluate,
        'checkpoint': checkpoint_action.Checkpoint,
        'stop signal': stop_action.StopSignal,
        # Last: a trace that starts at a step leaves out the actions before it.
        'profile': profile_action.Profiler,
        })


def fields() -> dict[str, str]:
  """{config field: action name} of every action with a schedule in the config."""
  return {cls.field: name for name, cls in ACTIONS.items() if cls.field}


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for the first thing an action would refuse of `config` (its class's
  `config_error`), so that it fails before any work."""
  for cls in ACTIONS.values():
    error = cls.config_error(config)
    if error:
      raise config_validation.ConfigError(error)


def build(run: context.Run) -> dict[str, controller.PeriodicAction]:
  """Every action of `ACTIONS`, by name, in its order."""
  return {name: cls.from_run(run) for name, cls in ACTIONS.items()}
