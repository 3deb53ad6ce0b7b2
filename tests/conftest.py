"""Test setup: split the CPU into two logical devices before TensorFlow initialises.

A process can split its CPU only once, before the first TensorFlow op; every test in this
process then sees /cpu:0 and /cpu:1, and picks one (OneDeviceStrategy) or both (Mirrored).
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

_CPU = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture
def tiny_config():
  """The tiny MNIST testing config (embedded data, 4-filter models, a few steps)."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  return mnist.get_config('tiny')
