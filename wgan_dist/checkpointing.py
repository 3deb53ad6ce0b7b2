"""Checkpoints of the whole training state in `workdir/checkpoints`.

Generator, critic, both optimizers (Adam moments and iteration counts) and the generator-step
counter; the step keys every random draw, so a resumed run continues the noise sequence.

Under multi-worker training every worker must take part in each save (reading distributed
variables can run collectives; a worker that skipped the save would leave the others waiting),
but only the chief's files are kept: the other workers write into a temporary directory outside
the workdir and delete it at once. Every worker restores from the chief's directory, so the
workdir must be on storage all workers see (a shared file system) for a job to resume.
"""

import os
import shutil
import tempfile
from typing import Optional

import tensorflow as tf
from absl import logging

CHECKPOINT_NAME = 'ckpt'


class Checkpointer:
  """Saves `trackables` (models, optimizers, counters) and restores the newest save."""

  def __init__(self, workdir: str, max_to_keep: int, *, is_chief: bool = True, **trackables):
    self.directory = os.path.join(workdir, 'checkpoints')
    self.checkpoint = tf.train.Checkpoint(**trackables)
    self._max_to_keep = max_to_keep
    self._is_chief = is_chief
    self._manager = (tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep,
                                                checkpoint_name=CHECKPOINT_NAME)
                     if is_chief else None)

  def latest(self) -> Optional[str]:
    """Prefix of the chief's newest checkpoint, or None."""
    return tf.train.latest_checkpoint(self.directory)

  def restore_latest(self) -> Optional[str]:
    """Restores the newest checkpoint if there is one; returns its prefix (None: fresh start)."""
    latest = self.latest()
    if latest is None:
      return None
    # Every saved object must find its variable: a mismatch means another model was trained here.
    self.checkpoint.restore(latest).assert_existing_objects_matched()
    logging.info('Resumed from %s', latest)
    return latest

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
