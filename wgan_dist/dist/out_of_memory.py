"""Out-of-memory errors as one line: which device ran out, and what to change.

TensorFlow reports a device out of memory as a ResourceExhaustedError whose message names the
device of a task ("OOM when allocating tensor with shape[...] ... on
/job:worker/replica:0/task:1/device:GPU:0 by allocator GPU_0_bfc"), followed by an allocator
dump of dozens of lines. It is this process's own device, not a lost peer (peers.is_lost_worker
says no), and the remedy is a smaller per-replica batch or a 16-bit compute policy.
"""

import re

import ml_collections
import tensorflow as tf

_DEVICE = re.compile(r'(/job:[\w-]+/replica:\d+/task:\d+/device:[A-Z_]+:\d+|/device:[A-Z_]+:\d+)')
_SHAPE = re.compile(r'OOM when allocating tensor with (shape\[[^\]]*\](?: and type \w+)?)')


class OutOfMemoryError(RuntimeError):
  """A device ran out of memory; the message names it and what to change."""


def device_of(error: tf.errors.ResourceExhaustedError) -> str:
  """The device an OOM message names (the last one: the allocating device), or 'a device'."""
  devices = _DEVICE.findall(error.message or '')
  return devices[-1] if devices else 'a device'


def out_of_memory_error(error: tf.errors.ResourceExhaustedError,
                        config: ml_collections.ConfigDict) -> OutOfMemoryError:
  """One line: OOM, the device, the tensor, the batch per replica and the remedies."""
  shape = _SHAPE.search(error.message or '')
  tensor = f' (allocating a tensor of {shape[1]})' if shape else ''
  batch = config.train.global_batch_size
  policy = ('' if config.mixed_precision == 'mixed_bfloat16' else
            " or mixed_precision='mixed_bfloat16' (Ampere/Hopper GPUs; 'mixed_float16' on "
            'older ones) to halve the activations')
  return OutOfMemoryError(
      f'out of memory on {device_of(error)}{tensor}: lower the per-replica batch '
      f'(train.global_batch_size={batch} split over the replicas; use more replicas or a '
      f'smaller batch){policy}')
