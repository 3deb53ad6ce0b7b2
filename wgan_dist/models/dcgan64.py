"""A DCGAN for 64×64 RGB images: DCGANGenerator / DCGANDiscriminator of the paper's
gan_64x64.py in its WGAN-GP mode, where the critic's normalisation is a per-example layer norm.

Generator, DIM = b (64 in the paper): Dense(4·4·8b) → 4×4×8b → BN → ReLU → three
ConvT(5×5, stride 2) with BN → ReLU (8b → 4b → 2b → b; 4 → 32) → ConvT(3, 5×5, stride 2) → tanh.
Critic: Conv(b, 5×5, stride 2) → LeakyReLU(0.2) → three Conv(5×5, stride 2) (2b, 4b, 8b), each
→ norm (`model.critic_norm`, 'layer' as in the paper) → LeakyReLU → Flatten → Dense(1).
Shapes 64 → 32 → 16 → 8 → 4.

As in the paper's code every weight starts uniform with standard deviation 0.02 (tflib
`set_weights_stdev(0.02)`), biases at zero.

Class-conditional (num_classes = K > 0): the generator takes [z, label] and its 4 batch norms
are class-conditional (model_layers.ConditionalBatchNorm); the critic ends in
the conditioning's head (model_layers.critic_model) on the flattened 4×4×8b features.
"""

import math

import keras
from keras import layers

from wgan_dist.algorithm import conditioning as conditioning_lib
from wgan_dist.models import layers as model_layers

IMAGE_SIZE = 64
CHANNELS = 3
_WEIGHT_STDEV = 0.02


def _init() -> keras.initializers.Initializer:
  # tflib's uniform(stdev): U[-stdev·√3, stdev·√3], whose standard deviation is stdev.
  limit = _WEIGHT_STDEV * math.sqrt(3.0)
  return keras.initializers.RandomUniform(-limit, limit)


def make_generator(noise_dim: int, b: int, num_classes: int = 0) -> keras.Model:
  """The 64×64 DCGAN generator at width b; output 64×64×3 in [-1, 1].

  num_classes > 0: inputs [z, label] and class-conditional batch norm."""
  def bn(name):
    # Synchronized: statistics over the global batch, independent of the replica count;
    # class-conditional when there is a label.
    return lambda x: model_layers.generator_batch_norm(x, label, num_classes, name)

  inputs, z, label = model_layers.generator_inputs(noise_dim, num_classes)
  x = layers.Dense(4 * 4 * 8 * b, kernel_initializer=_init(), name='project')(z)
  x = layers.Reshape((4, 4, 8 * b))(x)
  x = bn('project_bn')(x)
  x = layers.ReLU()(x)
  for i, filters in enumerate([4 * b, 2 * b, b]):
    x = layers.Conv2DTranspose(filters, 5, strides=2, padding='same',
                               kernel_initializer=_init(), name=f'deconv{i}')(x)
    x = bn(f'deconv{i}_bn')(x)
    x = layers.ReLU()(x)
  x = layers.Conv2DTranspose(CHANNELS, 5, strides=2, padding='same', kernel_initializer=_init(),
                             name='to_image')(x)
  image = layers.Activation('tanh', dtype='float32', name='tanh')(x)
  return keras.Model(inputs, image, name='dcgan64_generator')


def make_critic(image_shape: tuple, b: int, norm: str, num_classes: int = 0,
                conditioning: conditioning_lib.Conditioning = conditioning_lib.NONE
                ) -> keras.Model:
  """The 64×64 DCGAN critic at width b; one float32 score per image (with num_classes > 0 the
  head of `conditioning`, model_layers.critic_model)."""
  image = keras.Input(image_shape, name='image')
  x = layers.Conv2D(b, 5, strides=2, padding='same', kernel_initializer=_init(),
                    name='conv0')(image)
  x = layers.LeakyReLU(model_layers.LEAKY_SLOPE)(x)
  for i, filters in enumerate([2 * b, 4 * b, 8 * b], start=1):
    x = layers.Conv2D(filters, 5, strides=2, padding='same', kernel_initializer=_init(),
                      name=f'conv{i}')(x)
    x = model_layers.critic_norm_layer(norm, f'conv{i}_norm')(x)
    x = layers.LeakyReLU(model_layers.LEAKY_SLOPE)(x)
  x = layers.Flatten()(x)
  return model_layers.critic_model(image, x, num_classes, conditioning, name='dcgan64_critic',
                                   kernel_initializer=_init())
