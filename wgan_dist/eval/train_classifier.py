"""Trains the evaluation classifier and reports its held-out figures.

  python -m wgan_dist.eval.train_classifier                  # writes the committed weights
  python -m wgan_dist.eval.train_classifier --out=/tmp/c.weights.h5
  python -m wgan_dist.eval.train_classifier --eval_only      # figures of the committed weights

Data: full MNIST (60k train / 10k test held out) when keras.datasets already cached it at
~/.keras/datasets/mnist.npz, else the embedded 5,000-image sample split 400 / 100 per class
(wgan_dist/eval/classifier.py). It never downloads. `--source=embedded_mnist` forces the sample
(the committed weights were trained that way). Deterministic: seeded initialisation, data order
and dropout, with TensorFlow's op determinism on.

Reports the held-out accuracy and the Fréchet-distance floor: the distance between the features
of 1,000 train-split images and 1,000 held-out images, i.e. what two real samples of an
evaluation's size score; and the intra-FID floor: per digit, 100 train-split vs 100 held-out
images (what a class-conditional evaluation compares per class), averaged. The last line is JSON.
"""

import json
import os

from wgan_dist.config import tf_log_level  # pylint: disable=wrong-import-position

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

import keras  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position
from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from wgan_dist.eval import classifier as classifier_lib  # pylint: disable=wrong-import-position

_OUT = flags.DEFINE_string('out', classifier_lib.WEIGHTS_PATH,
                           'Where to write the weights (.weights.h5).')
_SOURCE = flags.DEFINE_enum('source', 'auto', ['auto', 'embedded_mnist', 'mnist'],
                            'auto: full MNIST if cached, else the embedded sample.')
_EPOCHS = flags.DEFINE_integer('epochs', 15, 'Passes over the train split.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of initialisation, data order and dropout.')
_EVAL_ONLY = flags.DEFINE_bool('eval_only', False,
                               'Do not train: report the figures of the weights at --out.')

BATCH_SIZE = 64
LEARNING_RATE = 1e-3


def load_split(source: str) -> classifier_lib.Split:
  """The split `source` names ('auto': full MNIST when cached, else the embedded sample)."""
  if source in ('auto', 'mnist'):
    split = classifier_lib.full_mnist_split()
    if split is not None:
      return split
    if source == 'mnist':
      raise app.UsageError(f'--source=mnist: full MNIST is not cached at '
                           f'{classifier_lib.full_mnist_path()} (this tool never downloads)')
  return classifier_lib.embedded_split()


def train(split: classifier_lib.Split, epochs: int, seed: int) -> keras.Model:
  """A freshly initialised classifier trained on the split's train part."""
  keras.utils.set_random_seed(seed)
  model = classifier_lib.build_classifier()
  model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=['accuracy'])
  model.fit(classifier_lib.to_model_range(split.train_images), split.train_labels,
            batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=2)
  return model


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tf.config.experimental.enable_op_determinism()
  split = load_split(_SOURCE.value)
  print(f'Data: {split.source}, {len(split.train_images)} train / '
        f'{len(split.held_out_images)} held-out images')
  if _EVAL_ONLY.value:
    model = classifier_lib.load_classifier(_OUT.value)
  else:
    model = train(split, _EPOCHS.value, _SEED.value)
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    # A fresh, uncompiled copy: the compiled model's file would also carry the Adam moments
    # and metric state (3x the size), which evaluation never needs.
    weights_only = classifier_lib.build_classifier()
    weights_only.set_weights(model.get_weights())
    weights_only.save_weights(_OUT.value)
    print(f'Wrote {_OUT.value} ({os.path.getsize(_OUT.value)} bytes)')
  figures = classifier_lib.held_out_report(model, split)
  print(f'Held-out accuracy: {figures["held_out_accuracy"]:.4f}')
  print(f'Real-vs-real Frechet distance ({figures["floor_samples"]} vs '
        f'{figures["floor_samples"]}): {figures["real_fid_floor"]:.4f}')
  print(f'Real-vs-real intra-FID ({figures["floor_per_class"]} vs {figures["floor_per_class"]} '
        f'per digit): {figures["real_intra_fid_floor"]:.4f}')
  print(json.dumps(figures, sort_keys=True))


if __name__ == '__main__':
  app.run(main)
