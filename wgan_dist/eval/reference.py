"""Which real MNIST images an evaluation compares with, and which the generator trains on.

`config.eval_reference` decides both, so that the reference is data the generator never saw:
- 'heldout' (the default):
  - the embedded 5,000-digit sample: its 1,000 held-out digits (eval/classifier.py's fixed
    split, 100 per class) are the reference and are left out of the training stream
    (`training_source`), so the generator trains on the other 4,000;
  - full MNIST (data.source='mnist', cached or downloaded): the official 10,000-image test
    split is the reference; the generator trains on the 60,000 training images, as always.
- 'train_full': the generator trains on all the data (all 5,000 embedded digits; full MNIST's
  60,000), and the reference is taken from that training data: for the embedded sample the same
  1,000 held-out digits, now trained on (the protocol before 'heldout' existed; a generator
  that copied its training data scores below the real-vs-real floor there, see
  docs/evaluation.md); for full MNIST the first 10,000 training images.

Which data a run trained on is decided once, by the source name: the embedded sample, or full
MNIST (read from the Keras cache, never downloaded here). A 'mnist' run that fell back to the
embedded sample (MNIST not downloadable) is evaluated against the embedded reference.
"""

import dataclasses
from typing import Optional

import ml_collections
import numpy as np
from absl import logging

from wgan_dist.data import limit
from wgan_dist.data import sources
from wgan_dist.eval import classifier

HELDOUT = 'heldout'
TRAIN_FULL = 'train_full'
# Images of full MNIST's train split that are the 'train_full' reference (as many as its test
# split, the 'heldout' reference, so that the two floors compare).
FULL_MNIST_TRAIN_REFERENCE = 10_000


@dataclasses.dataclass(frozen=True)
class Reference:
  """The real images an MNIST evaluation compares with: uint8 [N, 28, 28, 1], labels int [N]."""
  images: np.ndarray
  labels: np.ndarray
  # e.g. 'embedded_mnist/heldout': the data set, then which of its images.
  split: str
  # Whether the generator trained on these images (only with eval_reference='train_full').
  trained_on: bool

  @property
  def size(self) -> int:
    return len(self.images)


def _full_mnist(config: ml_collections.ConfigDict, source_name: Optional[str]
                ) -> Optional[classifier.Split]:
  """Full MNIST's split when the run trains on full MNIST (module docstring), else None."""
  if config.data.source != 'mnist' or source_name == 'embedded_mnist':
    return None
  return classifier.full_mnist_split()


def mnist_reference(config: ml_collections.ConfigDict,
                    source_name: Optional[str] = None) -> Reference:
  """The reference of an MNIST run per config.eval_reference (module docstring).

  source_name: the name of the source the run trains on, when known ('embedded_mnist' after a
  fallback); else full MNIST is used when data.source='mnist' and it is cached.
  """
  full = _full_mnist(config, source_name)
  held_out = config.eval_reference == HELDOUT
  if full is not None:
    if held_out:
      return Reference(full.held_out_images, full.held_out_labels, 'mnist/test', False)
    return Reference(full.train_images[:FULL_MNIST_TRAIN_REFERENCE],
                     full.train_labels[:FULL_MNIST_TRAIN_REFERENCE], 'mnist/train', True)
  split = classifier.embedded_split()
  return Reference(split.held_out_images, split.held_out_labels,
                   f'embedded_mnist/{config.eval_reference}', not held_out)


def holds_out(config: ml_collections.ConfigDict, source: sources.Source) -> bool:
  """Whether the reference's images leave `source` before training (`training_source`)."""
  return config.eval_reference == HELDOUT and source.name == 'embedded_mnist'


def training_source(config: ml_collections.ConfigDict,
                    source: sources.Source) -> sources.Source:
  """The examples the generator trains on: `source` without the embedded sample's held-out
  digits when eval_reference='heldout' and the source is the embedded sample; else `source`."""
  if not holds_out(config, source):
    return source
  labels = source.labels
  if labels is None:  # An unconditional run carries no labels; the split needs them.
    labels = sources.load_embedded_mnist()[1]
  if len(labels) != source.size:
    raise ValueError(f'the embedded MNIST sample has {source.size} images and {len(labels)} '
                     'labels; expected one label per image')
  train, held_out = classifier.embedded_split_indices(labels)
  # In stored order: the training stream shuffles by itself.
  kept = source.subset(np.sort(train))
  logging.info("Data: %d of the embedded sample's %d digits train the generator; its %d "
               "held-out digits are the evaluation reference (eval_reference='heldout'; "
               "'train_full' trains on all of them)", kept.size, source.size, len(held_out))
  return kept


def trained_on(config: ml_collections.ConfigDict, source: sources.Source) -> sources.Source:
  """The examples the generator trains on: `training_source`, then the first data.limit of
  them (data/limit.py). Training streams these; memorisation compares samples with them."""
  return limit.first_images(training_source(config, source), config.data.limit)

