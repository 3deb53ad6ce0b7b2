"""Generator and critic architectures (Keras 3): ARCHITECTURES, the registry of
`model.architecture`, and `build_models(config)`, which builds the one the config names.

`seed`: the generator and critic of the original blog implementation, layer for layer (generator
2,278,401 parameters; critic 10,807,302 with its batch norm, which the critic here replaces with
`model.critic_norm`). `dcgan`: the paper's MNIST models
(gan_mnist.py of the paper's code, DIM = `model.base_filters`), with a tanh output.
`resnet` (models/resnet.py): the paper's CIFAR-10 ResNet, 32x32x3. `dcgan64`
(models/dcgan64.py): the DCGAN of the paper's gan_64x64.py, 64x64x3. The layers they share
are in wgan_dist/models/layers.py.

Both networks end in a float32 layer so that losses and the gradient penalty are formed in
float32 whatever the compute dtype of the layers in between.

Class-conditional models (`model.num_classes` = K > 0; labels int32 [B] in [0, K)): the
generator takes [z, label]. 'dcgan', 'resnet' and 'dcgan64' put class-conditional batch norm
(model_layers.ConditionalBatchNorm) where their unconditional generator has batch norm; the
unconditional 'dcgan' generator has none, so its conditional one adds it after the projection
and after each hidden transposed convolution, before the ReLU (as the paper's conditional
code normalises). 'seed' keeps its batch norm and joins a learned class embedding of
SEED_LABEL_EMBEDDING_DIM to z before its first Dense. The critic ends in the head of the
config's conditioning (`model_layers.critic_model`; algorithm/conditioning.py: 'acgan' image
-> [B, 1 + K], score then class logits; 'projection' [image, label] -> [B, 1]). Critics have no
batch norm, conditional or not.

A new architecture is a module with its two builders (like models/resnet.py) and one entry in
ARCHITECTURES (docs/extending.md).
"""

import dataclasses
from typing import Callable

import keras
import ml_collections
import tensorflow as tf
from keras import layers

from wgan_dist.algorithm import conditioning as conditioning_lib
from wgan_dist.config import registry
from wgan_dist.dist import devices
from wgan_dist.models import dcgan64
from wgan_dist.models import layers as model_layers
from wgan_dist.models import resnet
from wgan_dist.models.layers import LEAKY_SLOPE

# The conditional seed generator's class embedding, joined to z: 50, as in the widely copied
# Keras conditional-GAN examples of the blog lineage the seed models come from; any size >= K - 1
# lets every class get its own direction, and 50 covers the data sets here (K <= 10) with room.
SEED_LABEL_EMBEDDING_DIM = 50


def _seed_generator(noise_dim: int, b: int, num_classes: int = 0) -> keras.Model:
  # Dense(12544) -> BN -> Reshape(7,7,256) -> ConvT x4 with BN+ReLU -> tanh.
  # Synchronized batch norm: statistics over the global batch, so results do not depend on
  # the replica count.
  def bn(name):
    return layers.BatchNormalization(synchronized=True, name=name)

  inputs, z, label = model_layers.generator_inputs(noise_dim, num_classes)
  x = z
  if label is not None:
    embedding = layers.Embedding(num_classes, SEED_LABEL_EMBEDDING_DIM,
                                 name='label_embedding')(label)
    x = layers.Concatenate(name='z_and_label')([z, embedding])
  x = layers.Dense(7 * 7 * 4 * b, name='project')(x)
  x = bn('project_bn')(x)
  x = layers.Reshape((7, 7, 4 * b))(x)
  for i, (filters, stride) in enumerate([(4 * b, 2), (2 * b, 1), (b, 2)]):
    x = layers.Conv2DTranspose(filters, 3, strides=stride, padding='same', name=f'deconv{i}')(x)
    x = bn(f'deconv{i}_bn')(x)
    x = layers.ReLU()(x)
  x = layers.Conv2DTranspose(1, 3, strides=1, padding='same', name='to_image')(x)
  image = layers.Activation('tanh', dtype='float32', name='tanh')(x)
  return keras.Model(inputs, image, name='seed_generator')


def _seed_critic(image_shape: tuple, b: int, norm: str, num_classes: int = 0,
                 conditioning: conditioning_lib.Conditioning = conditioning_lib.NONE
                 ) -> keras.Model:
  # Shapes 28 -> 13 -> 6 -> 3 -> 2 -> 2x2x1 -> 4 -> 1.
  image = keras.Input(image_shape, name='image')
  x = layers.Conv2D(2 * b, 3, strides=2, padding='valid', name='conv0')(image)
  x = layers.LeakyReLU(LEAKY_SLOPE)(x)
  # conv1-conv3 (13x13 and smaller images, 128-1024 channels) as matmuls of patches unless
  # model.conv_impl says 'conv': their convolution gradient kernels were the slowest part of a
  # critic update on CPUs (model_layers.PatchMatmulConv2D, BENCHMARKS.md). conv0 (one input
  # channel) stays a convolution.
  for i, (filters, kernel, padding) in enumerate(
      [(4 * b, 3, 'valid'), (8 * b, 4, 'same'), (16 * b, 4, 'same')], start=1):
    x = model_layers.patch_matmul_conv()(filters, kernel, strides=2, padding=padding,
                                         name=f'conv{i}')(x)
    x = model_layers.critic_norm_layer(norm, f'conv{i}_norm')(x)
    x = layers.LeakyReLU(LEAKY_SLOPE)(x)
  x = layers.Conv2D(1, 4, strides=1, padding='same', name='conv_out')(x)
  x = layers.Flatten()(x)
  return model_layers.critic_model(image, x, num_classes, conditioning, name='seed_critic')


def _dcgan_generator(noise_dim: int, b: int, num_classes: int = 0) -> keras.Model:
  # The paper's MNIST generator; no batch norm in its WGAN-GP mode. Conditional: CBN before
  # each ReLU, the projection's over its 4·4·4b features (the paper's Batchnorm over axis [0]
  # of the Linear output), the deconvolutions' per channel, before the 8x8 -> 7x7 crop as in
  # the paper's order (normalise, ReLU, then crop).
  inputs, z, label = model_layers.generator_inputs(noise_dim, num_classes)

  def relu(x, name):
    if label is not None:
      x = model_layers.generator_batch_norm(x, label, num_classes, f'{name}_bn')
    return layers.ReLU(name=f'{name}_relu')(x)

  activation = None if label is not None else 'relu'  # Unconditional: as it always was.
  x = layers.Dense(4 * 4 * 4 * b, activation=activation, name='project')(z)
  if label is not None:
    x = relu(x, 'project')
  x = layers.Reshape((4, 4, 4 * b))(x)
  x = layers.Conv2DTranspose(2 * b, 5, strides=2, padding='same', activation=activation,
                             name='deconv0')(x)
  if label is not None:
    x = relu(x, 'deconv0')
  x = layers.Cropping2D(((0, 1), (0, 1)))(x)  # 8x8 -> 7x7, as the paper's [:7, :7].
  x = layers.Conv2DTranspose(b, 5, strides=2, padding='same', activation=activation,
                             name='deconv1')(x)
  if label is not None:
    x = relu(x, 'deconv1')
  x = layers.Conv2DTranspose(1, 5, strides=2, padding='same', name='to_image')(x)
  image = layers.Activation('tanh', dtype='float32', name='tanh')(x)
  return keras.Model(inputs, image, name='dcgan_generator')


def _dcgan_critic(image_shape: tuple, b: int, norm: str, num_classes: int = 0,
                  conditioning: conditioning_lib.Conditioning = conditioning_lib.NONE
                  ) -> keras.Model:
  image = keras.Input(image_shape, name='image')
  x = layers.Conv2D(b, 5, strides=2, padding='same', name='conv0')(image)
  x = layers.LeakyReLU(LEAKY_SLOPE)(x)
  for i, filters in enumerate([2 * b, 4 * b], start=1):
    x = layers.Conv2D(filters, 5, strides=2, padding='same', name=f'conv{i}')(x)
    x = model_layers.critic_norm_layer(norm, f'conv{i}_norm')(x)
    x = layers.LeakyReLU(LEAKY_SLOPE)(x)
  x = layers.Flatten()(x)
  return model_layers.critic_model(image, x, num_classes, conditioning, name='dcgan_critic')


@dataclasses.dataclass(frozen=True)
class Architecture:
  """What `model.architecture` names: the two builders and the images they fit.

  make_generator(noise_dim, b, num_classes) -> generator;
  make_critic(image_shape, b, norm, num_classes, conditioning) -> critic, ending in
  `model_layers.critic_model` (the conditioning's head);
  image_shapes: the (data.image_size, data.channels) pairs their strides produce, which config
  validation requires.
  """
  make_generator: Callable[..., keras.Model]
  make_critic: Callable[..., keras.Model]
  image_shapes: tuple[tuple[int, int], ...]


# model.architecture: the registry (config/registry.py) is the only list of allowed names.
ARCHITECTURES: registry.Registry[Architecture] = registry.Registry('model.architecture', {
    'seed': Architecture(_seed_generator, _seed_critic, ((28, 1),)),
    'dcgan': Architecture(_dcgan_generator, _dcgan_critic, ((28, 1),)),
    'resnet': Architecture(resnet.make_generator, resnet.make_critic,
                          ((resnet.IMAGE_SIZE, resnet.CHANNELS),)),
    'dcgan64': Architecture(dcgan64.make_generator, dcgan64.make_critic,
                            ((dcgan64.IMAGE_SIZE, dcgan64.CHANNELS),)),
})


def build_models(config: ml_collections.ConfigDict) -> tuple[keras.Model, keras.Model]:
  """(generator, critic) for a validated `config.model` and `config.data`; call under a
  strategy scope. Class-conditional when `model.num_classes` > 0 (module docstring)."""
  model = config.model
  architecture = ARCHITECTURES.get(model.architecture)
  image_shape = (config.data.image_size, config.data.image_size, config.data.channels)
  generator = architecture.make_generator(model.noise_dim, model.base_filters, model.num_classes)
  # model.conv_impl: training resolves 'auto' once for the job (devices.py); elsewhere (tools,
  # tests) by the devices this process sees.
  conv_impl = devices.resolve_conv_impl(model.conv_impl,
                                        len(tf.config.get_visible_devices('GPU')))
  with model_layers.conv_formulation(conv_impl):
    critic = architecture.make_critic(image_shape, model.base_filters, model.critic_norm,
                                      model.num_classes, conditioning_lib.from_config(config))
  return generator, critic
