"""Density and coverage (Naeem et al. 2020, "Reliable fidelity and diversity metrics for
generative models") of generated against real features, k = 5 as the paper recommends.

Both use only the real manifold: around each real row X_i a ball reaching its k-th nearest
real neighbour (radius r_i, the row itself excluded, as precision_recall.py's balls). For M
generated rows Y_j and N real rows,

  density  = 1/(k M) Σ_j #{i : ‖Y_j − X_i‖ <= r_i}   (how many real balls hold a sample, per k),
  coverage = 1/N #{i : some Y_j has ‖Y_j − X_i‖ <= r_i} (share of real balls holding a sample).

Unlike precision, density is not fooled by a few real outliers with huge balls, and can exceed 1
(samples crowded where the real data are dense); a set drawn from the real distribution scores
about 1 on both. Coverage is recall's robust counterpart: 1 for the real set against itself
(every ball holds its own centre), 0 for samples far from every real row. Distances are
Euclidean on the features FID uses, float64, a block of rows at a time (distances.py), so 50,000
rows need no 50,000² matrix. Inside means distance <= radius, as in precision_recall.py.
"""

import numpy as np

from wgan_dist.eval import distances

NEIGHBOURS = 5


def real_radii(real: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
  """Squared radius [N] of each real row's ball: its squared distance to its k-th nearest
  other real row."""
  return distances.kth_neighbour_squared_radii(distances.as_features(real, 'real features'), k)


def density_coverage(generated: np.ndarray, real: np.ndarray, k: int = NEIGHBOURS,
                     squared_radii: np.ndarray = None) -> tuple[float, float]:
  """(density, coverage) of the module docstring. `squared_radii`: `real_radii(real, k)` when
  the caller has them (the evaluator computes them once per reference)."""
  generated = distances.as_features(generated, 'generated features')
  real = distances.as_features(real, 'real features')
  radii = real_radii(real, k) if squared_radii is None else np.asarray(squared_radii)
  if radii.shape != (len(real),):
    raise ValueError(f'squared_radii must be [{len(real)}], got shape {radii.shape}')
  inside_count = 0
  covered = np.zeros(len(real), bool)
  for _, squared in distances.squared_distance_blocks(generated, real):
    inside = squared <= radii[None, :]  # [block of generated rows, N real rows]
    inside_count += int(inside.sum())
    covered |= inside.any(axis=0)
  return float(inside_count / (k * len(generated))), float(covered.mean())
