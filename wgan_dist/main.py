"""Command line: `python -m wgan_dist.main --config=configs/mnist.py [--config.a.b=value]`.

Only flags live here; the job is `wgan_dist.train.train_and_evaluate`, which tests and notebooks
import directly.
"""

from wgan_dist.config import tf_log_level

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

import os  # pylint: disable=wrong-import-position
import re  # pylint: disable=wrong-import-position
import sys  # pylint: disable=wrong-import-position
from typing import Optional  # pylint: disable=wrong-import-position

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position
from absl import logging  # pylint: disable=wrong-import-position
from ml_collections import config_flags  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position

from wgan_dist.training import checkpointing  # pylint: disable=wrong-import-position
from wgan_dist.config import validation as config_validation  # pylint: disable=wrong-import-position
from wgan_dist.dist import out_of_memory  # pylint: disable=wrong-import-position
from wgan_dist.dist import peers  # pylint: disable=wrong-import-position
from wgan_dist.dist import signals  # pylint: disable=wrong-import-position
from wgan_dist.data import sources  # pylint: disable=wrong-import-position
from wgan_dist.algorithm import steps  # pylint: disable=wrong-import-position
from wgan_dist import train  # pylint: disable=wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, optionally with an argument: configs/mnist.py:quick.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for checkpoints, samples, TensorBoard events and config.json; '
    'default runs/<config file stem>.')
flags.mark_flags_as_required(['config'])


def default_workdir(config_path: str) -> str:
  """runs/<stem> for configs/<stem>.py[:argument]."""
  stem = os.path.splitext(os.path.basename(config_path.split(':')[0]))[0]
  return os.path.join('runs', stem)


# What a --config.a.b value must parse as, by the type of the field's configured value.
_TYPE_NAMES = {bool: 'True or False', int: 'an integer', float: 'a number', str: 'a string',
               tuple: 'a tuple such as (0, 0)'}


def _override_type_error(error: flags.Error) -> Optional[str]:
  """'a.b=value is not allowed; allowed: <type>' for a --config.a.b value of the wrong type."""
  match = re.match(r'flag --config\.([\w.]+)=(.*?): ', str(error), re.S)
  if not match or f'config.{match[1]}' not in flags.FLAGS:
    return None
  value = flags.FLAGS[f'config.{match[1]}'].value
  kind = _TYPE_NAMES.get(type(value), type(value).__name__)
  return (f'{match[1]}={match[2]} is not allowed; allowed: {kind} (the type of its configured '
          f'value {value!r})')


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a one-line error for an override of a field the config lacks
  or of the wrong type."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    # --config.train.n_critic=2.5: absl would print Python's int() error and a second line.
    message = _override_type_error(error)
    if message:
      sys.exit(f'error: {message}')
    sys.exit(f'FATAL Flags parsing error: {error}\nPass --helpshort or --helpfull to see help.')
  except (AttributeError, KeyError) as error:
    # The locked config raises these for `--config.a.b=v` when a.b is not a field.
    reason = str(error).strip('\'"').replace('\\n', ' ').replace("\\'", "'")
    overrides = [arg.split('=')[0].lstrip('-') for arg in argv if arg.startswith('--config.')]
    sys.exit(f'error: unknown config field among the overrides {overrides}: {reason}; every '
             'field is defined in configs/default.py')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  workdir = _WORKDIR.value or default_workdir(flags.FLAGS['config'].config_filename)
  logging.info('Workdir: %s', os.path.abspath(workdir))
  try:
    train.train_and_evaluate(_CONFIG.value, workdir)
  except (config_validation.ConfigError, sources.DataError, checkpointing.CheckpointMismatchError,
          checkpointing.UnreadableCheckpointsError, steps.NonFiniteError) as error:
    # A clear one-line reason instead of a traceback; nothing saved is touched.
    logging.error('%s', error)
    sys.exit(f'error: {error}')
  except tf.errors.ResourceExhaustedError as error:
    # Not a lost worker, whatever task the device belongs to; the allocator's dump is in the log.
    message = out_of_memory.out_of_memory_error(error, _CONFIG.value)
    logging.error('%s', message)
    sys.exit(f'error: {message}')
  except signals.Stopped as stopped:
    logging.warning('%s', stopped)
    # Saved, and the summaries closed: end before Python's slow teardown, which would keep the
    # worker running seconds past its checkpoint at preemption (signals.exit_now).
    signals.exit_now(stopped.exit_code)
  except peers.LostWorkerError as error:
    logging.error('%s', error)
    print(f'error: {error}', file=sys.stderr)
    sys.exit(peers.EXIT_LOST_WORKER)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
