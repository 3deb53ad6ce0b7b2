"""`Run`: the parts of one training run that a periodic action is built from (actions.py)."""

import dataclasses
from typing import Optional

import ml_collections
import tensorflow as tf

from wgan_dist.data import sources
from wgan_dist.dist import signals
from wgan_dist.training import checkpointing
from wgan_dist.training import monitoring
from wgan_dist.training import state as train_state


@dataclasses.dataclass(frozen=True)
class Run:
  """What an action may use. The same on every worker but `is_chief` (only the chief writes
  files; every worker takes part in the collectives of a save or an evaluation)."""
  config: ml_collections.ConfigDict  # Resolved: its 'auto' choices made.
  workdir: str
  total_steps: int  # The last step.
  strategy: tf.distribute.Strategy
  state: train_state.TrainState
  source: sources.Source
  monitor: monitoring.Monitor
  checkpointer: checkpointing.Checkpointer
  is_chief: bool
  multi_worker: bool
  stop_signals: signals.StopSignals  # Its `requested` is this process's stop signal, if any.
  # Real images the generator never trains on, for the critic-overfitting gauge
  # (training/overfit.py); None when the data have none.
  heldout: Optional[sources.Source] = None
  # The config's source as loaded, before the held-out split and data.limit (the Inception
  # reference is drawn from it, so a limited run is not scored against its own training set).
  loaded: Optional[sources.Source] = None
