"""Out of memory is never reported as a lost worker: the message says OOM, names the device and
suggests a smaller per-replica batch or mixed_bfloat16 (a real allocator failure, in this process
and in a two-worker job on 127.0.0.1)."""

# pylint: disable=protected-access

import tensorflow as tf

from configs import mnist
from tests import test_multi_worker
from wgan_dist import out_of_memory
from wgan_dist import peers

# What a GPU's BFC allocator says in a multi-worker job (TensorFlow 2.x), first line.
GPU_MESSAGE = ('OOM when allocating tensor with shape[64,1024,2,2] and type float on '
               '/job:worker/replica:0/task:1/device:GPU:0 by allocator GPU_0_bfc')


def _real_oom() -> tf.errors.ResourceExhaustedError:
  try:
    tf.zeros([2**41], tf.float32)  # 8 TB: the CPU allocator refuses it at once.
  except tf.errors.ResourceExhaustedError as error:
    return error
  raise AssertionError('allocating 8 TB did not fail')


def test_a_real_out_of_memory_error_names_the_device_and_the_remedies():
  error = _real_oom()
  assert not peers.is_lost_worker(error)
  message = str(out_of_memory.out_of_memory_error(error, mnist.get_config('tiny')))
  assert message.startswith('out of memory on /job:localhost/replica:0/task:0/device:CPU:0 '
                            '(allocating a tensor of shape[2199023255552] and type float)')
  assert 'train.global_batch_size=8' in message
  assert "mixed_precision='mixed_bfloat16'" in message
  assert '\n' not in message


def test_a_gpu_out_of_memory_naming_a_task_is_not_a_lost_worker():
  oom = tf.errors.ResourceExhaustedError(None, None, GPU_MESSAGE)
  assert not peers.is_lost_worker(oom)
  # The same text in a collective's error does name a lost peer.
  assert peers.is_lost_worker(tf.errors.InternalError(None, None, GPU_MESSAGE))
  config = mnist.get_config('tiny')
  config.mixed_precision = 'mixed_bfloat16'
  message = str(out_of_memory.out_of_memory_error(oom, config))
  assert message.startswith('out of memory on /job:worker/replica:0/task:1/device:GPU:0 '
                            '(allocating a tensor of shape[64,1024,2,2] and type float): lower '
                            'the per-replica batch')
  assert 'mixed_bfloat16' not in message  # Already the policy.


def test_two_workers_out_of_memory_exit_1_saying_oom_not_lost_worker(tmp_path):
  # A noise dimension of 2^31 makes the generator's first kernel 6.7 TB: every worker's
  # allocator fails while building the models, inside the multi-worker job.
  workers, logs = test_multi_worker._start_cluster(
      2, [f'--workdir={tmp_path / "workdir"}', '--config.model.noise_dim=2147483648'],
      tmp_path, 'oom')
  codes = test_multi_worker._wait(workers, logs, timeout=180)
  for index, (code, log) in enumerate(zip(codes, logs)):
    last = open(log).read().strip().splitlines()[-1]
    assert code == 1, last
    assert last.startswith(f'error: out of memory on /job:worker/replica:0/task:{index}/'
                           'device:CPU:0 (allocating a tensor of shape[2147483648,'), last
    assert 'lost' not in last
