"""The inputs of a run's data order, recorded with the run and checked before its first step.

The order of the real images is a pure function of (data, seed, position) and a generator step
consumes train.n_critic global batches of train.global_batch_size, so these values fix which
images every step sees: the fingerprint and count (data/identity.py) of the examples the
generator trains on, how those were chosen from the loaded data, seed, train.global_batch_size
and train.n_critic. `RunIdentity` holds them.

- What trains: the loaded source after the evaluation reference's held-out images left it
  (eval/reference.py, eval_reference) and after data.limit (data/limit.py), as
  train.training_data gives it; `training_split` says how, e.g. "eval_reference='heldout'
  holds out the reference". So a resume that changes eval_reference or data.limit, and with
  it what trains, stops like any other change.
- Recorded: in config.json (key 'run_identity') and, as a string variable, in every checkpoint
  (so it rotates with them and a restore reads the one it resumes from).
- Resume (`Recorder.check_resume`): a restored checkpoint whose values differ stops the run
  before any step, with one line naming the old and new values; data.allow_changed_on_resume
  continues anyway (a deliberate change) with a warning, and later checkpoints record the new
  values. A checkpoint written before the record existed is accepted as is. A record written
  before `training_split` existed (it lacks the field) fingerprinted the whole loaded source:
  it is compared with the loaded source's identity, as it was then, and the next saves record
  the new form.
- Workers (`check_workers_agree`): every worker of a multi-worker job publishes its values
  through the coordination service (dist/exchange.py, no collective) and all stop, naming each
  worker's values, if they differ, e.g. a folder from which one worker could not read a file
  under on_bad_image='skip'.

Neither compares the replica or worker count: replica r of any layout reads slice r of the same
global batch (input_pipeline.py), so a run resumed on another layout continues the same order
and, up to the rounding of summing gradients in another order, the same trajectory.
"""

import dataclasses
import json
import os
from typing import Callable, Optional

import ml_collections
import tensorflow as tf
from absl import logging

from wgan_dist.config import validation as config_validation
from wgan_dist.data import identity
from wgan_dist.data import sources
from wgan_dist.dist import exchange
from wgan_dist.eval import reference

# The key of the record in the checkpoints and in config.json.
KEY = 'run_identity'
OVERRIDE = 'data.allow_changed_on_resume'


class ResumeMismatchError(config_validation.ConfigError):
  """The workdir's checkpoint was trained on another data order than this run's config gives."""


@dataclasses.dataclass(frozen=True)
class RunIdentity:
  """What fixes the data order (module docstring). `training_split` None: a record written
  before the field existed, whose dataset values are of the whole loaded source."""
  dataset_fingerprint: str
  dataset_count: int
  seed: int
  global_batch_size: int
  n_critic: int
  training_split: Optional[str] = None

  def values(self) -> dict[str, object]:
    """{name as the config or the data calls it: value}, in a fixed order."""
    return {'dataset fingerprint': self.dataset_fingerprint,
            'dataset count': self.dataset_count, 'training split': self.training_split,
            'seed': self.seed, 'train.global_batch_size': self.global_batch_size,
            'train.n_critic': self.n_critic}

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> 'RunIdentity':
    return cls(**json.loads(text))


def of(config: ml_collections.ConfigDict, dataset: identity.DatasetIdentity,
       training_split: Optional[str] = None) -> RunIdentity:
  """The run identity of `config` training on `dataset` (chosen as `training_split` says)."""
  return RunIdentity(dataset.fingerprint, dataset.count, config.seed,
                     config.train.global_batch_size, config.train.n_critic, training_split)


def training_split(config: ml_collections.ConfigDict, loaded: sources.Source) -> str:
  """How train.training_data chooses the examples that train from the `loaded` source, e.g.
  "eval_reference='heldout' holds out the reference, then data.limit=100", or 'all loaded
  images'. Names only the settings that choose: eval_reference on a source it does not split
  is left out, so changing it there is no change of the data order."""
  chose = []
  if reference.holds_out(config, loaded):
    chose.append(f'eval_reference={config.eval_reference!r} holds out the reference')
  if config.data.limit:
    chose.append(f'data.limit={config.data.limit}')
  return ', then '.join(chose) or 'all loaded images'


def start(config: ml_collections.ConfigDict, loaded: sources.Source, trained: sources.Source,
          tasks: list[tuple[str, int, str]], me: tuple[str, int]) -> 'Recorder':
  """The run identity of `config` training on `trained` (chosen from the `loaded` source by
  train.training_data), checked across the workers (`tasks`, `me`: as check_workers_agree), in a
  Recorder for the checkpoints."""
  current = of(config, identity.of_source(trained), training_split(config, loaded))
  # The workers finish loading at different times (a folder's scan on a busier node): wait as
  # long as the watchdog lets a first call run, not the peer timeout of a lost worker.
  check_workers_agree(current, tasks, me, 3 * config.distribution.step_timeout_secs)
  return Recorder(current, legacy=lambda: of(config, identity.of_source(loaded)))


def _differences(old: RunIdentity, new: RunIdentity) -> list[str]:
  """'name old -> new' for each value that differs."""
  return [f'{name} {before!r} -> {new.values()[name]!r}'
          for name, before in old.values().items() if before != new.values()[name]]


class Recorder:
  """The run identity as a checkpointed string variable (pass `trackables()` to the
  Checkpointer, with KEY among its optional keys: older checkpoints lack it).

  `legacy`: the identity as a record without `training_split` gave it (of the whole loaded
  source), computed only when such a record is restored; None: `current` without the split.
  """

  def __init__(self, current: RunIdentity,
               legacy: Optional[Callable[[], RunIdentity]] = None):
    self.current = current
    self._legacy = legacy or (lambda: dataclasses.replace(current, training_split=None))
    # Outside any strategy scope: one host value, the same on every replica and worker.
    self._variable = tf.Variable(current.to_json(), trainable=False, dtype=tf.string, name=KEY)

  def trackables(self) -> dict[str, tf.Variable]:
    return {KEY: self._variable}

  def restored(self) -> RunIdentity:
    """The record the restore left (the current identity when nothing was restored)."""
    return RunIdentity.from_json(self._variable.numpy().decode())

  def check_resume(self, checkpoint: Optional[str], allow_changes: bool) -> None:
    """After the restore: ResumeMismatchError in one line if `checkpoint` (the restored prefix;
    None: a fresh start) recorded other values, unless `allow_changes`; then records the
    current values for the next saves. A record without `training_split` is compared with
    the legacy identity (module docstring)."""
    changes = []
    if checkpoint:
      restored = self.restored()
      changes = _differences(restored, self.current if restored.training_split is not None
                             else self._legacy())
    if changes and not allow_changes:
      raise ResumeMismatchError(
          f'resuming from {checkpoint} with another data order: {"; ".join(changes)}; '
          'allowed: the values the run was trained with (see config.json beside the '
          f'checkpoints), or --config.{OVERRIDE}=True to continue deliberately with the new '
          'order (and, with train.num_steps=-1, the new length)')
    if changes:
      logging.warning('Resuming from %s with another data order (%s=True): %s', checkpoint,
                      OVERRIDE, '; '.join(changes))
    self._variable.assign(self.current.to_json())


def record_in_config_json(workdir: str, current: RunIdentity) -> None:
  """Adds the run identity to workdir/config.json (written by monitoring.Monitor.write_config;
  the chief calls this after it)."""
  path = os.path.join(workdir, 'config.json')
  with tf.io.gfile.GFile(path) as f:
    saved = json.load(f)
  saved[KEY] = dataclasses.asdict(current)
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(json.dumps(saved, indent=2, sort_keys=True))


def check_workers_agree(current: RunIdentity, tasks: list[tuple[str, int, str]],
                        me: tuple[str, int], timeout_secs: float, store=None) -> None:
  """Multi-worker: sources.DataError naming each worker's values unless all have `current`'s.

  `tasks`, `me`, `timeout_secs`, `store`: as exchange.exchange. Call after the data is loaded and
  before the first collective of training.
  """
  if len(tasks) <= 1:
    return
  values = {task: RunIdentity(**value) for task, value in exchange.exchange(
      'run_identity', dataclasses.asdict(current), tasks, me, timeout_secs, store).items()}
  if len(set(values.values())) == 1:
    return
  differing = [name for name in current.values()
               if len({value.values()[name] for value in values.values()}) > 1]
  described = '; '.join(
      f'{exchange.describe_task(task)}: ' + ', '.join(f'{name} {value.values()[name]!r}'
                                                  for name in differing)
      for task, value in values.items())
  hint = (" (with data.on_bad_image='skip', a file one worker could not read is left out "
          'there only)' if any(name.startswith('dataset') for name in differing) else '')
  raise sources.DataError(
      f'the workers would train on different data orders: {described}; allowed: the same data '
      f'and config on every worker{hint}')
