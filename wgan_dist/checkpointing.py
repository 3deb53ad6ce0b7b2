"""Checkpoints of the whole training state in `workdir/checkpoints`.

Generator, critic, both optimizers (Adam moments and iteration counts) and the generator-step
counter; the step keys every random draw, so a resumed run continues the noise sequence.
"""

import os

import tensorflow as tf
from absl import logging


def make_manager(workdir: str, max_to_keep: int, **trackables) -> tf.train.CheckpointManager:
  """A CheckpointManager over `trackables` (models, optimizers, the step variable)."""
  checkpoint = tf.train.Checkpoint(**trackables)
  return tf.train.CheckpointManager(checkpoint, os.path.join(workdir, 'checkpoints'),
                                    max_to_keep=max_to_keep, checkpoint_name='ckpt')


def restore_latest(manager: tf.train.CheckpointManager) -> bool:
  """Restores the newest checkpoint if there is one; returns whether it did."""
  latest = manager.latest_checkpoint
  if latest is None:
    return False
  # Every saved object must find its variable: a mismatch means another model was trained here.
  manager.checkpoint.restore(latest).assert_existing_objects_matched()
  logging.info('Resumed from %s', latest)
  return True
