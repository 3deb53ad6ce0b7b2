"""Out of memory is never reported as a lost worker: the message says OOM, names the device and
suggests a smaller per-replica batch or mixed_bfloat16 (a real allocator failure, in this process
and in a two-worker job on 127.0.0.1)."""

# pylint: disable=protected-access

import json

import pytest
import tensorflow as tf

from configs import mnist
from tests import test_multi_worker
from wgan_dist.dist import out_of_memory
from wgan_dist.dist import peers

# What a GPU's BFC allocator says in a multi-worker job (TensorFlow 2.x), first line.
GPU_MESSAGE = ('OOM when allocating tensor with shape[64,1024,2,2] and type float on '
               '/job:worker/replica:0/task:1/device:GPU:0 by allocator GPU_0_bfc')


def _real_oom() -> tf.errors.ResourceExhaustedError:
  try:
    # 256 TiB: above the 128 TiB of a 47-bit user address space, so refused at once even
    # where malloc overcommits (vm.overcommit_memory=1).
    tf.zeros([2**46], tf.float32)
  except tf.errors.ResourceExhaustedError as error:
    return error
  raise AssertionError('allocating 256 TiB did not fail')


@pytest.mark.slow
def test_a_real_out_of_memory_error_names_the_device_and_the_remedies():
  error = _real_oom()
  assert not peers.is_lost_worker(error)
  message = str(out_of_memory.out_of_memory_error(error, mnist.get_config('tiny')))
  assert message.startswith('out of memory on /job:localhost/replica:0/task:0/device:CPU:0 '
                            '(allocating a tensor of shape[70368744177664] and type float)')
  assert 'train.global_batch_size=8' in message
  assert "mixed_precision='mixed_bfloat16'" in message
  assert '\n' not in message


def _as_task(monkeypatch, index: int) -> None:
  monkeypatch.setenv('TF_CONFIG', json.dumps({
      'cluster': {'worker': ['127.0.0.1:1', '127.0.0.1:2']},
      'task': {'type': 'worker', 'index': index}}))


def test_an_error_naming_only_this_workers_own_task_is_not_a_lost_worker(monkeypatch):
  error = tf.errors.InternalError(None, None, GPU_MESSAGE)  # Names task 1.
  _as_task(monkeypatch, 1)
  assert not peers.is_lost_worker(error)
  # The same text seen by task 0 names another task: a lost peer.
  _as_task(monkeypatch, 0)
  assert peers.is_lost_worker(error)


def test_a_gpu_out_of_memory_naming_a_task_is_not_a_lost_worker(monkeypatch):
  oom = tf.errors.ResourceExhaustedError(None, None, GPU_MESSAGE)
  _as_task(monkeypatch, 0)  # Even named from another task.
  assert not peers.is_lost_worker(oom)
  config = mnist.get_config('tiny')
  config.mixed_precision = 'mixed_bfloat16'
  message = str(out_of_memory.out_of_memory_error(oom, config))
  assert message.startswith('out of memory on /job:worker/replica:0/task:1/device:GPU:0 '
                            '(allocating a tensor of shape[64,1024,2,2] and type float): lower '
                            'the per-replica batch')
  assert 'mixed_bfloat16' not in message  # Already the policy.


@pytest.mark.slow
def test_two_workers_out_of_memory_exit_1_saying_oom_not_lost_worker(tmp_path):
  # A noise dimension of 2^38 makes the generator's first kernel 784 TiB (above a 47-bit user
  # address space, so refused even under overcommit): every worker's allocator fails while
  # building the models, inside the multi-worker job.
  workers, logs = test_multi_worker._start_cluster(
      2, [f'--workdir={tmp_path / "workdir"}', '--config.model.noise_dim=274877906944'],
      tmp_path, 'oom')
  codes = test_multi_worker._wait(workers, logs, timeout=180)
  for index, (code, log) in enumerate(zip(codes, logs)):
    last = open(log).read().strip().splitlines()[-1]
    assert code == 1, last
    assert last.startswith(f'error: out of memory on /job:worker/replica:0/task:{index}/'
                           'device:CPU:0 (allocating a tensor of shape[274877906944,'), last
    assert 'lost' not in last
