"""One identity for every data source: a content fingerprint and an image count.

`of_source(source)` is what a run records (config.json, every checkpoint) and what the workers
of a job and a resume compare. Where the fingerprint comes from:

- a source that knows it sets `Source.fingerprint`: 'folder' hashes each file's bytes during the
  scan that decodes every file anyway (sources.folder_fingerprint: relative paths and contents,
  not modification times, which differ between copies of a folder); a prepared data set reads it
  from its dataset.json;
- a loader of in-memory arrays that knows a cheaper content fingerprint sets
  `sources.Loaded.fingerprint`, which load_source keeps;
- in-memory arrays ('npz', 'tfds', keras.datasets, the embedded sample): SHA-256 of the images'
  dtype, shape and bytes, and of the labels when the run carries them (a conditional run
  trains on the pairs). About 0.5 s per GB on this project's benchmark machine;
- a part of a source (`Source.subset`: the held-out split, data.limit) with a fingerprint:
  sources.subset_fingerprint of that fingerprint and the indices kept (a file list has no
  arrays to hash); a part of arrays without one is hashed itself.

The count is the number of images the run trains on (after `on_bad_image='skip'`), which with
the seed, the global batch and n_critic sets the data order and, with train.num_steps=-1, the
run's length.
"""

import dataclasses
import hashlib
from typing import Optional

import numpy as np

from wgan_dist.data import sources

# Bytes hashed per update: bounds the temporary copy a non-contiguous array needs.
_CHUNK_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class DatasetIdentity:
  """What a run trains on: `fingerprint` ('<method>:<hex>') and `count` (images)."""
  fingerprint: str
  count: int

  def describe(self) -> str:
    """e.g. 'sha256:3f2a9c01d4e5... (5000 images)': short enough for one error line."""
    return f'{self.fingerprint[:23]}... ({self.count} images)'


def array_fingerprint(images: np.ndarray, labels: Optional[np.ndarray] = None) -> str:
  """SHA-256 of the images' dtype, shape and bytes (and the labels', when given)."""
  digest = hashlib.sha256()
  for array in (images, labels):
    if array is None:
      digest.update(b'no labels')
      continue
    digest.update(f'{array.dtype.str} {array.shape}\n'.encode())
    # Row blocks of the first axis: a contiguous array is hashed without a copy, another one
    # (e.g. a strided view) a bounded block at a time.
    rows = max(1, _CHUNK_BYTES // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
      digest.update(memoryview(np.ascontiguousarray(array[start:start + rows])).cast('B'))
  return 'sha256:' + digest.hexdigest()


def of_source(source: sources.Source) -> DatasetIdentity:
  """The source's fingerprint (its own, or of its arrays) and image count."""
  if source.fingerprint:
    return DatasetIdentity(source.fingerprint, source.size)
  if source.images is None:
    # A file list always comes with the scan's fingerprint (sources.load_source).
    raise ValueError(f'source {source.name!r} has neither a fingerprint nor in-memory images')
  return DatasetIdentity(array_fingerprint(source.images, source.labels), source.size)
