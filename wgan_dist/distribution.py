"""Creates the tf.distribute strategy a config asks for.

Must run before any other TensorFlow op: splitting the CPU into logical devices (and, later,
multi-worker collectives) is only possible before TensorFlow initialises its devices.
"""

import ml_collections
import tensorflow as tf
from absl import logging

STRATEGIES = ('auto', 'one_device', 'mirrored')

# One strategy per device set and process: two MirroredStrategy objects over the same devices
# number their collective ops from the same keys, and the second one's all-reduce can then meet
# the first one's in the shared collective executor ("Shape mismatch in the collective instance").
_STRATEGIES: dict[tuple, tf.distribute.Strategy] = {}


def _logical_cpus(count: int) -> list[str]:
  """Names of `count` logical CPU devices, splitting the physical CPU if not yet done."""
  cpu = tf.config.list_physical_devices('CPU')[0]
  existing = tf.config.get_logical_device_configuration(cpu)
  if not existing or len(existing) < count:
    try:
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
      raise ValueError(
          f'distribution.cpu_replicas={count}: TensorFlow already initialised its devices '
          f'with {len(tf.config.list_logical_devices("CPU"))} CPU device(s) in this process; '
          'logical CPUs can only be split before the first TensorFlow op') from error
  return [device.name for device in tf.config.list_logical_devices('CPU')[:count]]


def create_strategy(config: ml_collections.ConfigDict) -> tf.distribute.Strategy:
  """Returns the strategy for `config.distribution` (see configs/default.py)."""
  name = config.distribution.strategy
  cpu_replicas = config.distribution.cpu_replicas
  if name not in STRATEGIES:
    raise ValueError(f'distribution.strategy={name!r} is not allowed; allowed: {STRATEGIES}')
  gpus = tf.config.list_physical_devices('GPU')
  cpus = _logical_cpus(cpu_replicas) if cpu_replicas > 0 else []

  if name == 'one_device':
    key = ('one_device', '/gpu:0' if gpus else '/cpu:0')
  elif name == 'mirrored' or (name == 'auto' and (len(gpus) > 1 or len(cpus) > 1)):
    # GPUs when there are any; otherwise the logical CPUs (or the one CPU).
    key = ('mirrored', *([gpu.name for gpu in gpus] if gpus else (cpus or ['/cpu:0'])))
  else:
    key = ('one_device', '/gpu:0' if gpus else cpus[0] if cpus else '/cpu:0')
  if key not in _STRATEGIES:
    if key[0] == 'one_device':
      _STRATEGIES[key] = tf.distribute.OneDeviceStrategy(key[1])
    else:
      _STRATEGIES[key] = tf.distribute.MirroredStrategy(None if gpus else list(key[1:]))
  strategy = _STRATEGIES[key]
  logging.info('Strategy %s with %d replica(s): %s', type(strategy).__name__,
               strategy.num_replicas_in_sync, strategy.extended.worker_devices)
  return strategy
