"""A small MNIST CNN whose penultimate features and softmax score generated digits.

The network sees images as the generator makes them: float32 [N, 28, 28, 1] in [-1, 1]. Its
64-unit `features` layer plays the part of Inception's pool3 in FID (a Fréchet distance between
Gaussians fitted to features of real and generated images); its softmax gives the classifier
score and the class histogram. 64 features keep the 64x64 covariance well estimated from the
1,000 images an evaluation uses, and the weights small enough to commit (~0.5 MB).

The data split is fixed so that every machine computes the same reference statistics offline.
The embedded 5,000-image sample (shipped in the package) is sorted by class, 500 each; the first 400
of each class are the train split, the last 100 of each class the held-out split (1,000 images).
Both are returned in one fixed, seed-0 shuffled order, so a prefix of either is class-mixed.
"""

import dataclasses
import os
from typing import Optional

import keras
import numpy as np
from keras import layers

from wgan_dist.data import sources
from wgan_dist.eval import metrics

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
FEATURE_LAYER = 'features'
# Committed weights, written by `python -m wgan_dist.eval.train_classifier`.
WEIGHTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'mnist_classifier.weights.h5')
# Per class of the embedded sample: this many train images first, the rest held out.
TRAIN_PER_CLASS = 400
_SPLIT_SHUFFLE_SEED = 0
# Images per side of the real-vs-real Fréchet distance (the default num_eval_samples).
FLOOR_SAMPLES = 1000
# Images per class and side of the real-vs-real intra-FID: the embedded split's held-out images
# of a digit, which is all the conditional evaluation has per class.
FLOOR_PER_CLASS = 100


def build_classifier() -> keras.Model:
  """The CNN: images in [-1, 1] -> 10 logits; the `features` layer is the penultimate one."""
  image = keras.Input(IMAGE_SHAPE, name='image')
  x = layers.Conv2D(32, 3, activation='relu', name='conv0')(image)    # 26x26
  x = layers.MaxPooling2D(2)(x)                                        # 13x13
  x = layers.Conv2D(64, 3, activation='relu', name='conv1')(x)        # 11x11
  x = layers.MaxPooling2D(2)(x)                                        # 5x5
  x = layers.Flatten()(x)
  x = layers.Dense(64, activation='relu', name=FEATURE_LAYER)(x)
  x = layers.Dropout(0.3)(x)
  logits = layers.Dense(NUM_CLASSES, dtype='float32', name='logits')(x)
  return keras.Model(image, logits, name='mnist_classifier')


def load_classifier(path: str = WEIGHTS_PATH) -> keras.Model:
  """The classifier with the weights at `path` (default: the committed ones)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'MNIST classifier weights not found at {path}; train them with '
                            '`python -m wgan_dist.eval.train_classifier`')
  classifier = build_classifier()
  classifier.load_weights(path)
  return classifier


def feature_model(classifier: keras.Model) -> keras.Model:
  """images -> (penultimate features [N, 64], class probabilities [N, 10]), float32."""
  features = classifier.get_layer(FEATURE_LAYER).output
  probabilities = layers.Softmax(dtype='float32', name='probabilities')(classifier.output)
  return keras.Model(classifier.input, [features, probabilities],
                     name=f'{classifier.name}_features')


def to_model_range(images: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] images -> float32 in [-1, 1], the generator's range (as the input pipeline)."""
  return images.astype(np.float32) / 127.5 - 1.0


@dataclasses.dataclass(frozen=True)
class Split:
  """uint8 images [N, 28, 28, 1] with int labels [N], for training and for held-out use."""
  train_images: np.ndarray
  train_labels: np.ndarray
  held_out_images: np.ndarray
  held_out_labels: np.ndarray
  source: str


def embedded_split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(train, held-out) row indices into the embedded sample, given its labels in stored order:
  the first TRAIN_PER_CLASS rows of each class train, the rest are held out; each split in its
  fixed seed-0 shuffled order (module docstring). Indices, not images, so that the training
  stream can leave the held-out digits out of whatever array holds the sample."""
  labels = np.asarray(labels)
  rank_in_class = np.zeros(len(labels), np.int64)
  for label in range(NUM_CLASSES):
    members = np.flatnonzero(labels == label)
    rank_in_class[members] = np.arange(len(members))
  rng = np.random.default_rng(_SPLIT_SHUFFLE_SEED)
  train = rng.permutation(np.flatnonzero(rank_in_class < TRAIN_PER_CLASS))
  held_out = rng.permutation(np.flatnonzero(rank_in_class >= TRAIN_PER_CLASS))
  return train, held_out


def embedded_split() -> Split:
  """The embedded sample's fixed split: 400 train / 100 held out per class (module docstring)."""
  images, labels = sources.load_embedded_mnist()
  train, held_out = embedded_split_indices(labels)
  return Split(images[train], labels[train], images[held_out], labels[held_out],
               'embedded_mnist')


def full_mnist_path() -> str:
  """Where keras.datasets caches full MNIST (KERAS_HOME honoured, as wgan_dist.data.sources
  does)."""
  return os.path.join(os.environ.get('KERAS_HOME', os.path.expanduser('~/.keras')), 'datasets',
                      'mnist.npz')


def full_mnist_split() -> Optional[Split]:
  """Full MNIST (60k train, 10k test as held out) when already cached, else None. Never
  downloads."""
  path = full_mnist_path()
  if not os.path.exists(path):
    return None
  with np.load(path) as archive:
    return Split(archive['x_train'][..., None], archive['y_train'].astype(np.int64),
                 archive['x_test'][..., None], archive['y_test'].astype(np.int64), 'mnist')


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
  """Indices of the first `per_class` rows of each class 0..NUM_CLASSES-1, in order."""
  labels = np.asarray(labels)
  return np.sort(np.concatenate([np.flatnonzero(labels == k)[:per_class]
                                 for k in range(NUM_CLASSES)]))


def held_out_report(model: keras.Model, split: Split) -> dict:
  """Held-out accuracy, and the real-vs-real Fréchet distance (FLOOR_SAMPLES train-split vs
  FLOOR_SAMPLES held-out images), classifier score and smallest class share of real images;
  and the real-vs-real intra-FID (per digit, its first FLOOR_PER_CLASS train-split images vs
  its first FLOOR_PER_CLASS held-out ones; the mean over digits)."""
  features_of = feature_model(model)

  def outputs(images):
    return features_of.predict(to_model_range(images), batch_size=500, verbose=0)

  held_features, held_probabilities = outputs(split.held_out_images)
  accuracy = float(np.mean(np.argmax(held_probabilities, axis=1) == split.held_out_labels))
  # The splits are shuffled (class-mixed), so their first FLOOR_SAMPLES are fair samples.
  train_features, _ = outputs(split.train_images[:FLOOR_SAMPLES])
  train_rows = first_per_class(split.train_labels, FLOOR_PER_CLASS)
  held_rows = first_per_class(split.held_out_labels, FLOOR_PER_CLASS)
  intra_floor = metrics.intra_frechet_distance(
      outputs(split.train_images[train_rows])[0], split.train_labels[train_rows],
      held_features[held_rows], split.held_out_labels[held_rows], NUM_CLASSES)
  held_features = held_features[:FLOOR_SAMPLES]
  held_probabilities = held_probabilities[:FLOOR_SAMPLES]
  return {
      'source': split.source,
      'train_images': len(split.train_images),
      'held_out_images': len(split.held_out_images),
      'held_out_accuracy': accuracy,
      'real_fid_floor': metrics.frechet_distance_of_features(train_features, held_features),
      'real_classifier_score': metrics.classifier_score(held_probabilities),
      'real_min_class_share': metrics.min_class_share(
          metrics.class_histogram(held_probabilities)),
      'floor_samples': len(held_features),
      'real_intra_fid_floor': intra_floor,
      'floor_per_class': FLOOR_PER_CLASS,
  }
