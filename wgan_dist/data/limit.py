"""`data.limit`: train on the first N images of the training stream, and the images after them.

The limited-data regime (a few hundred or thousand images, where the critic memorises its
training set) reproduced with any source, the embedded sample included: `first_images` keeps
the first N examples of the training source in stored order (after the evaluation reference's
held-out images left it, eval/reference.py), with their labels. The examples after the first N
are real images the generator never trains on; `images_after` returns them for the critic-
overfitting gauge of sources without a held-out split of their own (training/overfit.py).
"""

import numpy as np

from wgan_dist.data import errors
from wgan_dist.data import sources


def check(limit: int, source: sources.Source) -> None:
  """DataError naming data.limit when `source` has fewer than `limit` images."""
  if limit > source.size:
    raise errors.DataError(
        f'data.limit={limit} is more than the {source.size} training images of '
        f'{source.name!r}; allowed: 0 (all) or 1..{source.size}')


def first_images(source: sources.Source, limit: int) -> sources.Source:
  """The first `limit` examples of `source` (0 = all of them: `source` itself)."""
  if not limit:
    return source
  check(limit, source)
  if limit == source.size:
    return source
  return source.subset(np.arange(limit))


def images_after(source: sources.Source, limit: int, count: int) -> sources.Source | None:
  """Up to `count` examples of `source` after its first `limit` (None when there are none, or
  when no limit is set)."""
  if not limit or limit >= source.size:
    return None
  return source.subset(np.arange(limit, min(source.size, limit + count)))
