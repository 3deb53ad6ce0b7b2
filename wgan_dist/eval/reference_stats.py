"""Reference statistics computed once, kept in an .npz file, and checked before they are used.

    python -m wgan_dist.evaluate --reference_stats=OUT.npz --config=configs/cifar10.py [...]

writes the real side of an evaluation (`Evaluator.save_reference_stats`); training and
`evaluate` with `eval_reference_stats=OUT.npz` read it instead of embedding the real images.

Keys of the file (np.savez, no pickles):
- `mu` [D], `sigma` [D, D] (float64): the mean and covariance of the reference features, the
  names and layout of TTUR's published statistics (`fid_stats_cifar10_train.npz`...), so FID
  can be computed against either;
- `features` [N, D] (float32): the reference features themselves, which KID, precision /
  recall and density / coverage need (and memorisation's held-out side); with 2,048 Inception
  features 50,000 rows take 410 MB;
- `labels` [N] (int32, MNIST only): the reference's digits, for intra-FID;
- `protocol`: a JSON string, what the statistics were measured with (the network, its file's
  sha256, the image size, resize, quantisation, reference split and count).

A file with only `mu` and `sigma` (TTUR's) gives FID and the Inception Score: the other metrics
need the features, and are not reported. Its network cannot be checked (the file does not say):
its feature size must match, and it is taken to be the one it is used with (TTUR's files
belong with `eval_inception_graph`, the 2015 graph they were made with).

Refused with one line naming the file and both values, before any generation: a file made with
another feature extractor, weights file (sha256), image size, resize or quantisation, or
whose feature size is not the network's.
"""

import dataclasses
import io
import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from wgan_dist.config import validation as config_validation

# Protocol fields a file must share with the evaluation that reads it.
CHECKED_FIELDS = ('feature_extractor', 'feature_weights_sha256', 'image_size', 'resize',
                  'quantisation')


class ReferenceStatsError(config_validation.ConfigError):
  """eval_reference_stats names a file that is missing, unreadable or from another protocol."""


@dataclasses.dataclass(frozen=True)
class ReferenceStats:
  mu: np.ndarray  # [D] float64
  sigma: np.ndarray  # [D, D] float64
  features: Optional[np.ndarray]  # [N, D] float32, or None (a mu/sigma-only file)
  labels: Optional[np.ndarray]  # [N] int32, or None
  protocol: Optional[dict]  # None for a file without one (TTUR's)


def save(path: str, mu: np.ndarray, sigma: np.ndarray, features: np.ndarray,
         labels: Optional[np.ndarray], protocol: dict) -> str:
  """Writes the statistics (module docstring) to `path`; returns it."""
  arrays = {'mu': np.asarray(mu, np.float64), 'sigma': np.asarray(sigma, np.float64),
            'features': np.asarray(features, np.float32),
            'protocol': np.array(json.dumps(protocol))}
  if labels is not None:
    arrays['labels'] = np.asarray(labels, np.int32)
  directory = os.path.dirname(path)
  if directory:
    tf.io.gfile.makedirs(directory)
  buffer = io.BytesIO()  # np.savez seeks; gfile (gs://) writes only forwards.
  np.savez(buffer, **arrays)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(buffer.getvalue())
  return path


def load(path: str) -> ReferenceStats:
  """The statistics in `path`; ReferenceStatsError (one line) when it is not such a file."""
  def error(reason: str) -> ReferenceStatsError:
    return ReferenceStatsError(f'eval_reference_stats={path!r} {reason}; allowed: an .npz with '
                               "'mu' [D] and 'sigma' [D, D] (python -m wgan_dist.evaluate "
                               '--reference_stats=OUT.npz writes one)')
  if not path or not tf.io.gfile.exists(path):
    raise error('is not an existing file')
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      content = f.read()
    with np.load(io.BytesIO(content), allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except Exception as err:  # pylint: disable=broad-except
    raise error(f'is not a readable .npz ({type(err).__name__})') from err
  if 'mu' not in arrays or 'sigma' not in arrays:
    raise error(f'has keys {sorted(arrays)}')
  mu, sigma = np.asarray(arrays['mu'], np.float64), np.asarray(arrays['sigma'], np.float64)
  if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
    raise error(f'has mu {mu.shape} and sigma {sigma.shape}')
  features = arrays.get('features')
  if features is not None and (features.ndim != 2 or features.shape[1] != len(mu)):
    raise error(f'has features {features.shape} beside mu {mu.shape}')
  protocol = json.loads(str(arrays['protocol'])) if 'protocol' in arrays else None
  return ReferenceStats(mu, sigma, features, arrays.get('labels'), protocol)


def check(stats: ReferenceStats, path: str, protocol: dict, num_features: int) -> None:
  """ReferenceStatsError naming `path` and both values when `stats` were not measured as an
  evaluation with `protocol` (Evaluator.protocol's network fields) and `num_features` would."""
  if len(stats.mu) != num_features:
    raise ReferenceStatsError(
        f'eval_reference_stats={path!r} holds {len(stats.mu)} features per image; this '
        f'evaluation\'s network ({protocol["feature_extractor"]}) gives {num_features}')
  if stats.protocol is None:
    return
  for field in CHECKED_FIELDS:
    theirs, ours = stats.protocol.get(field), protocol.get(field)
    if theirs != ours:
      raise ReferenceStatsError(
          f'eval_reference_stats={path!r} was made with {field}={theirs!r}; this evaluation '
          f'uses {field}={ours!r}: make it again with python -m wgan_dist.evaluate '
          '--reference_stats=OUT.npz and this config')
