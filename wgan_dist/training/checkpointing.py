"""Checkpoints of the whole training state in `workdir/checkpoints`.

Generator, critic, both optimizers (Adam moments and iteration counts) and the generator-step
counter; the step keys every random draw, so a resumed run continues the noise sequence.
Training and the tools restore the newest checkpoint that reads (`restore_newest_readable`),
skipping a broken newest one with a warning that names it.

Under multi-worker training every worker must take part in each save (reading distributed
variables can run collectives; a worker that skipped the save would leave the others waiting),
but only the chief's files are kept: the other workers write into a temporary directory outside
the workdir and delete it at once. Every worker restores from the chief's directory, so the
workdir must be on storage all workers see (a shared file system) for a job to resume.
"""

import os
import shutil
import tempfile
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

CHECKPOINT_NAME = 'ckpt'


class CheckpointMismatchError(ValueError):
  """The workdir's checkpoint was written by a model of another shape or structure."""


class UnreadableCheckpointsError(RuntimeError):
  """The workdir has checkpoints, but none of them can be read."""


def _checkpoint_number(prefix: str) -> int:
  return int(prefix.rsplit('-', 1)[1])


def _first_line(error: Exception) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:300] if text else type(error).__name__


def candidates(directory: str) -> list[str]:
  """Prefixes of the checkpoints in `directory` whose index file exists, newest first."""
  state = tf.train.get_checkpoint_state(directory)
  listed = list(state.all_model_checkpoint_paths) if state else []
  # Also any save the state file does not list (a run killed between writing and listing).
  found = [path[:-len('.index')] for path in tf.io.gfile.glob(
      os.path.join(directory, f'{CHECKPOINT_NAME}-*.index'))]
  prefixes = {os.path.join(directory, os.path.basename(path)) for path in listed + found}
  existing = [path for path in prefixes if tf.io.gfile.exists(path + '.index')]
  return sorted(existing, key=_checkpoint_number, reverse=True)


# What reading a half-written or truncated checkpoint raises (IndexError: the reader's "read
# less bytes than requested").
UNREADABLE = (tf.errors.DataLossError, tf.errors.NotFoundError, tf.errors.OutOfRangeError,
              IndexError)


def restore_newest_readable(directory: str, restore: Callable[[str], None]) -> Optional[str]:
  """Calls `restore(prefix)` on the checkpoints of `directory`, newest first, until one reads;
  returns its prefix, or None when there is no checkpoint.

  Training and the tools (sample, evaluate, export) restore through here. A checkpoint that
  cannot be read (a save killed midway, a truncated file) is skipped with a warning that names
  it; any other error of `restore` propagates. None readable raises UnreadableCheckpointsError.
  """
  found = candidates(directory)
  for prefix in found:
    try:
      restore(prefix)
    except UNREADABLE as error:
      logging.warning('Skipping checkpoint %s: it cannot be read (%s: %s); trying an older '
                      'one', prefix, type(error).__name__, str(error).splitlines()[0][:200])
      continue
    return prefix
  if found:
    # Starting over would let the next saves rotate the unreadable ones away.
    raise UnreadableCheckpointsError(
        f'none of the {len(found)} checkpoints in {directory} can be read (see the warnings '
        'above); move them away to start over, or restore them from a backup')
  return None


class Checkpointer:
  """Saves `trackables` (models, optimizers, counters) and restores the newest save."""

  def __init__(self, workdir: str, max_to_keep: int, *, is_chief: bool = True,
               optional: tuple[str, ...] = ('ema_generator',), **trackables):
    """`optional`: trackables an older checkpoint may lack (they keep their current values)."""
    self.directory = os.path.join(workdir, 'checkpoints')
    self.checkpoint = tf.train.Checkpoint(**trackables)
    self._trackables = trackables
    self._optional = optional
    self._max_to_keep = max_to_keep
    self._is_chief = is_chief
    self._manager = (tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep,
                                                checkpoint_name=CHECKPOINT_NAME)
                     if is_chief else None)

  def latest(self) -> Optional[str]:
    """Prefix of the chief's newest checkpoint, or None."""
    found = self.candidates()
    return found[0] if found else None

  def candidates(self) -> list[str]:
    """Prefixes of the chief's checkpoints whose index file exists, newest first."""
    return candidates(self.directory)

  def restore_latest(self) -> Optional[str]:
    """Restores the newest readable checkpoint; returns its prefix (None: fresh start).

    An unreadable one is skipped with a warning that names it (restore_newest_readable); a
    readable one that does not fit the model raises CheckpointMismatchError.
    """
    prefix = restore_newest_readable(self.directory, self._restore)
    if prefix:
      logging.info('Resumed from %s', prefix)
    return prefix

  def _restore(self, prefix: str) -> None:
    status = None
    try:
      names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()  # Readable?
      absent = [key for key in self._optional if key in self._trackables
                and not any(name.startswith(f'{key}/') for name in names)]
      checkpoint = self.checkpoint
      if absent:  # E.g. EMA turned on for a run that trained without it.
        logging.warning('%s has no %s; keeping its fresh values', prefix, ', '.join(absent))
        checkpoint = tf.train.Checkpoint(**{key: value for key, value in
                                            self._trackables.items() if key not in absent})
      status = checkpoint.restore(prefix)
      # Every saved object must find its variable: a mismatch means another model was
      # trained here.
      status.assert_existing_objects_matched()
    except UNREADABLE:
      if status is not None:
        status.expect_partial()
      raise
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as error:
      if status is not None:
        status.expect_partial()  # No second warning about the values that did not fit.
      raise CheckpointMismatchError(
          f'checkpoint {prefix} does not fit the configured model ({_first_line(error)}); '
          'it was trained with another model config (see config.json beside it): use '
          'another --workdir, or that config') from error

  def save(self, step: int) -> Optional[str]:
    """Saves at generator step `step`; returns the kept prefix (None on a non-chief worker)."""
    if self._is_chief:
      return self._manager.save(checkpoint_number=step)
    scratch = tempfile.mkdtemp(prefix='wgan_dist_worker_checkpoint_')
    try:
      tf.train.CheckpointManager(self.checkpoint, scratch, 1,
                                 checkpoint_name=CHECKPOINT_NAME).save(checkpoint_number=step)
    finally:
      shutil.rmtree(scratch, ignore_errors=True)
    return None
