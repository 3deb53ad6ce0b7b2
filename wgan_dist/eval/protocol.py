"""What an evaluation figure was measured on, and the quantisation every image goes through.

A FID (or KID, precision, recall) is comparable with another only under the same protocol:
the same feature extractor with the same weights, the same image size and resize, the same
quantisation, the same reference images and the same sample counts (FID is biased by N). The
`Evaluator` describes its fixed part (`Evaluator.protocol`); each evaluation adds the sample
count and noise draws; the caller adds step, checkpoint and generator (EMA or raw), and
`records.py` keeps one such record per evaluation.

Quantisation: generated images are rounded to uint8 before they reach the features, exactly as
a saved PNG would store them (`data.images.to_grid`: rint((x + 1) · 127.5) clipped to
[0, 255]), then mapped back to [-1, 1]; so are the reference images (a no-op for data that were
uint8 already, e.g. MNIST). A generator is then scored on the images a user would see and save,
and generated and real images share one pixel grid (clean-fid showed that quantisation and
resizing alone move FID by whole points).
"""

import functools
import hashlib

import numpy as np
import tensorflow as tf

QUANTISATION = ('uint8 as a saved PNG: rint((x + 1) * 127.5) clipped to [0, 255], back to '
                '[-1, 1], before the features (generated and reference images)')


def quantise(images: tf.Tensor) -> tf.Tensor:
  """float images in [-1, 1] -> the float32 values of their uint8 PNG pixels, in [-1, 1]."""
  # tf.round rounds half to even, as np.rint does in data.images.to_grid.
  pixels = tf.clip_by_value(tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5), 0.0, 255.0)
  return pixels / 127.5 - 1.0


def quantise_numpy(images: np.ndarray) -> np.ndarray:
  """`quantise` in numpy (float32), for reference images and tests."""
  pixels = np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255)
  return (pixels.astype(np.float32) / 127.5 - 1.0).astype(np.float32)


@functools.lru_cache(maxsize=8)
def file_sha256(path: str) -> str:
  """sha256 (hex) of a weights file, read in 1 MB blocks; cached per path for the process."""
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()
