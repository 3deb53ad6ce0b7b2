"""This process's device settings, and the choices that depend on devices, made once per job.

- `configure(config)`: GPU memory growth (`distribution.gpu_memory_growth`; not on a GPU split
  into logical devices) and TensorFloat-32 (`allow_tf32`); before TensorFlow initialises its
  devices (distribution.create_strategy calls it first).
- ALL_REDUCES: the registry of `distribution.all_reduce`, what each name means to each kind of
  strategy (distribution.py makes the strategy with it).
- `resolve(config, kind)`: a copy of the config with `distribution.all_reduce` and
  `model.conv_impl` 'auto' replaced by what this worker's devices call for. train.py resolves
  once, so the strategy, the models and config.json see the same values.
- `check_workers_agree(config, tasks, me, timeout_secs)`: every worker of a multi-worker job
  publishes its resolved values and its GPU count through the coordination service (no
  collective: a job whose workers chose different all-reduce implementations could hang in its
  first one) and fails, naming the workers, if they differ (e.g. one node without GPUs).
"""

import dataclasses
from typing import Callable, Optional

import ml_collections
import tensorflow as tf
from absl import logging

from wgan_dist.config import registry
from wgan_dist.config import validation as config_validation
from wgan_dist.dist import exchange

@dataclasses.dataclass(frozen=True)
class AllReduce:
  """What `distribution.all_reduce` names: how each kind of strategy sums gradients with it."""
  # MirroredStrategy (one process): its cross_device_ops class; None: not for it.
  mirrored: Optional[Callable[[], tf.distribute.CrossDeviceOps]] = None
  # MultiWorkerMirroredStrategy: its communication implementation; None: not for it.
  multi_worker: Optional[tf.distribute.experimental.CommunicationImplementation] = None


# distribution.all_reduce. 'auto' is resolved once per job (`resolve_all_reduce`); 'nccl' needs
# GPUs; one_device strategies ignore the choice.
ALL_REDUCES: registry.Registry[AllReduce] = registry.Registry('distribution.all_reduce', {
    'auto': AllReduce(),
    'nccl': AllReduce(tf.distribute.NcclAllReduce,
                      tf.distribute.experimental.CommunicationImplementation.NCCL),
    'ring': AllReduce(multi_worker=tf.distribute.experimental.CommunicationImplementation.RING),
    'hierarchical_copy': AllReduce(mirrored=tf.distribute.HierarchicalCopyAllReduce),
    'reduce_to_one_device': AllReduce(mirrored=tf.distribute.ReductionToOneDevice),
})

# The fields `resolve` decides and the workers must agree on.
RESOLVED_FIELDS = ('distribution.all_reduce', 'model.conv_impl')


def _gpus() -> list:
  # Physical devices: listing them does not initialise TensorFlow's devices.
  return tf.config.list_physical_devices('GPU')


def num_gpus() -> int:
  """The GPUs this process sees (CUDA_VISIBLE_DEVICES applies)."""
  return len(_gpus())


def configure(config: ml_collections.ConfigDict) -> None:
  """GPU memory growth and TF32 as the config says; call before the first TensorFlow op."""
  # TF32 is a switch TensorFlow reads at each matmul or convolution it launches: settable any time.
  tf.config.experimental.enable_tensor_float_32_execution(config.allow_tf32)
  apply_memory_growth(_gpus(), config.distribution.gpu_memory_growth)


def apply_memory_growth(gpus: list, growth: bool, api=tf.config) -> None:
  """Memory growth on each of `gpus` (`api`: tf.config; tests pass a fake, having no GPU).

  Growth off is TensorFlow's default, so only growth on is set. A GPU split into logical devices
  is left alone: TensorFlow refuses memory growth there (ValueError), and the split gave each
  logical device a fixed memory limit already.
  """
  if not growth:
    return
  for gpu in gpus:
    if api.get_logical_device_configuration(gpu):
      continue
    try:
      api.experimental.set_memory_growth(gpu, True)
    except RuntimeError as error:  # The devices exist already (a second run in one process).
      if not bool(api.experimental.get_memory_growth(gpu)):
        raise config_validation.ConfigError(
            f'distribution.gpu_memory_growth=True cannot be applied: TensorFlow already '
            f'initialised {gpu.name} in this process without it ({error}); allowed: the value '
            'it was initialised with, or a new process') from error


def nccl_available() -> bool:
  """Whether this TensorFlow build has NCCL's GPU all-reduce kernel (TensorFlow's own test)."""
  from tensorflow.python.framework import kernels  # pylint: disable=g-direct-tensorflow-import,import-outside-toplevel
  return any(kernel.device_type == 'GPU' for kernel in
             kernels.get_registered_kernels_for_op('NcclAllReduce').kernel)


def resolve_all_reduce(requested: str, kind: str, num_gpus: int, has_nccl: bool) -> str:
  """The all-reduce `requested` for a strategy of `kind` (distribution.strategy_kind) on this
  worker's `num_gpus`; 'auto' made concrete; ConfigError for a value that cannot work here."""
  field = 'distribution.all_reduce'
  if kind == 'one_device':
    return requested  # One replica: nothing is all-reduced.
  if kind == 'multi_worker':
    allowed = tuple(name for name, entry in ALL_REDUCES.items() if entry.multi_worker is not None)
    if requested == 'auto':
      return 'nccl' if num_gpus else 'ring'
  else:
    allowed = tuple(name for name, entry in ALL_REDUCES.items() if entry.mirrored is not None)
    if requested == 'auto':  # As MirroredStrategy's own default (select_cross_device_ops).
      return 'nccl' if num_gpus and has_nccl else 'reduce_to_one_device'
  if requested not in allowed:
    raise config_validation.ConfigError(
        f'{field}={requested!r} is not allowed; allowed: {("auto",) + allowed} for '
        f'{"MultiWorkerMirroredStrategy" if kind == "multi_worker" else "MirroredStrategy"}')
  if requested == 'nccl' and not num_gpus:
    raise config_validation.ConfigError(
        f"{field}='nccl' is not allowed; allowed: 'auto' or "
        f'{[name for name in allowed if name != "nccl"]}: NCCL needs GPUs and this worker '
        'has none')
  return requested


def resolve_conv_impl(requested: str, num_gpus: int) -> str:
  """'auto' -> 'conv' (cuDNN) when the job runs on GPUs, else 'patch_matmul'."""
  if requested != 'auto':
    return requested
  return 'conv' if num_gpus else 'patch_matmul'


def resolve(config: ml_collections.ConfigDict, kind: str) -> ml_collections.ConfigDict:
  """A copy of a validated config with the 'auto' device choices made for this worker, whose
  strategy is of `kind` ('one_device' | 'mirrored' | 'multi_worker')."""
  resolved = config.copy_and_resolve_references()
  num_gpus = len(_gpus())
  resolved.distribution.all_reduce = resolve_all_reduce(
      config.distribution.all_reduce, kind, num_gpus, nccl_available() if num_gpus else False)
  resolved.model.conv_impl = resolve_conv_impl(config.model.conv_impl, num_gpus)
  logging.info('Devices: %d GPU(s); distribution.all_reduce=%r, model.conv_impl=%r',
               num_gpus, resolved.distribution.all_reduce, resolved.model.conv_impl)
  return resolved


def _field(config: ml_collections.ConfigDict, field: str):
  section, name = field.split('.')
  return config[section][name]


def check_workers_agree(config: ml_collections.ConfigDict, tasks: list[tuple[str, int, str]],
                        me: tuple[str, int], timeout_secs: float, store=None) -> None:
  """Multi-worker: ConfigError naming the workers unless all resolved RESOLVED_FIELDS alike and
  have as many GPUs (MultiWorkerMirroredStrategy needs the same devices per worker).

  `tasks`: (job, index, address) of every worker (distribution.cluster_tasks()); `me`: this
  one's (job, index). Call after the strategy exists (it starts the coordination service) and
  before any collective. Waits at most `timeout_secs` for a worker's values. `store`: the
  coordination service's key-value store (TensorFlow's context; tests pass a fake).
  """
  if len(tasks) <= 1:
    return
  mine = {field: _field(config, field) for field in RESOLVED_FIELDS}
  # The logical GPUs: the devices the strategy replicates over (the strategy exists already).
  mine['gpus'] = len(tf.config.list_logical_devices('GPU'))
  values = exchange.exchange('devices', mine, tasks, me, timeout_secs, store)
  compared = (*RESOLVED_FIELDS, 'gpus')
  choices = {tuple(value[field] for field in compared) for value in values.values()}
  if len(choices) > 1:
    described = '; '.join(
        f'{job} {index} ({address}): ' + ', '.join(f'{field}={value[field]!r}'
                                                   for field in RESOLVED_FIELDS) +
        f' ({value["gpus"]} GPUs)' for (job, index, address), value in values.items())
    raise config_validation.ConfigError(
        f'the workers resolved the device choices differently: {described}; allowed: the same '
        'on every worker (give every worker the same number and kind of devices, or set '
        f'{" and ".join(RESOLVED_FIELDS)} explicitly)')
