"""Device settings and device-dependent choices: the suite sees no GPU; 'auto' all-reduce and
convolution formulation resolve as documented for any device count, explicit values are honoured
or refused with a named error; every all-reduce trains the same model on 2 logical CPU
replicas (one process each) and a second one in a process is refused; TF32 follows the config;
workers that resolve differently or have different GPU counts stop with both named (through a
fake of the coordination service's key-value store); memory growth as TensorFlow allows it on
GPUs (a fake tf.config: the suite has no GPU)."""

# pylint: disable=protected-access

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from configs import mnist
from tests import helpers
from tests.conftest import REPO_ROOT
from tests.conftest import TEST_GPUS
from wgan_dist.config import validation as config_validation
from wgan_dist.dist import devices
from wgan_dist.dist import distribution


@pytest.mark.skipif(TEST_GPUS, reason='WGAN_DIST_TEST_GPUS=1 asked for the GPUs')
def test_the_suite_sees_no_gpu():
  assert os.environ['CUDA_VISIBLE_DEVICES'] == ''
  assert tf.config.list_physical_devices('GPU') == []
  assert tf.config.list_logical_devices('GPU') == []


@pytest.mark.parametrize('requested, kind, gpus, nccl, expected', [
    ('auto', 'multi_worker', 0, False, 'ring'),
    ('auto', 'multi_worker', 8, True, 'nccl'),
    ('auto', 'mirrored', 0, False, 'reduce_to_one_device'),
    ('auto', 'mirrored', 4, True, 'nccl'),
    ('auto', 'mirrored', 4, False, 'reduce_to_one_device'),  # A build without NCCL.
    ('ring', 'multi_worker', 0, False, 'ring'),
    ('ring', 'multi_worker', 8, True, 'ring'),
    ('nccl', 'multi_worker', 1, True, 'nccl'),
    ('hierarchical_copy', 'mirrored', 8, True, 'hierarchical_copy'),
    ('reduce_to_one_device', 'mirrored', 0, False, 'reduce_to_one_device'),
    ('nccl', 'one_device', 0, False, 'nccl'),  # Nothing to all-reduce: ignored.
])
def test_all_reduce_resolution(requested, kind, gpus, nccl, expected):
  assert devices.resolve_all_reduce(requested, kind, gpus, nccl) == expected


@pytest.mark.parametrize('requested, kind, gpus, allowed', [
    ('ring', 'mirrored', 4, "allowed: ('auto', 'nccl', 'hierarchical_copy', "
                            "'reduce_to_one_device') for MirroredStrategy"),
    ('hierarchical_copy', 'multi_worker', 8,
     "allowed: ('auto', 'nccl', 'ring') for MultiWorkerMirroredStrategy"),
    ('nccl', 'mirrored', 0, "NCCL needs GPUs and this worker has none"),
    ('nccl', 'multi_worker', 0, "allowed: 'auto' or ['ring']"),
])
def test_an_all_reduce_that_cannot_work_here_is_refused_naming_it(requested, kind, gpus,
                                                                  allowed):
  with pytest.raises(config_validation.ConfigError) as error:
    devices.resolve_all_reduce(requested, kind, gpus, True)
  assert str(error.value).startswith(f'distribution.all_reduce={requested!r} is not allowed')
  assert allowed in str(error.value)


def test_resolve_fills_in_auto_and_keeps_the_original():
  config = mnist.get_config('tiny')
  config.distribution.cpu_replicas = 2
  resolved = devices.resolve(config, distribution.strategy_kind(config, 0))
  assert (resolved.distribution.all_reduce, resolved.model.conv_impl) == (
      'reduce_to_one_device', 'patch_matmul')
  assert (config.distribution.all_reduce, config.model.conv_impl) == ('auto', 'auto')


@pytest.mark.parametrize('strategy, cpu_replicas, gpus, kind', [
    ('auto', 0, 0, 'one_device'), ('auto', 2, 0, 'mirrored'), ('auto', 0, 1, 'one_device'),
    ('auto', 0, 2, 'mirrored'), ('mirrored', 0, 0, 'mirrored'), ('one_device', 0, 8, 'one_device'),
    ('multi_worker', 0, 0, 'multi_worker'),
])
def test_strategy_kind(strategy, cpu_replicas, gpus, kind):
  config = mnist.get_config('tiny')
  config.distribution.strategy = strategy
  config.distribution.cpu_replicas = cpu_replicas
  assert distribution.strategy_kind(config, gpus) == kind


# One all-reduce per process: two MirroredStrategy objects over the same devices would collide in
# their collectives (distribution.py refuses the second).
_TRAIN_WITH = """
import json, sys
from configs import mnist
from tests import helpers
config = mnist.get_config('tiny')
config.distribution.all_reduce = sys.argv[1]
history, _, state = helpers.train_steps(config, cpu_replicas=2, num_steps=2)
ops = state.generator.distribute_strategy.extended._cross_device_ops
print(json.dumps({'ops': type(ops).__name__,
                  'history': [{name: float(value) for name, value in step.items()}
                              for step in history]}))
"""


@pytest.mark.slow
def test_every_one_process_all_reduce_trains_the_same_model():
  """The all-reduce is the strategy's (MirroredStrategy's cross_device_ops): each one sums the
  same gradients, so the losses of 2 replicas agree to float rounding."""
  runs = {}
  for all_reduce in ('reduce_to_one_device', 'hierarchical_copy'):
    done = subprocess.run([sys.executable, '-c', _TRAIN_WITH, all_reduce], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    runs[all_reduce] = json.loads(done.stdout.strip().splitlines()[-1])
  assert runs['reduce_to_one_device']['ops'] == 'ReductionToOneDevice'
  assert runs['hierarchical_copy']['ops'] == 'HierarchicalCopyAllReduce'
  for reference, other in zip(*(run['history'] for run in runs.values())):
    for name, value in reference.items():
      np.testing.assert_allclose(other[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_another_all_reduce_over_the_same_devices_needs_a_new_process(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.distribution.strategy, config.distribution.cpu_replicas = 'mirrored', 2
  strategy = distribution.create_strategy(config)  # 'auto': as every other test here.
  made_with = type(strategy.extended._cross_device_ops).__name__
  other = 'hierarchical_copy' if made_with == 'ReductionToOneDevice' else 'reduce_to_one_device'
  config.distribution.all_reduce = other
  with pytest.raises(config_validation.ConfigError,
                     match=rf"^distribution.all_reduce='{other}' is not allowed here: this "
                     'process already has a MirroredStrategy over the same devices with '
                     r".*\(it needs a new process\)$"):
    distribution.create_strategy(config)


@pytest.mark.parametrize('allow_tf32', [False, True])
def test_tf32_follows_the_config(tiny_config, allow_tf32):
  tiny_config.allow_tf32 = allow_tf32
  devices.configure(tiny_config)
  assert tf.config.experimental.tensor_float_32_execution_enabled() == allow_tf32


_FakeStore = helpers.FakeKeyValueStore


_TASKS = [('worker', 0, 'host0:1'), ('worker', 1, 'host1:1')]


def _agree(config, worker1: dict, store=None) -> None:
  store = store or _FakeStore({('worker', '1'): worker1})
  devices.check_workers_agree(config, _TASKS, ('worker', 0), timeout_secs=1, store=store)


def test_workers_that_resolve_alike_agree_also_in_a_second_run_of_the_process(tiny_config):
  tiny_config.distribution.all_reduce, tiny_config.model.conv_impl = 'ring', 'patch_matmul'
  same = {'distribution.all_reduce': 'ring', 'model.conv_impl': 'patch_matmul', 'gpus': 0}
  store = _FakeStore({('worker', '1'): same})
  _agree(tiny_config, same, store)
  _agree(tiny_config, same, store)  # New keys: no AlreadyExists.
  assert len(store.values) == 2


def test_workers_that_resolve_differently_stop_naming_both(tiny_config):
  """Worker 1 resolved another formulation, as 'auto' would on a node with a GPU."""
  tiny_config.distribution.all_reduce, tiny_config.model.conv_impl = 'ring', 'patch_matmul'
  with pytest.raises(config_validation.ConfigError, match=re.escape(
      'the workers resolved the device choices differently: '
      "worker 0 (host0:1): distribution.all_reduce='ring', model.conv_impl='patch_matmul' "
      "(0 GPUs); worker 1 (host1:1): distribution.all_reduce='ring', model.conv_impl='conv' "
      '(0 GPUs); allowed: the same on every worker')):
    _agree(tiny_config, {'distribution.all_reduce': 'ring', 'model.conv_impl': 'conv',
                         'gpus': 0})


def test_workers_with_different_gpu_counts_stop_naming_both(tiny_config):
  tiny_config.distribution.all_reduce, tiny_config.model.conv_impl = 'ring', 'patch_matmul'
  with pytest.raises(config_validation.ConfigError, match=re.escape(
      "worker 1 (host1:1): distribution.all_reduce='ring', model.conv_impl='patch_matmul' "
      '(2 GPUs); allowed: the same on every worker (give every worker the same number and kind '
      'of devices')):
    _agree(tiny_config, {'distribution.all_reduce': 'ring', 'model.conv_impl': 'patch_matmul',
                         'gpus': 2})


class _FakeGpuConfig:
  """tf.config's memory-growth calls as TensorFlow behaves on a GPU (the suite has none):
  ValueError on a GPU split into logical devices, RuntimeError once the devices exist, and
  get_memory_growth None for a GPU initialised without it."""

  def __init__(self, logical: dict, initialised: bool):
    self._logical, self._initialised, self.growth = logical, initialised, {}
    self.experimental = self

  def get_logical_device_configuration(self, gpu):
    return self._logical.get(gpu.name)

  def set_memory_growth(self, gpu, enable):
    if self._logical.get(gpu.name):
      raise ValueError('Cannot set memory growth on device when virtual devices configured')
    if self._initialised:
      raise RuntimeError('Physical devices cannot be modified after being initialized')
    self.growth[gpu.name] = enable

  def get_memory_growth(self, gpu):
    return self.growth.get(gpu.name)


_GPUS = [tf.config.PhysicalDevice(f'/physical_device:GPU:{i}', 'GPU') for i in range(2)]


def test_memory_growth_skips_gpus_split_into_logical_devices():
  api = _FakeGpuConfig({_GPUS[0].name: [tf.config.LogicalDeviceConfiguration(1024)] * 2}, False)
  devices.apply_memory_growth(_GPUS, True, api)
  assert api.growth == {_GPUS[1].name: True}


def test_memory_growth_off_is_the_default_and_never_set():
  api = _FakeGpuConfig({}, initialised=True)
  devices.apply_memory_growth(_GPUS, False, api)  # A second run in one process: no error.
  assert api.growth == {}


def test_memory_growth_on_initialised_devices_without_it_is_refused_naming_the_field():
  with pytest.raises(config_validation.ConfigError,
                     match=r'^distribution.gpu_memory_growth=True cannot be applied: '
                     'TensorFlow already initialised /physical_device:GPU:0'):
    devices.apply_memory_growth(_GPUS, True, _FakeGpuConfig({}, initialised=True))
