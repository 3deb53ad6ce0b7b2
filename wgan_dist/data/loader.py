"""What a data source's loader returns and the checks it may call: the part of the sources
that a loader module of its own imports (docs/extending.md). data/sources.py imports the loader
modules to register them in SOURCES, so a loader importing sources would be an import cycle;
this module imports nothing of the package but data/errors.py.

- `Loaded`: the images (in-memory arrays, or image files), labels, class names and, when the
  loader knows it, the content fingerprint; `sources.load_source` checks what every source
  shares and builds the `Source`.
- `check_labels`, `check_pixels`: the shared checks, for a loader that checks early.
- `errors.DataError`: what a loader raises, naming data.path (or the field) and what is wrong.
"""

from typing import NamedTuple, Optional

import numpy as np
from absl import logging

from wgan_dist.data import errors

DataError = errors.DataError  # The one class (data/errors.py); sources.DataError is it too.


class Loaded(NamedTuple):
  """What a source's loader found, before the checks every source shares."""
  name: str  # The source actually loaded ('mnist' may fall back to 'embedded_mnist').
  images: Optional[np.ndarray] = None
  files: Optional[list[str]] = None
  labels: Optional[np.ndarray] = None
  class_names: Optional[tuple[str, ...]] = None
  # The content fingerprint, when the loader knows it (Source.fingerprint).
  fingerprint: Optional[str] = None


def check_labels(labels: np.ndarray, num_examples: int, num_classes: int,
                 where: str) -> np.ndarray:
  """`labels` as int32 [num_examples] in [0, num_classes); DataError naming `where` otherwise.

  [N, 1] (CIFAR-10's layout) is accepted as [N]; labels must have an integer dtype.
  """
  labels = np.asarray(labels)
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim != 1:
    hint = (' (one-hot? store labels.argmax(1))' if labels.ndim == 2 else '')
    raise DataError(f'{where}: labels of shape {labels.shape}; allowed: one integer label per '
                    f'image, shape [{num_examples}]{hint}')
  if len(labels) != num_examples:
    raise DataError(f'{where}: {len(labels)} labels for {num_examples} images; allowed: one '
                    'label per image, in the same order')
  if labels.dtype.kind not in 'iu':
    raise DataError(f'{where}: labels of dtype {labels.dtype}; allowed: integers in '
                    f'[0, {num_classes}) (an integer dtype, e.g. int32)')
  outside = (labels < 0) | (labels >= num_classes)
  if outside.any():
    values, counts = np.unique(labels[outside], return_counts=True)
    found = ', '.join(f'{value} ({count}x)' for value, count in zip(values[:5], counts[:5]))
    found += ', ...' if len(values) > 5 else ''
    fix = (f'; set model.num_classes={labels.max() + 1}' if labels.min() >= 0 else '')
    raise DataError(f'{where}: {int(outside.sum())} of {num_examples} labels lie outside '
                    f'[0, {num_classes}) (model.num_classes={num_classes}): {found}; allowed: '
                    f'0..{num_classes - 1}{fix}')
  return labels.astype(np.int32)


def check_pixels(images: np.ndarray, where: str) -> np.ndarray:
  """`images` as uint8 or float in [0, 1] (what the pipeline scales to [-1, 1]).

  Accepts uint8; other integer types whose values lie in [0, 255] (returned as uint8); finite
  floats in [0, 1]. Anything else raises DataError naming `where`, the dtype and the range.
  """
  allowed = 'allowed: uint8 (or any integer type) in [0, 255], or float in [0, 1]'
  if images.dtype == np.uint8:
    return images
  kind = images.dtype.kind
  if kind not in 'iuf':
    raise DataError(f'{where}: pixels of dtype {images.dtype}; {allowed}')
  low, high = images.min(), images.max()
  if kind in 'iu':
    if low < 0 or high > 255:
      raise DataError(f'{where}: {images.dtype} pixel values span [{low}, {high}]; {allowed}')
    logging.info('%s: %s pixels in [0, 255] read as uint8', where, images.dtype)
    return images.astype(np.uint8)
  if not (np.isfinite(low) and np.isfinite(high)):  # min and max carry any NaN or inf.
    raise DataError(f'{where}: {images.dtype} pixels include NaN or infinite values; {allowed}')
  if low < 0 or high > 1:
    found = f'{where}: {images.dtype} pixel values span [{low:g}, {high:g}]; {allowed}'
    if low >= 0 and high <= 255:
      found += ' (these look like 8-bit values: store images.astype(np.uint8))'
    elif low >= -1 and high <= 1:
      found += ' (this looks like [-1, 1]: store (images + 1) / 2)'
    raise DataError(found)
  return images
