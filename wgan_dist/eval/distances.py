"""Euclidean distances between feature sets in float64, a block of rows at a time.

Nearest-neighbour metrics (improved precision and recall, memorisation) need distances between
every pair of N1 x N2 feature rows. At 50,000 x 50,000 the full matrix would take 20 GB in
float64, so these functions work through `block` rows at a time and keep only what each
metric needs from a block (a k-th smallest value, a minimum, a comparison).

Squared distances come from ‖a‖² + ‖b‖² − 2 a·b (one matrix product per block); rounding can
leave a tiny negative where the exact value is 0 (a row against itself), clipped to 0.
"""

from typing import Iterator

import numpy as np

# Rows per block: a 1,000 x 50,000 float64 block is 400 MB; 256 rows keep it near 100 MB.
BLOCK_ROWS = 256


def as_features(features: np.ndarray, name: str = 'features') -> np.ndarray:
  """features as float64 [N >= 1, D]; ValueError naming `name` and the shape otherwise."""
  array = np.asarray(features, np.float64)
  if array.ndim != 2 or len(array) == 0:
    raise ValueError(f'{name} must be [N >= 1, D], got shape {array.shape}')
  return array


def squared_distance_blocks(rows: np.ndarray, columns: np.ndarray, block: int = BLOCK_ROWS
                            ) -> Iterator[tuple[int, np.ndarray]]:
  """(first row, squared distances [b, N2]) for consecutive blocks of `rows` against all of
  `columns` (both float64 [N, D] with the same D)."""
  if rows.shape[1] != columns.shape[1]:
    raise ValueError(f'feature sizes differ: {rows.shape} vs {columns.shape}')
  column_norms = np.sum(columns**2, axis=1)
  for start in range(0, len(rows), block):
    part = rows[start:start + block]
    squared = np.sum(part**2, axis=1)[:, None] + column_norms[None, :] - 2.0 * part @ columns.T
    yield start, np.maximum(squared, 0.0)


def kth_neighbour_squared_radii(features: np.ndarray, k: int, block: int = BLOCK_ROWS
                                ) -> np.ndarray:
  """Squared distance [N] from each row to its k-th nearest other row of the same set.

  The row itself is at distance 0, so this is the (k + 1)-th smallest distance in its row of
  the set's distance matrix (a duplicate row counts as a neighbour at distance 0).
  """
  if not 1 <= k < len(features):
    raise ValueError(f'k={k} nearest neighbours need 1 <= k < N, with N={len(features)} rows')
  radii = np.empty(len(features), np.float64)
  for start, squared in squared_distance_blocks(features, features, block):
    radii[start:start + len(squared)] = np.partition(squared, k, axis=1)[:, k]
  return radii


def nearest(queries: np.ndarray, pool: np.ndarray, block: int = BLOCK_ROWS
            ) -> tuple[np.ndarray, np.ndarray]:
  """(distance [N], index [N]) of each query row's nearest row of `pool` (Euclidean)."""
  distances = np.empty(len(queries), np.float64)
  indices = np.empty(len(queries), np.int64)
  for start, squared in squared_distance_blocks(queries, pool, block):
    best = np.argmin(squared, axis=1)
    indices[start:start + len(best)] = best
    distances[start:start + len(best)] = np.sqrt(squared[np.arange(len(best)), best])
  return distances, indices
