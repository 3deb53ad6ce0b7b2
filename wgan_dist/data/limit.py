"""`data.limit`: train on N images of the training stream, and the images it leaves out.

The limited-data regime (a few hundred or thousand images, where the critic memorises its
training set) reproduced with any source, the embedded sample included. Sources are often stored
in class order (the embedded sample is: its first 500 digits are 400 zeros and 100 ones), so the
first N in stored order would not be a sample of the data. `first_images` therefore keeps the
first N of one fixed random permutation of the training source (after the evaluation
reference's held-out images left it, eval/reference.py), with their labels, in stored order:
the same N images for every seed and every run of the same data and eval_reference, so that
runs with several seeds compare on the same data. `images_after` returns the next images of that permutation:
real images the generator never trains on, which the critic-overfitting gauge reads for sources
without a held-out split of their own (training/overfit.py).
"""

from typing import Optional

import numpy as np

from wgan_dist.data import errors
from wgan_dist.data import sources

# The permutation's seed: fixed, so that a limit picks the same images in every run.
PERMUTATION_SEED = 1000


def check(limit: int, source: sources.Source) -> None:
  """DataError naming data.limit when `source` has fewer than `limit` images."""
  if limit > source.size:
    raise errors.DataError(
        f'data.limit={limit} is more than the {source.size} training images of '
        f'{source.name!r}; allowed: 0 (all) or 1..{source.size}')


def _permutation(size: int) -> np.ndarray:
  return np.random.default_rng(PERMUTATION_SEED).permutation(size)


def first_indices(size: int, limit: int) -> np.ndarray:
  """The stored positions of the `limit` images kept of `size`, in stored order."""
  return np.sort(_permutation(size)[:limit])


def first_images(source: sources.Source, limit: int) -> sources.Source:
  """`limit` examples of `source` (module docstring); 0 or all of them: `source` itself."""
  if not limit:
    return source
  check(limit, source)
  if limit == source.size:
    return source
  return source.subset(first_indices(source.size, limit))


def images_after(source: sources.Source, limit: int, count: int) -> Optional[sources.Source]:
  """Up to `count` examples of `source` that `first_images(source, limit)` leaves out, the next
  ones of the same permutation (None when there are none, or when no limit is set)."""
  if not limit or limit >= source.size:
    return None
  return source.subset(np.sort(_permutation(source.size)[limit:limit + count]))
