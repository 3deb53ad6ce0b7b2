"""InceptionV3 pool features and ImageNet class probabilities, for FID and the Inception Score.

The network is `keras.applications.InceptionV3` (1000-class top), always built with
`weights=None` so Keras never tries to download, and then loaded from a weights file the user
has locally: Keras's `inception_v3_weights_tf_dim_ordering_tf_kernels.h5` (legacy HDF5 format,
md5 9a0d58056eeedaa3f26cb7ebd46da564), fetched once on a machine with internet from WEIGHTS_URL.
A Keras 3 `.weights.h5` of the same architecture loads too.

`feature_model` maps images as the generator makes them (float32 [N, H, W, C] in [-1, 1], the
range InceptionV3's own `preprocess_input` produces, so no rescaling) to
(pool features [N, 2048], softmax [N, 1000]): grayscale is replicated to three channels, and
the images are resized bilinearly to `image_size` (299, the network's native input, as TTUR's
and TF-GAN's FID code do). Weights do not depend on the input size (convolutions, then global
average pooling), so tests load the same file into a 75x75 network, the smallest InceptionV3
accepts, to stay fast on a CPU.

These are Keras's ImageNet weights, not the 2015 graph (1008 classes) that TTUR's FID and the
original Inception Score code use, so figures are close to, not identical with, published ones.
"""

import hashlib
import os
import warnings

import keras
from absl import logging
from keras import layers

from wgan_dist.config import validation as config_validation

IMAGE_SIZE = 299  # InceptionV3's native input side.
MIN_IMAGE_SIZE = 75  # The smallest side keras.applications.InceptionV3 builds for.
NUM_CLASSES = 1000
NUM_FEATURES = 2048
FEATURE_LAYER = 'avg_pool'  # Global average pool of the last block ("pool3" in FID papers).
WEIGHTS_FILE = 'inception_v3_weights_tf_dim_ordering_tf_kernels.h5'
WEIGHTS_URL = ('https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/'
               + WEIGHTS_FILE)
# The published file's md5 (keras.applications checks the same hash when it downloads).
WEIGHTS_MD5 = '9a0d58056eeedaa3f26cb7ebd46da564'
GET_WEIGHTS = (f'on a machine with internet: wget {WEIGHTS_URL} (or run python -c "import keras; '
               'keras.applications.InceptionV3()", which saves it as '
               f'~/.keras/models/{WEIGHTS_FILE}"), then copy the file here')


class InceptionWeightsError(config_validation.ConfigError):
  """eval_inception_weights names no file, or one that is not InceptionV3 weights."""


def build_inception(image_size: int = IMAGE_SIZE) -> keras.Model:
  """InceptionV3 with its 1000-class softmax top and untrained weights (never downloads)."""
  if image_size < MIN_IMAGE_SIZE:
    raise ValueError(f'image_size={image_size}: InceptionV3 needs at least {MIN_IMAGE_SIZE}')
  return keras.applications.InceptionV3(include_top=True, weights=None,
                                        input_shape=(image_size, image_size, 3),
                                        classes=NUM_CLASSES)


def file_md5(path: str) -> str:
  digest = hashlib.md5()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def load_inception(path: str, image_size: int = IMAGE_SIZE) -> keras.Model:
  """InceptionV3 with the weights at `path`; InceptionWeightsError naming the path otherwise."""
  if not path or not os.path.isfile(path):
    raise InceptionWeightsError(f'eval_inception_weights={path!r} is not an existing file; '
                                f'expected {WEIGHTS_FILE}: get it {GET_WEIGHTS}')
  model = build_inception(image_size)
  try:
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      model.load_weights(path)
    # Keras 3 loads a .weights.h5 of another structure partly, warning that the layers it
    # skipped "retain their freshly-initialized weights": random features are no evaluation.
    skipped = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if skipped:
      raise ValueError(f'{len(skipped)} parts did not load, e.g. {skipped[0]}')
  except Exception as error:  # pylint: disable=broad-except
    # Keras raises ValueError, OSError or KeyError by format; all mean "not this network's".
    reason = ' '.join(str(error).split())[:300]
    raise InceptionWeightsError(
        f'eval_inception_weights={path!r} does not load into InceptionV3 with its 1000-class '
        f'top ({type(error).__name__}: {reason}); expected {WEIGHTS_FILE} (the _notop file '
        f'lacks the classifier the Inception Score needs): get it {GET_WEIGHTS}') from error
  if file_md5(path) == WEIGHTS_MD5:
    logging.info('Inception evaluation: Keras ImageNet InceptionV3 weights from %s', path)
  else:
    logging.warning('Inception evaluation: %s loads into InceptionV3 but is not Keras\'s '
                    'published %s (md5 %s); FID / Inception Score are comparable only with '
                    'figures computed from the same file', path, WEIGHTS_FILE, WEIGHTS_MD5)
  return model


def feature_model(inception: keras.Model, image_shape: tuple[int, int, int]) -> keras.Model:
  """images [N, H, W, C] in [-1, 1] (C = 1 or 3) -> (pool features [N, 2048], softmax [N, 1000]).

  Images are resized to the network's input size. Build it under a float32 policy (the
  Evaluator does): the metrics need float32 features, not a mixed policy's float16.
  """
  channels = image_shape[-1]
  if channels not in (1, 3):
    raise ValueError(f'InceptionV3 scores RGB or grayscale images; got {channels} channels')
  size = inception.input.shape[1]
  # Frozen: Keras 3's batch normalisation then always uses its moving statistics. Trainable,
  # a call without training=False (measured: a plain eager call) normalised with the batch's
  # own statistics and overwrote the moving ones, so features depended on the batch and on
  # every earlier call (docs/evaluation.md, "Eager and tf.function features").
  inception.trainable = False
  image = keras.Input(image_shape, name='image')
  x = image
  if channels == 1:
    x = layers.Concatenate(name='gray_to_rgb')([x, x, x])
  # Bilinear interpolation is a convex combination of pixels, so [-1, 1] stays [-1, 1].
  x = layers.Resizing(size, size, interpolation='bilinear', name='resize')(x)
  outputs = keras.Model(inception.input,
                        [inception.get_layer(FEATURE_LAYER).output, inception.output],
                        name='inception_v3_features')(x)
  return keras.Model(image, outputs, name='inception_features')
