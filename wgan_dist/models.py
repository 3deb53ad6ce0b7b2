"""Generator and critic architectures (Keras 3).

`seed`: the generator and critic of the blog implementation SPEC.md describes, layer for layer,
except the critic's normalisation (`model.critic_norm`). `dcgan`: the paper's MNIST models
(gan_mnist.py of the paper's code, DIM = `model.base_filters`), with a tanh output.
`resnet` (wgan_dist/resnet.py): the paper's CIFAR-10 ResNet, 32x32x3. `dcgan64`
(wgan_dist/dcgan64.py): the DCGAN of the paper's gan_64x64.py, 64x64x3.

Both networks end in a float32 layer so that losses and the gradient penalty are formed in
float32 whatever the compute dtype of the layers in between.
"""

import contextlib
import importlib
from typing import Callable, Iterator

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from keras import layers
from keras import ops

CRITIC_NORMS = ('layer', 'none')
ARCHITECTURES = ('seed', 'dcgan', 'resnet', 'dcgan64')
# The (image size, channels) each architecture's strides produce.
SUPPORTED_IMAGE_SHAPES = {'seed': ((28, 1),), 'dcgan': ((28, 1),), 'resnet': ((32, 3),),
                          'dcgan64': ((64, 3),)}
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
  works. Needs static height and width. With a GPU visible it runs the ordinary convolution.
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
    if tf.config.list_logical_devices('GPU'):
      # cuDNN's convolutions have no such weakness; measured slow only on CPUs.
      return super().convolution_op(inputs, kernel)
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


def _patch_matmul_conv() -> type:
  return layers.Conv2D if _PLAIN_CONVOLUTIONS[-1] else PatchMatmulConv2D


def critic_norm_layer(kind: str, name: str) -> layers.Layer:
  """The critic normalisation `model.critic_norm` names; refuses batch norm with the reason."""
  if kind == 'layer':
    return PerExampleLayerNorm(name=name)
  if kind == 'none':
    return layers.Identity(name=name)
  raise ValueError(
      f"model.critic_norm={kind!r} is not allowed; allowed: {CRITIC_NORMS}. 'batch' is refused "
      'because batch norm couples the examples of a batch, so the per-example gradient the '
      'penalty constrains is no longer per example (the paper drops it from the critic).')


def _seed_generator(noise_dim: int, b: int) -> keras.Model:
  # SPEC.md: Dense(12544) -> BN -> Reshape(7,7,256) -> ConvT x4 with BN+ReLU -> tanh.
  # Synchronized batch norm: statistics over the global batch, so results do not depend on
  # the replica count.
  def bn(name):
    return layers.BatchNormalization(synchronized=True, name=name)

  z = keras.Input((noise_dim,), name='z')
  x = layers.Dense(7 * 7 * 4 * b, name='project')(z)
  x = bn('project_bn')(x)
  x = layers.Reshape((7, 7, 4 * b))(x)
  for i, (filters, stride) in enumerate([(4 * b, 2), (2 * b, 1), (b, 2)]):
    x = layers.Conv2DTranspose(filters, 3, strides=stride, padding='same', name=f'deconv{i}')(x)
    x = bn(f'deconv{i}_bn')(x)
    x = layers.ReLU()(x)
  x = layers.Conv2DTranspose(1, 3, strides=1, padding='same', name='to_image')(x)
  image = layers.Activation('tanh', dtype='float32', name='tanh')(x)
  return keras.Model(z, image, name='seed_generator')


def _seed_critic(image_shape: tuple, b: int, norm: str) -> keras.Model:
  # SPEC.md: shapes 28 -> 13 -> 6 -> 3 -> 2 -> 2x2x1 -> 4 -> 1.
  image = keras.Input(image_shape, name='image')
  x = layers.Conv2D(2 * b, 3, strides=2, padding='valid', name='conv0')(image)
  x = layers.LeakyReLU(LEAKY_SLOPE)(x)
  # conv1-conv3 (13x13 and smaller images, 128-1024 channels) as matmuls of patches: their
  # convolution gradient kernels were the slowest part of a critic update on CPUs
  # (PatchMatmulConv2D, BENCHMARKS.md). conv0 (one input channel) stays a convolution.
  for i, (filters, kernel, padding) in enumerate(
      [(4 * b, 3, 'valid'), (8 * b, 4, 'same'), (16 * b, 4, 'same')], start=1):
    x = _patch_matmul_conv()(filters, kernel, strides=2, padding=padding, name=f'conv{i}')(x)
    x = critic_norm_layer(norm, f'conv{i}_norm')(x)
    x = layers.LeakyReLU(LEAKY_SLOPE)(x)
  x = layers.Conv2D(1, 4, strides=1, padding='same', name='conv_out')(x)
  x = layers.Flatten()(x)
  score = layers.Dense(1, dtype='float32', name='score')(x)
  return keras.Model(image, score, name='seed_critic')


def _dcgan_generator(noise_dim: int, b: int) -> keras.Model:
  # The paper's MNIST generator; no batch norm in its WGAN-GP mode.
  z = keras.Input((noise_dim,), name='z')
  x = layers.Dense(4 * 4 * 4 * b, activation='relu', name='project')(z)
  x = layers.Reshape((4, 4, 4 * b))(x)
  x = layers.Conv2DTranspose(2 * b, 5, strides=2, padding='same', activation='relu',
                             name='deconv0')(x)
  x = layers.Cropping2D(((0, 1), (0, 1)))(x)  # 8x8 -> 7x7, as the paper's [:7, :7].
  x = layers.Conv2DTranspose(b, 5, strides=2, padding='same', activation='relu',
                             name='deconv1')(x)
  x = layers.Conv2DTranspose(1, 5, strides=2, padding='same', name='to_image')(x)
  image = layers.Activation('tanh', dtype='float32', name='tanh')(x)
  return keras.Model(z, image, name='dcgan_generator')


def _dcgan_critic(image_shape: tuple, b: int, norm: str) -> keras.Model:
  image = keras.Input(image_shape, name='image')
  x = layers.Conv2D(b, 5, strides=2, padding='same', name='conv0')(image)
  x = layers.LeakyReLU(LEAKY_SLOPE)(x)
  for i, filters in enumerate([2 * b, 4 * b], start=1):
    x = layers.Conv2D(filters, 5, strides=2, padding='same', name=f'conv{i}')(x)
    x = critic_norm_layer(norm, f'conv{i}_norm')(x)
    x = layers.LeakyReLU(LEAKY_SLOPE)(x)
  x = layers.Flatten()(x)
  score = layers.Dense(1, dtype='float32', name='score')(x)
  return keras.Model(image, score, name='dcgan_critic')


_BUILDERS: dict[str, tuple[Callable, Callable]] = {
    'seed': (_seed_generator, _seed_critic),
    'dcgan': (_dcgan_generator, _dcgan_critic),
}
# Architectures in modules of their own. Those modules import this one (critic norms), so they
# are imported when first built rather than at load time, which keeps the import graph acyclic.
_MODULE_BUILDERS = {'resnet': 'wgan_dist.resnet', 'dcgan64': 'wgan_dist.dcgan64'}


def _builders(architecture: str) -> tuple[Callable, Callable]:
  if architecture in _MODULE_BUILDERS:
    module = importlib.import_module(_MODULE_BUILDERS[architecture])
    return module.make_generator, module.make_critic
  return _BUILDERS[architecture]


def build_models(config: ml_collections.ConfigDict) -> tuple[keras.Model, keras.Model]:
  """Builds (generator, critic) for `config.model` and `config.data`; call under a strategy scope."""
  model = config.model
  if model.architecture not in ARCHITECTURES:
    raise ValueError(f'model.architecture={model.architecture!r} is not allowed; '
                     f'allowed: {ARCHITECTURES}')
  make_generator, make_critic = _builders(model.architecture)
  image_shape = (config.data.image_size, config.data.image_size, config.data.channels)
  generator = make_generator(model.noise_dim, model.base_filters)
  critic = make_critic(image_shape, model.base_filters, model.critic_norm)
  return generator, critic
