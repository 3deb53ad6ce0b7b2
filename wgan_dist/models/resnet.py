"""The paper's CIFAR-10 ResNet (gan_cifar_resnet.py of the paper's code, unconditional).

Generator, DIM = b (128 in the paper): Dense(4·4·b) → 4×4×b → three up-sampling residual
blocks (4 → 8 → 16 → 32) → BN → ReLU → Conv(3, 3×3) → tanh. Each block is
BN → ReLU → Upsample → Conv 3×3 → BN → ReLU → Conv 3×3, plus a shortcut Upsample → Conv 1×1.

Critic: the paper's "optimised" first block (Conv 3×3 → ReLU → Conv 3×3 → mean-pool, shortcut
mean-pool → Conv 1×1; 32 → 16), then three residual blocks: one down-sampling (16 → 8, shortcut
Conv 1×1 → mean-pool) and two at 8×8 with identity shortcuts; then ReLU → global mean →
Dense(1). The paper runs the critic without normalisation (NORMALIZATION_D = False, i.e.
`model.critic_norm='none'`); 'layer' puts a per-example layer norm where the paper's code would
(before each ReLU inside the three residual blocks).

The paper's 2× nearest-neighbour upsample (4 tiled copies + depth_to_space) is UpSampling2D;
its mean-pool (average of the 4 strided slices) is AveragePooling2D(2). Initialisation follows
tflib: convolutions inside the blocks use its `he_init` (uniform, variance 4 / (fan_in +
fan_out)), shortcuts, the output convolution and the dense layers Glorot uniform.
Differences from the paper's code that do not change the architecture: Keras's batch-norm
momentum and epsilon; synchronized batch norm (statistics over the global batch).

Class-conditional (num_classes = K > 0, as the paper's CONDITIONAL runs): the generator takes
[z, label] and each of its 7 batch norms is class-conditional (model_layers.ConditionalBatchNorm,
the paper's cond_batchnorm); the critic ends in the conditioning's head
(model_layers.critic_model) on the pooled features.
"""

import keras
from keras import layers

from wgan_dist.algorithm import conditioning as conditioning_lib
from wgan_dist.models import layers as model_layers

IMAGE_SIZE = 32
CHANNELS = 3
_START_SIZE = 4  # Three 2x up-samplings: 4 -> 32.


def _he_init() -> keras.initializers.Initializer:
  # tflib Conv2D with he_init=True: uniform with stdev sqrt(4 / (fan_in + fan_out)).
  return keras.initializers.VarianceScaling(2.0, mode='fan_avg', distribution='uniform')


def _conv(filters: int, kernel: int, name: str, he: bool = True) -> layers.Conv2D:
  return layers.Conv2D(filters, kernel, padding='same', name=name,
                       kernel_initializer=_he_init() if he else 'glorot_uniform')


def _up_block(x, filters: int, name: str, label, num_classes: int):
  # model_layers.generator_batch_norm: synchronized (statistics over the global batch), and
  # class-conditional when there is a label.
  shortcut = layers.UpSampling2D(2, name=f'{name}_shortcut_up')(x)
  shortcut = _conv(filters, 1, f'{name}_shortcut', he=False)(shortcut)
  y = model_layers.generator_batch_norm(x, label, num_classes, f'{name}_bn1')
  y = layers.ReLU()(y)
  y = layers.UpSampling2D(2, name=f'{name}_up')(y)
  y = _conv(filters, 3, f'{name}_conv1')(y)
  y = model_layers.generator_batch_norm(y, label, num_classes, f'{name}_bn2')
  y = layers.ReLU()(y)
  y = _conv(filters, 3, f'{name}_conv2')(y)
  return layers.Add(name=f'{name}_add')([shortcut, y])


def make_generator(noise_dim: int, b: int, num_classes: int = 0) -> keras.Model:
  """The paper's CIFAR-10 ResNet generator at width b; output 32×32×3 in [-1, 1].

  num_classes > 0: inputs [z, label] and class-conditional batch norm."""
  inputs, z, label = model_layers.generator_inputs(noise_dim, num_classes)
  x = layers.Dense(_START_SIZE * _START_SIZE * b, name='project')(z)
  x = layers.Reshape((_START_SIZE, _START_SIZE, b))(x)
  for i in range(3):
    x = _up_block(x, b, f'block{i + 1}', label, num_classes)
  x = model_layers.generator_batch_norm(x, label, num_classes, 'out_bn')
  x = layers.ReLU()(x)
  x = _conv(CHANNELS, 3, 'to_image', he=False)(x)
  image = layers.Activation('tanh', dtype='float32', name='tanh')(x)
  return keras.Model(inputs, image, name='resnet_generator')


def _critic_block(x, filters: int, name: str, norm: str, down: bool):
  if down:
    shortcut = _conv(filters, 1, f'{name}_shortcut', he=False)(x)
    shortcut = layers.AveragePooling2D(2, name=f'{name}_shortcut_pool')(shortcut)
  else:
    shortcut = x  # Same width and size: the paper's identity skip connection.
  y = model_layers.critic_norm_layer(norm, f'{name}_norm1')(x)
  y = layers.ReLU()(y)
  y = _conv(filters, 3, f'{name}_conv1')(y)
  y = model_layers.critic_norm_layer(norm, f'{name}_norm2')(y)
  y = layers.ReLU()(y)
  y = _conv(filters, 3, f'{name}_conv2')(y)
  if down:
    y = layers.AveragePooling2D(2, name=f'{name}_pool')(y)
  return layers.Add(name=f'{name}_add')([shortcut, y])


def make_critic(image_shape: tuple, b: int, norm: str, num_classes: int = 0,
                conditioning: conditioning_lib.Conditioning = conditioning_lib.NONE
                ) -> keras.Model:
  """The paper's CIFAR-10 ResNet critic at width b; one float32 score per image (with
  num_classes > 0 the head of `conditioning`, model_layers.critic_model)."""
  image = keras.Input(image_shape, name='image')
  # The optimised first block: no pre-activation on the image itself.
  shortcut = layers.AveragePooling2D(2, name='block1_shortcut_pool')(image)
  shortcut = _conv(b, 1, 'block1_shortcut', he=False)(shortcut)
  y = _conv(b, 3, 'block1_conv1')(image)
  y = layers.ReLU()(y)
  y = _conv(b, 3, 'block1_conv2')(y)
  y = layers.AveragePooling2D(2, name='block1_pool')(y)
  x = layers.Add(name='block1_add')([shortcut, y])
  x = _critic_block(x, b, 'block2', norm, down=True)
  x = _critic_block(x, b, 'block3', norm, down=False)
  x = _critic_block(x, b, 'block4', norm, down=False)
  x = layers.ReLU()(x)
  x = layers.GlobalAveragePooling2D(name='mean')(x)
  return model_layers.critic_model(image, x, num_classes, conditioning, name='resnet_critic')
