"""Kernel Inception Distance (Bińkowski et al. 2018): an unbiased estimate of the squared
maximum mean discrepancy between generated and real features, with the cubic polynomial
kernel k(x, y) = (x·y / d + 1)³ (d = feature size).

For sets X (m rows) and Y (m rows) the unbiased estimate is

  MMD²_u = 1/(m(m−1)) Σ_{i≠j} [k(xᵢ, xⱼ) + k(yᵢ, yⱼ)] − 2/m² Σ_{i,j} k(xᵢ, yⱼ).

Its expectation is 0 when both sets come from one distribution, so unlike FID it has no
positive bias at small N; a single estimate can be slightly negative. It is computed on
`num_subsets` random subsets of `subset_size` rows of each set (drawn without replacement,
from a fixed numpy seed so a figure is reproducible) and reported as the mean and the standard
deviation over subsets, as Bińkowski et al. and StyleGAN3's `kid50k_full` do, with subsets of
at most 1,000 rows. Sets of at most PRECOMPUTE_ROWS rows have their three kernel matrices
computed once and each subset's sums read from them (the same numbers, far fewer products);
larger sets compute each subset's kernels afresh. One difference: where the smaller set has fewer than 2,000 rows the subsets
take half of it, not all of it; subsets of every row would all be the same set in another
order, each giving the same value, and the spread would read 0 whatever the sample size.
"""

from typing import Optional

import numpy as np

from wgan_dist.eval import distances

NUM_SUBSETS = 100
MAX_SUBSET_SIZE = 1000
SUBSET_SEED = 0
# Up to this many rows per set, kernel matrices are computed once (<= 128 MB each in float64).
PRECOMPUTE_ROWS = 4096


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """k(x, y) = (x·y / d + 1)³ for every row pair: [N1, N2] (float64)."""
  return (x @ y.T / x.shape[1] + 1.0)**3


def _mmd2_from_kernels(within_x: np.ndarray, within_y: np.ndarray, across: np.ndarray) -> float:
  """MMD²_u from the kernel matrices k(x, x), k(y, y) [m, m] and k(x, y) [m, m]."""
  m = len(within_x)
  within = within_x.sum() - np.trace(within_x) + within_y.sum() - np.trace(within_y)
  return float(within / (m * (m - 1)) - 2.0 * across.sum() / m**2)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """The unbiased MMD² estimate of the module docstring, for x and y with m >= 2 rows each."""
  x, y = distances.as_features(x, 'x'), distances.as_features(y, 'y')
  if len(y) != len(x) or len(x) < 2:
    raise ValueError(f'x and y need the same number (>= 2) of rows, got {x.shape} and {y.shape}')
  return _mmd2_from_kernels(polynomial_kernel(x, x), polynomial_kernel(y, y),
                            polynomial_kernel(x, y))


def subset_size(num_generated: int, num_real: int, max_subset_size: int = MAX_SUBSET_SIZE) -> int:
  """Rows per subset: min(max_subset_size, n) where n is the smaller set's size, or n // 2 when
  n < 2 · max_subset_size (module docstring); at least 2."""
  smaller = min(num_generated, num_real)
  size = min(max_subset_size, smaller if smaller >= 2 * max_subset_size else smaller // 2)
  return max(2, size)


def kernel_inception_distance(generated: np.ndarray, real: np.ndarray, *,
                              num_subsets: int = NUM_SUBSETS,
                              max_subset_size: int = MAX_SUBSET_SIZE,
                              seed: int = SUBSET_SEED,
                              size: Optional[int] = None,
                              precompute_rows: int = PRECOMPUTE_ROWS
                              ) -> tuple[float, float, np.ndarray]:
  """(mean, standard deviation, values [num_subsets]) of MMD²_u over random subsets.

  `size` overrides the subset size `subset_size` picks (tests use it); it may not exceed
  either set. `precompute_rows`: see the module docstring (tests compare both paths). Subset i draws its generated rows, then its real rows, from one generator
  seeded with `seed`.
  """
  generated = distances.as_features(generated, 'generated features')
  real = distances.as_features(real, 'real features')
  if generated.shape[1] != real.shape[1]:
    raise ValueError(f'feature sizes differ: {generated.shape} vs {real.shape}')
  m = subset_size(len(generated), len(real), max_subset_size) if size is None else int(size)
  if not 2 <= m <= min(len(generated), len(real)):
    raise ValueError(f'subset size {m} needs 2 <= size <= {min(len(generated), len(real))} '
                     f'(rows of the smaller set)')
  precompute = max(len(generated), len(real)) <= precompute_rows
  if precompute:
    kernels = (polynomial_kernel(generated, generated), polynomial_kernel(real, real),
               polynomial_kernel(generated, real))
  rng = np.random.default_rng(seed)
  values = np.empty(num_subsets, np.float64)
  for i in range(num_subsets):
    rows_x = rng.choice(len(generated), m, replace=False)
    rows_y = rng.choice(len(real), m, replace=False)
    if precompute:
      values[i] = _mmd2_from_kernels(kernels[0][np.ix_(rows_x, rows_x)],
                                     kernels[1][np.ix_(rows_y, rows_y)],
                                     kernels[2][np.ix_(rows_x, rows_y)])
    else:
      values[i] = mmd2_unbiased(generated[rows_x], real[rows_y])
  # Population standard deviation over the subsets, as StyleGAN3 and Bińkowski et al. print.
  return float(values.mean()), float(values.std()), values
