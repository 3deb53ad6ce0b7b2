"""Creates the tf.distribute strategy a config asks for, and says which process is the chief.

Must run before any other TensorFlow op: splitting the CPU into logical devices and starting the
multi-worker server and collectives are only possible before TensorFlow initialises its devices.

Multi-worker jobs are described by the `TF_CONFIG` environment variable, as TensorFlow defines it:
  {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}
Worker 0 (or the task of type "chief", if the cluster has one) is the chief.
"""

import json
import os
import socket

import ml_collections
import tensorflow as tf
from absl import logging

from wgan_dist.config import validation as config_validation
from wgan_dist.dist import devices

_COORDINATED_JOBS = ('chief', 'worker')

# One strategy per device set and process: two MirroredStrategy objects over the same devices
# number their collective ops from the same keys, and the second one's all-reduce can then meet
# the first one's in the shared collective executor ("Shape mismatch in the collective instance").
# Keyed by the devices only, with the all-reduce the strategy was made with: another all-reduce
# over the same devices needs a new process.
_STRATEGIES: dict[tuple, tuple[tf.distribute.Strategy, str]] = {}


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


def loopback_hosts(count: int) -> list[str]:
  """`count` 'host:port' addresses on 127.0.0.1 with ports free now, for the workers of a local
  multi-worker job (the tests' and benchmarks' jobs). Each port is bound once to reserve it from
  the kernel, then released for the worker to bind."""
  sockets = [socket.socket() for _ in range(count)]
  for sock in sockets:
    sock.bind(('127.0.0.1', 0))
  hosts = [f'127.0.0.1:{sock.getsockname()[1]}' for sock in sockets]
  for sock in sockets:
    sock.close()
  return hosts


def tf_config() -> dict:
  """The parsed TF_CONFIG environment variable ({} when unset); a clear error when malformed."""
  text = os.environ.get('TF_CONFIG', '')
  if not text.strip():
    return {}
  try:
    parsed = json.loads(text)
  except json.JSONDecodeError as error:
    raise ValueError(f'TF_CONFIG is not valid JSON ({error}): {text!r}') from error
  if not isinstance(parsed, dict) or not isinstance(parsed.get('cluster', {}), dict):
    raise ValueError(f'TF_CONFIG must be a JSON object with a "cluster" object: {text!r}')
  return parsed


def cluster_tasks() -> list[tuple[str, int, str]]:
  """(job, index, address) of every chief and worker task TF_CONFIG names, chief first."""
  cluster = tf_config().get('cluster', {})
  return [(job, index, address) for job in _COORDINATED_JOBS
          for index, address in enumerate(cluster.get(job, []))]


def this_task() -> tuple[str, int]:
  """(type, index) of this process's task in TF_CONFIG; ('worker', 0) without one."""
  task = tf_config().get('task', {})
  return task.get('type', 'worker'), int(task.get('index', 0))


def is_chief() -> bool:
  """Whether this process writes events, samples, config.json and the real checkpoints."""
  tasks = cluster_tasks()
  if len(tasks) <= 1:
    return True
  return this_task() == tasks[0][:2]


def strategy_kind(config: ml_collections.ConfigDict, num_gpus: int) -> str:
  """'multi_worker' | 'mirrored' | 'one_device': what `create_strategy` makes of the config."""
  name = config.distribution.strategy
  if name == 'multi_worker' or (name == 'auto' and len(cluster_tasks()) > 1):
    return 'multi_worker'
  if name == 'mirrored' or (name == 'auto' and
                            (num_gpus > 1 or config.distribution.cpu_replicas > 1)):
    return 'mirrored'
  return 'one_device'


def _all_reduce(config: ml_collections.ConfigDict, kind: str, gpus: list) -> str:
  """The resolved distribution.all_reduce (the config's own, once train.py resolved it)."""
  return devices.resolve_all_reduce(config.distribution.all_reduce, kind, len(gpus),
                                    devices.nccl_available() if gpus else False)


def _cached(key: tuple, all_reduce: str) -> tf.distribute.Strategy:
  """The strategy made for `key`; ConfigError if it was made with another all-reduce."""
  strategy, made_with = _STRATEGIES[key]
  if key[0] != 'one_device' and made_with != all_reduce:
    raise config_validation.ConfigError(
        f'distribution.all_reduce={all_reduce!r} is not allowed here: this process already has '
        f'a {type(strategy).__name__} over the same devices with {made_with!r}, and two would '
        f'collide in their collectives; allowed: {made_with!r}, or another all-reduce in a new '
        'process (it needs a new process)')
  return strategy


def _multi_worker_strategy(config: ml_collections.ConfigDict,
                           all_reduce: str) -> tf.distribute.Strategy:
  tasks = cluster_tasks()
  task_type, task_index = this_task()
  if (task_type, task_index) not in [task[:2] for task in tasks]:
    raise ValueError(f'TF_CONFIG task {task_type!r} {task_index} is not in its cluster '
                     f'{[task[:2] for task in tasks]}')
  if config.distribution.cpu_replicas > 1:
    raise ValueError(f'distribution.cpu_replicas={config.distribution.cpu_replicas} is not '
                     "allowed with distribution.strategy='multi_worker': each worker uses its "
                     'GPUs or one CPU; allowed: 0 or 1')
  timeout_ms = int(config.distribution.peer_timeout_secs * 1000)
  # The coordination service (leader: the chief) sends heartbeats between tasks; a task that
  # misses them for timeout_ms is declared dead and every other task fails instead of waiting
  # forever in a collective. Configured here because the strategy would otherwise start it with
  # defaults; must precede the strategy.
  from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2  # pylint: disable=g-direct-tensorflow-import,import-outside-toplevel
  from tensorflow.python.eager import context  # pylint: disable=g-direct-tensorflow-import,import-outside-toplevel
  jobs = [coordination_config_pb2.CoordinatedJob(
      name=job, num_tasks=sum(1 for task in tasks if task[0] == job))
          for job in _COORDINATED_JOBS if any(task[0] == job for task in tasks)]
  context.context().configure_coordination_service(
      service_type='standalone', service_leader=f'/job:{tasks[0][0]}/replica:0/task:0',
      heartbeat_timeout_in_ms=timeout_ms, cluster_register_timeout_in_ms=timeout_ms,
      shutdown_barrier_timeout_in_ms=timeout_ms, coordinated_jobs=jobs)
  # Every task waits at registration for all the others, at most timeout_ms, then fails with
  # an error naming the missing ones (without it the chief waits forever inside TensorFlow
  # with the Python interpreter locked). Not an argument of the method above, hence the field.
  context.context().coordination_service.cluster_register_with_barrier = True
  options = tf.distribute.experimental.CommunicationOptions(
      implementation=devices.ALL_REDUCES.get(all_reduce).multi_worker)
  return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def create_strategy(config: ml_collections.ConfigDict) -> tf.distribute.Strategy:
  """Returns the strategy for a validated `config.distribution` (see configs/default.py), after
  applying the device settings (devices.configure)."""
  devices.configure(config)
  name = config.distribution.strategy
  cpu_replicas = config.distribution.cpu_replicas
  gpus = tf.config.list_physical_devices('GPU')
  kind = strategy_kind(config, len(gpus))
  all_reduce = _all_reduce(config, kind, gpus)
  if kind == 'multi_worker':
    if ('multi_worker',) not in _STRATEGIES:
      _STRATEGIES[('multi_worker',)] = (_multi_worker_strategy(config, all_reduce), all_reduce)
    strategy = _cached(('multi_worker',), all_reduce)
    logging.info('Strategy MultiWorkerMirroredStrategy: task %s of %d, %d replica(s) in sync',
                 this_task(), len(cluster_tasks()), strategy.num_replicas_in_sync)
    return strategy
  cpus = _logical_cpus(cpu_replicas) if cpu_replicas > 0 else []

  if name == 'one_device':
    key = ('one_device', '/gpu:0' if gpus else '/cpu:0')
  elif kind == 'mirrored':
    # GPUs when there are any; otherwise the logical CPUs (or the one CPU).
    key = ('mirrored', *([gpu.name for gpu in gpus] if gpus else (cpus or ['/cpu:0'])))
  else:
    key = ('one_device', '/gpu:0' if gpus else cpus[0] if cpus else '/cpu:0')
  if key not in _STRATEGIES:
    if key[0] == 'one_device':
      _STRATEGIES[key] = (tf.distribute.OneDeviceStrategy(key[1]), all_reduce)
    else:
      cross_device_ops = devices.ALL_REDUCES.get(all_reduce).mirrored()
      _STRATEGIES[key] = (tf.distribute.MirroredStrategy(
          None if gpus else list(key[1:]), cross_device_ops=cross_device_ops),
                          all_reduce)
  strategy = _cached(key, all_reduce)
  logging.info('Strategy %s with %d replica(s): %s', type(strategy).__name__,
               strategy.num_replicas_in_sync, strategy.extended.worker_devices)
  return strategy
