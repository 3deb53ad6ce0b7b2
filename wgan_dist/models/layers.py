"""Layers the architectures share: the critic's per-example layer norm, the patch-matmul
convolution, the critic normalisation a config names, and the class-conditional parts (the
generator's inputs and batch norm, the critic's output head).

Class-conditional models (`model.num_classes` = K > 0) take labels as int32 [B] inputs named
'label', values in [0, K). The generator's batch norm becomes `ConditionalBatchNorm`
(per-class scale and offset); the critic ends in `critic_model`, the head of the config's
conditioning (algorithm/conditioning.py: 'acgan' score and class logits, 'projection').

Kept apart from architectures.py (which picks an architecture) so that every architecture module,
resnet.py and dcgan64.py included, imports these without importing the registry of
architectures: the import graph has no cycle.
"""

import contextlib
from typing import Iterator, Optional

import keras
import numpy as np
from keras import layers
from keras import ops

from wgan_dist.algorithm import conditioning as conditioning_lib

LEAKY_SLOPE = 0.2  # The paper's tflib LeakyReLU.


class PerExampleLayerNorm(layers.Layer):
  """Layer norm over (H, W, C) of each example, with a per-channel scale and offset.

  This is the paper's critic layer norm (tflib `Layernorm(name, [1, 2, 3], x)`). It never mixes
  examples, so ∇x D(x) of one example depends on that example alone, which the per-example
  gradient penalty assumes. Statistics are taken in float32.
  """

  def __init__(self, epsilon: float = 1e-5, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = epsilon

  def build(self, input_shape):
    channels = input_shape[-1]
    # autocast=False: read in float32 even under a mixed policy (the statistics are float32).
    self.gamma = self.add_weight(shape=(channels,), initializer='ones', name='gamma',
                                 autocast=False)
    self.beta = self.add_weight(shape=(channels,), initializer='zeros', name='beta',
                                autocast=False)

  def call(self, inputs):
    x = ops.cast(inputs, 'float32')
    mean, variance = ops.moments(x, axes=[1, 2, 3], keepdims=True)
    x = (x - mean) * ops.rsqrt(variance + self.epsilon)
    x = x * ops.cast(self.gamma, 'float32') + ops.cast(self.beta, 'float32')
    return ops.cast(x, self.compute_dtype)

  def get_config(self):
    return {**super().get_config(), 'epsilon': self.epsilon}


def patch_indices(height: int, width: int, kernel: tuple, strides: tuple,
                  padding: str) -> tuple[np.ndarray, int, int]:
  """Where each output pixel's k·k window reads in the row-major flattened input.

  Returns (indices [out_h·out_w, kh·kw], out_h, out_w); a window position in the padding reads
  index height·width (a zero pixel appended after the image). TensorFlow's SAME padding:
  ceil(size / stride) outputs, the odd padding pixel at the end.
  """
  (kernel_h, kernel_w), (stride_h, stride_w) = kernel, strides
  if padding == 'same':
    out_h, out_w = -(-height // stride_h), -(-width // stride_w)
    top = max((out_h - 1) * stride_h + kernel_h - height, 0) // 2
    left = max((out_w - 1) * stride_w + kernel_w - width, 0) // 2
  else:
    out_h = (height - kernel_h) // stride_h + 1
    out_w = (width - kernel_w) // stride_w + 1
    top = left = 0
  rows = (np.arange(out_h) * stride_h - top)[:, None, None, None] + np.arange(kernel_h)[:, None]
  cols = (np.arange(out_w) * stride_w - left)[None, :, None, None] + np.arange(kernel_w)
  rows, cols = np.broadcast_arrays(rows, cols)  # [out_h, out_w, kh, kw]
  inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
  indices = np.where(inside, rows * width + cols, height * width)
  return indices.reshape(out_h * out_w, kernel_h * kernel_w).astype(np.int32), out_h, out_w


@keras.saving.register_keras_serializable(package='wgan_dist')
class PatchMatmulConv2D(layers.Conv2D):
  """Conv2D computed as one matmul of its k·k·C input patches by the kernel (im2col).

  The same variables (kernel [kh, kw, in, out], bias), config and, up to float rounding, the
  same outputs and gradients as `layers.Conv2D`, so checkpoints are interchangeable. Worth it
  where images are small and channels many, as in the seed critic: there the convolution
  kernels' gradients (which the gradient penalty's double backprop runs three times per critic
  input) were several times slower on a CPU than the same arithmetic as a matmul (BENCHMARKS.md
  has the per-layer figures). The patches are one gather of the flattened input with constant
  indices (cheaper than k·k strided slices, whose gradients each write a whole padded image);
  gather and its gradient have gradients of every order, so the penalty's second derivative
  works. Needs static height and width. It always computes the matmul, whatever the device:
  `model.conv_impl` decides where it is used (on GPUs, 'auto' builds `layers.Conv2D` instead:
  cuDNN's convolutions have no such weakness).
  """

  def build(self, input_shape):
    if self.groups != 1 or any(rate != 1 for rate in self.dilation_rate):
      raise ValueError(f'{self.name}: PatchMatmulConv2D supports groups=1 and no dilation')
    if self.data_format != 'channels_last' or None in tuple(input_shape[1:3]):
      raise ValueError(f'{self.name}: PatchMatmulConv2D needs channels_last inputs of static '
                       f'height and width, got {input_shape}')
    super().build(input_shape)
    self._height, self._width = int(input_shape[1]), int(input_shape[2])
    self._indices, self._out_h, self._out_w = patch_indices(
        self._height, self._width, self.kernel_size, self.strides, self.padding)

  def convolution_op(self, inputs, kernel):
    kernel_h, kernel_w, channels, filters = kernel.shape
    pixels = self._height * self._width
    flat = ops.reshape(inputs, [-1, pixels, channels])
    if (self._indices == pixels).any():  # Some windows reach into the padding.
      flat = ops.concatenate([flat, ops.zeros_like(flat[:, :1])], axis=1)
    patches = ops.take(flat, self._indices.reshape(-1), axis=1)
    rows = ops.reshape(patches, [-1, kernel_h * kernel_w * channels])
    outputs = ops.matmul(rows, ops.reshape(kernel, [kernel_h * kernel_w * channels, filters]))
    return ops.reshape(outputs, [-1, self._out_h, self._out_w, filters])


_PLAIN_CONVOLUTIONS = [False]


@contextlib.contextmanager
def plain_convolutions() -> Iterator[None]:
  """Models built inside use `layers.Conv2D` where they would use PatchMatmulConv2D.

  The reference formulation: the benchmark counts FLOPs on it (so a faster formulation of the
  same arithmetic cannot change the count) and tests compare against it.
  """
  _PLAIN_CONVOLUTIONS.append(True)
  try:
    yield
  finally:
    _PLAIN_CONVOLUTIONS.pop()


def patch_matmul_conv() -> type:
  """PatchMatmulConv2D, or layers.Conv2D inside `plain_convolutions()`."""
  return layers.Conv2D if _PLAIN_CONVOLUTIONS[-1] else PatchMatmulConv2D


def conv_formulation(conv_impl: str) -> contextlib.AbstractContextManager:
  """The context to build models in for a resolved `model.conv_impl` ('patch_matmul' | 'conv')."""
  return plain_convolutions() if conv_impl == 'conv' else contextlib.nullcontext()


def critic_norm_layer(kind: str, name: str) -> layers.Layer:
  """The critic normalisation a validated `model.critic_norm` names ('layer' or 'none').

  There is no batch norm here: it couples the examples of a batch, so the per-example gradient
  the penalty constrains would no longer be per example (config_validation refuses it).
  """
  if kind == 'layer':
    return PerExampleLayerNorm(name=name)
  return layers.Identity(name=name)


@keras.saving.register_keras_serializable(package='wgan_dist')
class ConditionalBatchNorm(layers.Layer):
  """Class-conditional batch norm (de Vries et al. 2017; the paper's tflib `cond_batchnorm`).

  Inputs [x, labels] (labels int32 [B]); output gamma[y]·x̂ + beta[y], where x̂ is x batch-
  normalised per channel (the last axis) without its own scale or offset, and gamma, beta are
  [num_classes, channels] tables initialised to 1 and 0 (so an untrained layer is plain batch
  norm, the same for every class). The statistics are synchronized: over the global batch in
  training, so results do not depend on the replica count; moving averages in inference, with
  Keras's BatchNormalization momentum and epsilon like the unconditional generators.
  The per-class affine is formed in float32 (the tables are read unconverted).
  """

  def __init__(self, num_classes: int, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes
    self.momentum = momentum
    self.epsilon = epsilon
    # center/scale off: the per-class tables below are the only affine.
    self.norm = layers.BatchNormalization(synchronized=True, center=False, scale=False,
                                          momentum=momentum, epsilon=epsilon, name='norm')

  def build(self, input_shape):
    x_shape, _ = input_shape
    channels = x_shape[-1]
    self.norm.build(x_shape)
    # autocast=False: the affine is formed in float32 under every policy.
    self.gamma = self.add_weight(shape=(self.num_classes, channels), initializer='ones',
                                 name='gamma', autocast=False)
    self.beta = self.add_weight(shape=(self.num_classes, channels), initializer='zeros',
                                name='beta', autocast=False)

  def call(self, inputs, training=None):
    x, labels = inputs
    x_hat = ops.cast(self.norm(x, training=training), 'float32')
    labels = ops.cast(labels, 'int32')
    # [B, C] rows of the tables, broadcast over the spatial axes of x.
    shape = [-1] + [1] * (len(x.shape) - 2) + [x.shape[-1]]
    gamma = ops.reshape(ops.take(ops.cast(self.gamma, 'float32'), labels, axis=0), shape)
    beta = ops.reshape(ops.take(ops.cast(self.beta, 'float32'), labels, axis=0), shape)
    return ops.cast(gamma * x_hat + beta, self.compute_dtype)

  def compute_output_shape(self, input_shape):
    return input_shape[0]

  def get_config(self):
    return {**super().get_config(), 'num_classes': self.num_classes, 'momentum': self.momentum,
            'epsilon': self.epsilon}


def generator_inputs(noise_dim: int, num_classes: int) -> tuple:
  """(model inputs, z, label): z itself and None when unconditional (the model keeps its single
  input), else [z, label] with label an int32 [B] input."""
  z = keras.Input((noise_dim,), name='z')
  if num_classes == 0:
    return z, z, None
  label = keras.Input((), dtype='int32', name='label')
  return [z, label], z, label


def generator_batch_norm(x: keras.KerasTensor, label: Optional[keras.KerasTensor],
                         num_classes: int, name: str) -> keras.KerasTensor:
  """Synchronized batch norm of x; class-conditional (`ConditionalBatchNorm`) given a label."""
  if label is None:
    # Synchronized: statistics over the global batch, so results do not depend on the
    # replica count (per-replica statistics would change with it).
    return layers.BatchNormalization(synchronized=True, name=name)(x)
  return ConditionalBatchNorm(num_classes, name=name)([x, label])


def critic_model(image: keras.KerasTensor, features: keras.KerasTensor, num_classes: int,
                 conditioning: conditioning_lib.Conditioning, name: str,
                 kernel_initializer='glorot_uniform') -> keras.Model:
  """The critic from its image input and trunk features phi (the vector its last Dense reads),
  ending in the head of `conditioning` (algorithm/conditioning.py): unconditional Dense(1)
  'score', image -> [B, 1]; 'acgan' Dense(1 + K) 'score_and_logits', image -> [B, 1 + K];
  'projection' [image, label] -> psi(phi) + <embed(y), phi>, [B, 1]. The output layers are
  float32 whatever the policy.
  """
  def dense(units, dense_name):
    return layers.Dense(units, dtype='float32', kernel_initializer=kernel_initializer,
                        name=dense_name)

  if conditioning.conditional != (num_classes > 0):
    raise ValueError(f'conditioning {conditioning.name!r} with num_classes={num_classes}: a '
                     'class-conditional critic needs num_classes > 0, an unconditional one 0')
  return conditioning.critic_head(image, features, num_classes, dense, name)
