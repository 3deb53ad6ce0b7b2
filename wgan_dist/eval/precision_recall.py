"""Improved precision and recall (Kynkäänniemi et al. 2019) of generated against real features.

Each set's manifold is approximated by the union of balls around its rows, each ball reaching
that row's k-th nearest neighbour within the set (k = 3 by default, as the paper and
StyleGAN3's `pr50k3` use). Then

  precision = share of generated rows inside some ball of the real manifold (are the samples
              realistic?),
  recall    = share of real rows inside some ball of the generated manifold (is the data's
              variety covered?).

A set against itself scores 1 and 1 (every row is inside its own ball); generated samples far
from all real ones score 0 and 0. Distances are Euclidean on the features FID uses, in float64,
a block of rows at a time (`distances`), so 50,000 rows need no 50,000² matrix. A point is
inside a ball when its distance is <= the radius (so a duplicate of a real row is inside).
"""

import numpy as np

from wgan_dist.eval import distances

NEIGHBOURS = 3


def coverage_share(probes: np.ndarray, manifold: np.ndarray, k: int = NEIGHBOURS) -> float:
  """Share of `probes` rows inside the k-nearest-neighbour balls of `manifold`'s rows."""
  probes = distances.as_features(probes, 'probe features')
  manifold = distances.as_features(manifold, 'manifold features')
  radii = distances.kth_neighbour_squared_radii(manifold, k)
  inside = np.zeros(len(probes), bool)
  for start, squared in distances.squared_distance_blocks(probes, manifold):
    inside[start:start + len(squared)] = np.any(squared <= radii[None, :], axis=1)
  return float(inside.mean())


def precision_recall(generated: np.ndarray, real: np.ndarray,
                     k: int = NEIGHBOURS) -> tuple[float, float]:
  """(precision, recall) of the module docstring."""
  return coverage_share(generated, real, k), coverage_share(real, generated, k)
