"""Why the seed generator's samples have dots along their bottom and right borders
(docs/seed_borders.md): the tap counts of its stride-2 transposed convolutions, and the pixels
the seed critic reads."""

import keras
import numpy as np
import tensorflow as tf

from wgan_dist.models import architectures


def _tap_counts(size: int, kernel: int, stride: int) -> np.ndarray:
  """[out, out]: how many (input pixel, kernel tap) pairs reach each output pixel of a
  Conv2DTranspose(kernel, stride, 'same') on a size x size input: the layer with a kernel of
  ones, no bias, applied in float64 to an input of ones."""
  layer = keras.layers.Conv2DTranspose(1, kernel, strides=stride, padding='same', use_bias=False,
                                       kernel_initializer='ones', dtype='float64')
  return np.asarray(layer(np.ones((1, size, size, 1)))[0, :, :, 0])


def test_kernel_3_stride_2_overlaps_unevenly_everywhere_but_not_more_at_the_bottom_right():
  # The seed generator's deconv0 (7 -> 14) and deconv2 (14 -> 28) are of this kind.
  for size in (7, 14):
    taps = _tap_counts(size, 3, 2)
    # Per axis: odd outputs get one tap, even ones two, except output 0 (its second tap would
    # read input -1): a checkerboard of 1, 2 and 4 taps over the whole image.
    per_axis = np.where(np.arange(2 * size) % 2 == 0, 2, 1)
    per_axis[0] = 1
    np.testing.assert_array_equal(taps, np.outer(per_axis, per_axis))
    # The last row and column (odd) get what every odd row and column gets: the only edge that
    # differs from the interior is the top-left one.
    np.testing.assert_array_equal(taps[-1], taps[-3])
    np.testing.assert_array_equal(taps[:, -1], taps[:, -3])
    assert not np.array_equal(taps[0], taps[2])


def test_kernel_4_stride_2_overlaps_evenly_inside():
  taps = _tap_counts(7, 4, 2)
  per_axis = np.full(14, 2)
  per_axis[[0, -1]] = 1  # Both edges alike.
  np.testing.assert_array_equal(taps, np.outer(per_axis, per_axis))


def _input_gradient(critic: keras.Model, images: np.ndarray) -> np.ndarray:
  images = tf.constant(images)
  with tf.GradientTape() as tape:
    tape.watch(images)
    total = tf.reduce_sum(critic(images, training=False))  # Inside the tape, to be recorded.
  return tape.gradient(total, images).numpy()[..., 0]


def test_seed_critic_never_reads_the_last_row_and_column():
  # conv0 is Conv2D(3, stride 2, 'valid') on 28x28: its 13 windows per axis start at 0, 2,
  # ..., 24 and end at pixel 26, so pixel 27 reaches no output. Whatever the generator draws in
  # the last row and column gets no gradient from the critic (nor from the penalty).
  keras.utils.set_random_seed(0)
  critic = architectures.ARCHITECTURES['seed'].make_critic((28, 28, 1), 4, 'layer')
  images = np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)
  gradient = _input_gradient(critic, images)
  assert np.all(gradient[:, 27, :] == 0) and np.all(gradient[:, :, 27] == 0)
  assert np.all(np.abs(gradient[:, 26, :27]).max(axis=0) > 0)  # Row 26 is read, all of it.
  assert np.all(np.abs(gradient[:, :27, 26]).max(axis=0) > 0)
  # The paper's MNIST critic (the quick recipe's) reads every pixel: its 'same' convolutions
  # have windows over the last row and column.
  dcgan_critic = architectures.ARCHITECTURES['dcgan'].make_critic((28, 28, 1), 4, 'none')
  gradient = _input_gradient(dcgan_critic, images)
  assert np.all(np.abs(gradient).max(axis=0) > 0)
