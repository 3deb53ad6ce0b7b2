"""The generator of a workdir's latest checkpoint, for the sample, evaluate and export tools.

Reads `workdir/config.json` (the resolved config training wrote) over `configs/default.py`'s
schema, so a config from before a field existed still loads with that field's default; builds
the models as training does; and restores only the generator (or its EMA copy) from the newest
readable checkpoint in `workdir/checkpoints` (`load_trained_models`: the trained generator and
the critic, for the critic-overfitting gauge), as training does: a broken newest one is skipped
with a warning naming it (checkpointing.restore_newest_readable). The checkpoint's keys are the
field names of `wgan_dist.training.state.TrainState`: `generator`, `ema_generator` (when training
kept an EMA), `step`.
"""

import contextlib
import dataclasses
import json
import os
import sys
from typing import Iterator, Optional

import keras
import ml_collections
import tensorflow as tf
from absl import logging

from configs import default
from wgan_dist.training import checkpointing
from wgan_dist.dist import distribution
from wgan_dist.models import architectures as models

EMA_KEY = 'ema_generator'


class RestoreError(ValueError):
  """A workdir that holds no usable generator; the message names the path."""


@dataclasses.dataclass(frozen=True)
class Restored:
  config: ml_collections.ConfigDict
  generator: keras.Model
  step: int  # Generator steps the checkpoint had trained.
  checkpoint: str  # The restored checkpoint's prefix.
  ema: bool  # Whether `generator` holds the EMA weights.


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run in `workdir` trained with (its config.json over the default schema)."""
  path = os.path.join(workdir, 'config.json')
  if not tf.io.gfile.exists(path):
    raise RestoreError(f'{path} not found: {workdir} is not a wgan_dist work directory '
                       '(training writes config.json there)')
  with tf.io.gfile.GFile(path) as f:
    try:
      saved = json.load(f)
    except json.JSONDecodeError as error:
      raise RestoreError(f'{path} is not valid JSON: {error}') from error
  saved.pop('run_identity', None)  # What training checks on resume; not a config field.
  config = default.get_config()
  config.update(saved)
  return config


def _checkpoint_directory(workdir: str) -> str:
  return os.path.join(workdir, 'checkpoints')


def _no_checkpoint(workdir: str) -> RestoreError:
  return RestoreError(f'no checkpoint in {_checkpoint_directory(workdir)}: train first '
                      f'(python -m wgan_dist.main --config=... --workdir={workdir})')


def has_ema(prefix: str) -> bool:
  """Whether the checkpoint at `prefix` holds an EMA generator."""
  names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  return any(name.startswith(EMA_KEY + '/') for name in names)


def _generator_restorer(config: ml_collections.ConfigDict, ema: Optional[bool],
                        strategy: Optional[tf.distribute.Strategy]):
  """(generator, step variable, restore(prefix) -> whether it restored the EMA weights)."""
  # float32 whatever the run's precision: the variables are float32 in every policy, and
  # evaluation, samples and exports are better off computing in float32.
  with strategy.scope() if strategy else contextlib.nullcontext():
    generator, _ = models.build_models(config)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')

  def restore(prefix: str) -> bool:
    used_ema = has_ema(prefix) if ema is None else bool(ema)
    if used_ema and not has_ema(prefix):
      raise RestoreError(f'checkpoint {prefix} holds no EMA generator (train.ema_decay was 0 '
                         'for this run); drop --ema to use the trained generator')
    checkpoint = tf.train.Checkpoint(step=step,
                                     **{EMA_KEY if used_ema else 'generator': generator})
    # expect_partial: the critic and optimizers are in the file but not wanted here; every
    # generator variable must still be found.
    checkpoint.restore(prefix).assert_existing_objects_matched().expect_partial()
    return used_ema

  return generator, step, restore


def load_generator(workdir: str, *, ema: Optional[bool] = False,
                   strategy: Optional[tf.distribute.Strategy] = None) -> Restored:
  """The (EMA) generator of the newest readable checkpoint, built under `strategy`'s scope if
  given. A newer checkpoint that cannot be read is skipped with a warning naming it.

  `ema`: True = the EMA generator (an error if the checkpoint has none), False = the trained
  generator, None = the EMA generator when the checkpoint holds one, else the trained one.
  """
  config = load_config(workdir)
  generator, step, restore_prefix = _generator_restorer(config, ema, strategy)
  used_ema = bool(ema)

  def restore(prefix: str) -> None:
    nonlocal used_ema
    used_ema = restore_prefix(prefix)

  try:
    prefix = checkpointing.restore_newest_readable(_checkpoint_directory(workdir), restore)
  except checkpointing.UnreadableCheckpointsError as error:
    raise RestoreError(str(error)) from error
  if prefix is None:
    raise _no_checkpoint(workdir)
  return Restored(config, generator, int(step.numpy()), prefix, used_ema)


def load_trained_models(config: ml_collections.ConfigDict, prefix: str,
                        strategy: Optional[tf.distribute.Strategy] = None
                        ) -> tuple[keras.Model, keras.Model]:
  """(trained generator, critic) of the checkpoint at `prefix`, built under `strategy`'s scope
  if given: what the critic-overfitting gauge reads (training/overfit.py)."""
  with strategy.scope() if strategy else contextlib.nullcontext():
    generator, critic = models.build_models(config)
  # expect_partial: the EMA generator and the optimizers are not wanted here; every generator
  # and critic variable must still be found.
  tf.train.Checkpoint(generator=generator, critic=critic).restore(
      prefix).assert_existing_objects_matched().expect_partial()
  return generator, critic


def checkpoint_prefixes(workdir: str) -> list[str]:
  """The prefixes of every kept checkpoint of `workdir`, oldest first; RestoreError if none."""
  found = checkpointing.candidates(_checkpoint_directory(workdir))
  if not found:
    raise _no_checkpoint(workdir)
  return found[::-1]


def load_generators(workdir: str, *, ema: Optional[bool] = False,
                    strategy: Optional[tf.distribute.Strategy] = None) -> Iterator[Restored]:
  """Every kept checkpoint's (EMA) generator, oldest first, as `load_generator` restores the
  newest. One generator object is built and each checkpoint restored into it in turn (a
  caller's traced functions stay valid); a checkpoint that cannot be read is skipped with a
  warning naming it. `ema` as in `load_generator`."""
  config = load_config(workdir)
  prefixes = checkpoint_prefixes(workdir)
  generator, step, restore_prefix = _generator_restorer(config, ema, strategy)
  for prefix in prefixes:
    try:
      used_ema = restore_prefix(prefix)
    except checkpointing.UNREADABLE as error:
      logging.warning('Skipping checkpoint %s: it cannot be read (%s)', prefix,
                      type(error).__name__)
      continue
    yield Restored(config, generator, int(step.numpy()), prefix, used_ema)


def local_strategy(config: ml_collections.ConfigDict) -> tf.distribute.Strategy:
  """All local GPUs (mirrored) or one device; never multi-worker (a tool runs on one host)."""
  config = config.copy_and_resolve_references()
  config.distribution.cpu_replicas = 0
  # config.json holds the training job's resolved all-reduce (e.g. a multi-worker 'ring'); the
  # tool decides for its own devices.
  config.distribution.all_reduce = 'auto'
  config.distribution.strategy = ('mirrored' if len(tf.config.list_physical_devices('GPU')) > 1
                                  else 'one_device')
  return distribution.create_strategy(config)


def exit_with_error(error: Exception) -> None:
  """One line on stderr and exit status 1, for the command-line tools."""
  sys.exit(f'error: {error}')
