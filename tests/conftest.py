"""Test setup: hide the GPUs and split the CPU into two logical devices before TensorFlow
initialises.

The suite is sealed off from GPUs so that it passes unchanged on a GPU node: with GPUs visible,
`distribution.create_strategy` would use them and ignore `cpu_replicas` (replica counts would
then depend on the node), and the models would pick the GPU formulations. CUDA_VISIBLE_DEVICES=''
is set before TensorFlow loads, so neither this process nor the worker processes tests start
(which inherit the environment) see a GPU. A test that wants the GPUs runs them in a subprocess
with `gpu_env()`; `WGAN_DIST_TEST_GPUS=1` turns the hiding off altogether (for such tests only:
other tests then run on whatever the node has).

A process can split its CPU only once, before the first TensorFlow op; every test in this
process then sees /cpu:0 and /cpu:1, and picks one (OneDeviceStrategy) or both (Mirrored).
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# One thread per TensorFlow op: the suite runs three pytest processes (and the worker processes
# some tests start) on a few cores, and each process's default pool of one thread per core
# competed for them (six training-heavy modules took 3 min 2 s on 2 cores with the default,
# 2 min 41 s with one thread). The processes the tests start inherit it; set it yourself to
# test with another value.
os.environ.setdefault('TF_NUM_INTRAOP_THREADS', '1')
# The launch scripts the tests start call `python`: the interpreter running the tests (and its
# packages), also when pytest runs as .venv/bin/python without the venv activated.
os.environ['PATH'] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get('PATH', '')])
# The node's own setting (None: all GPUs), for gpu_env().
ORIGINAL_CUDA_VISIBLE_DEVICES = os.environ.get('CUDA_VISIBLE_DEVICES')
TEST_GPUS = os.environ.get('WGAN_DIST_TEST_GPUS') == '1'
if not TEST_GPUS:
  os.environ['CUDA_VISIBLE_DEVICES'] = ''

import pytest  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

if not TEST_GPUS:
  # Also through TensorFlow, in case CUDA was initialised before this file ran (a plugin).
  tf.config.set_visible_devices([], 'GPU')
_CPU = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)


def gpu_env() -> dict[str, str]:
  """os.environ with the node's GPUs visible again, for a subprocess that asks for them."""
  env = dict(os.environ)
  if ORIGINAL_CUDA_VISIBLE_DEVICES is None:
    env.pop('CUDA_VISIBLE_DEVICES', None)
  else:
    env['CUDA_VISIBLE_DEVICES'] = ORIGINAL_CUDA_VISIBLE_DEVICES
  return env


@pytest.fixture
def tiny_config():
  """The tiny MNIST testing config (embedded data, 4-filter models, a few steps)."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  return mnist.get_config('tiny')
