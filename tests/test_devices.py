"""Device settings and device-dependent choices: the suite sees no GPU; 'auto' all-reduce and
convolution formulation resolve as documented for any device count, explicit values are honoured
or refused with a named error; every all-reduce trains the same model on 2 logical CPU
replicas; TF32 follows the config; workers that resolve differently stop with both named."""

# pylint: disable=protected-access

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from configs import mnist
from tests import helpers
from tests import test_multi_worker
from tests.conftest import REPO_ROOT
from tests.conftest import TEST_GPUS
from wgan_dist import config_validation
from wgan_dist import devices
from wgan_dist import distribution


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


def test_workers_that_resolve_differently_stop_naming_both(tmp_path):
  """Worker 1 is given another formulation, as 'auto' would give a node without GPUs."""
  hosts = [f'127.0.0.1:{port}' for port in test_multi_worker._free_ports(2)]
  workers, logs = [], []
  for index, conv_impl in enumerate(('patch_matmul', 'conv')):
    logs.append(str(tmp_path / f'worker{index}.log'))
    flags = [f'--workdir={tmp_path / "workdir"}', f'--config.model.conv_impl={conv_impl}']
    workers.append(test_multi_worker._start_worker(hosts, index, flags, str(tmp_path), logs[-1]))
  codes = test_multi_worker._wait(workers, logs, timeout=180)
  for code, log in zip(codes, logs):
    last = open(log).read().strip().splitlines()[-1]
    assert code == 1, last
    assert last.startswith('error: the workers resolved the device choices differently: '
                           f"worker 0 ({hosts[0]}): distribution.all_reduce='ring', "
                           "model.conv_impl='patch_matmul' (0 GPUs); "
                           f"worker 1 ({hosts[1]}): distribution.all_reduce='ring', "
                           "model.conv_impl='conv' (0 GPUs)"), last
  assert not (tmp_path / 'workdir' / 'checkpoints').exists()


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
