"""KID, improved precision / recall, density / coverage and the memorisation ratio
(wgan_dist/eval) against direct loop-based numpy implementations and known cases (numpy only,
fast)."""

import itertools

import numpy as np
import pytest

from wgan_dist.eval import density_coverage
from wgan_dist.eval import kid
from wgan_dist.eval import memorisation
from wgan_dist.eval import precision_recall


def _mmd2_loops(x, y) -> float:
  """The unbiased MMD² with the cubic kernel, one pair at a time."""
  m, d = len(x), x.shape[1]
  k = lambda a, b: (float(np.dot(a, b)) / d + 1.0)**3  # pylint: disable=unnecessary-lambda-assignment
  within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  across = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
  return within / (m * (m - 1)) - 2.0 * across / m**2


def _radius_loops(points, k):
  """Distance from each point to its k-th nearest other point (self excluded by index)."""
  radii = []
  for i, a in enumerate(points):
    others = sorted(float(np.sqrt(np.sum((a - b)**2))) for j, b in enumerate(points) if j != i)
    radii.append(others[k - 1])
  return radii


def _share_loops(probes, manifold, k):
  radii = _radius_loops(manifold, k)
  inside = [any(np.sqrt(np.sum((p - q)**2)) <= r for q, r in zip(manifold, radii))
            for p in probes]
  return sum(inside) / len(probes)


def test_mmd_matches_the_loops():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.5, size=(7, 3))
  assert kid.mmd2_unbiased(x, y) == pytest.approx(_mmd2_loops(x, y), rel=1e-12)
  assert kid.mmd2_unbiased(x, x) == pytest.approx(_mmd2_loops(x, x), abs=1e-12)


def test_shifted_set_matches_a_hand_computation():
  # x = {0, 1}, y = x + 1 = {1, 2} in one dimension, k(a, b) = (ab + 1)³:
  # within: 2·k(0,1) + 2·k(1,2) = 2 + 54 over m(m-1) = 2 -> 28;
  # across: k(0,1) + k(0,2) + k(1,1) + k(1,2) = 1 + 1 + 8 + 27 = 37, times 2/m² -> 18.5.
  x = np.array([[0.0], [1.0]])
  assert kid.mmd2_unbiased(x, x + 1.0) == pytest.approx(9.5, rel=1e-12)
  # The KID of the pair: one subset of both rows (any order) is that same estimate.
  mean, std, values = kid.kernel_inception_distance(x, x + 1.0, num_subsets=4, size=2)
  assert mean == pytest.approx(9.5) and std == pytest.approx(0.0, abs=1e-12)
  np.testing.assert_allclose(values, 9.5)


def test_subsets_are_drawn_from_the_seed_as_documented():
  rng = np.random.default_rng(1)
  generated, real = rng.normal(size=(12, 4)), rng.normal(0.3, 1.0, size=(15, 4))
  mean, std, values = kid.kernel_inception_distance(generated, real, num_subsets=3, size=5,
                                                    seed=7)
  # Kernels per subset (the path of sets above PRECOMPUTE_ROWS): the same numbers.
  _, _, fresh = kid.kernel_inception_distance(generated, real, num_subsets=3, size=5, seed=7,
                                              precompute_rows=0)
  np.testing.assert_allclose(fresh, values, rtol=1e-12)
  draws = np.random.default_rng(7)
  expected = []
  for _ in range(3):
    rows_x = draws.choice(12, 5, replace=False)
    rows_y = draws.choice(15, 5, replace=False)
    expected.append(_mmd2_loops(generated[rows_x], real[rows_y]))
  np.testing.assert_allclose(values, expected, rtol=1e-12)
  assert mean == pytest.approx(np.mean(expected)) and std == pytest.approx(np.std(expected))
  assert std > 0


@pytest.mark.parametrize('sizes, expected', [((1000, 1000), 500), ((10000, 1000), 500),
                                             ((50000, 50000), 1000), ((2000, 5000), 1000),
                                             ((1999, 5000), 999), ((3, 3), 2)])
def test_subset_size(sizes, expected):
  assert kid.subset_size(*sizes) == expected


def test_a_set_against_itself_is_near_zero_and_a_shift_is_not():
  rng = np.random.default_rng(2)
  features = rng.normal(size=(200, 16))
  same, _, _ = kid.kernel_inception_distance(features, features)
  shifted, shifted_std, _ = kid.kernel_inception_distance(features, features + 0.5)
  assert shifted > 10 * shifted_std
  # Near 0, slightly negative: subsets drawn independently from one set share about m²/n row
  # pairs, whose k(x, x) replaces an off-diagonal k(x, y) in the cross term, so the expectation
  # is -2 (mean k(x, x) - mean off-diagonal k(x, x')) / n.
  kernel = kid.polynomial_kernel(features, features)
  n = len(features)
  overlap = -2 * (np.trace(kernel) / n - (kernel.sum() - np.trace(kernel)) / (n * (n - 1))) / n
  assert same < 0 and abs(same) < 0.1 * shifted
  assert same == pytest.approx(overlap, rel=0.2)


def test_a_disjoint_fresh_sample_of_one_distribution_scores_zero_on_average():
  rng = np.random.default_rng(3)
  values = [kid.kernel_inception_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)),
                                          num_subsets=10)[0] for _ in range(20)]
  # Unbiased: the mean over draws is within a few standard errors of 0.
  assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))


def test_precision_recall_match_the_loops():
  rng = np.random.default_rng(4)
  real = rng.normal(size=(30, 2))
  generated = np.concatenate([rng.normal(size=(15, 2)), rng.normal(3.0, 1.0, size=(10, 2))])
  for k in (1, 3):
    precision, recall = precision_recall.precision_recall(generated, real, k)
    assert precision == _share_loops(generated, real, k), k
    assert recall == _share_loops(real, generated, k), k
  assert 0 < precision < 1 and 0 < recall < 1


def test_a_set_against_itself_has_precision_and_recall_one():
  features = np.random.default_rng(5).normal(size=(300, 8))
  assert precision_recall.precision_recall(features, features) == (1.0, 1.0)


def test_disjoint_clusters_have_precision_and_recall_zero():
  rng = np.random.default_rng(6)
  real = rng.normal(size=(200, 4))
  assert precision_recall.precision_recall(real + 100.0, real) == (0.0, 0.0)


def test_a_generator_covering_one_of_two_modes_is_precise_without_recall():
  rng = np.random.default_rng(7)
  centres = np.array([[0.0] * 4, [50.0] * 4])
  real = np.concatenate([c + rng.normal(size=(200, 4)) for c in centres])
  one_mode = centres[0] + rng.normal(size=(400, 4))
  precision, recall = precision_recall.precision_recall(one_mode, real)
  assert precision > 0.9
  assert 0.45 < recall < 0.5 + 1e-9  # Only the first mode's half of the real rows.


def test_blocks_do_not_change_the_results():
  rng = np.random.default_rng(8)
  a, b = rng.normal(size=(300, 5)), rng.normal(size=(290, 5))
  from wgan_dist.eval import distances  # pylint: disable=import-outside-toplevel
  small = list(itertools.chain.from_iterable(
      s for _, s in distances.squared_distance_blocks(a, b, block=7)))
  np.testing.assert_allclose(np.array(small), np.sum((a[:, None] - b[None]) ** 2, axis=-1),
                             rtol=1e-9, atol=1e-9)


def test_memorisation_ratio_of_copies_is_zero_and_of_fresh_samples_one():
  rng = np.random.default_rng(9)
  train = rng.normal(size=(1500, 8))
  held_out = rng.normal(size=(400, 8))
  copies = memorisation.memorisation(train[:500], held_out, train)
  assert copies.ratio == 0.0 and copies.copy_share == 1.0
  np.testing.assert_array_equal(copies.generated_nearest, np.arange(500))
  fresh = memorisation.memorisation(rng.normal(size=(500, 8)), held_out, train)
  assert fresh.ratio == pytest.approx(1.0, abs=0.08)
  assert fresh.copy_share < 0.05
  # Half copies: the median moves, and about half the samples count as copies.
  half = memorisation.memorisation(np.concatenate([train[:250], rng.normal(size=(250, 8))]),
                                   held_out, train)
  assert half.copy_share == pytest.approx(0.5, abs=0.03)


def test_memorisation_refuses_a_held_out_set_inside_the_training_set():
  train = np.random.default_rng(10).normal(size=(100, 4))
  with pytest.raises(ValueError, match='they are training images'):
    memorisation.memorisation(train[:10], train[:50], train)


def _density_coverage_loops(generated, real, k):
  """Naeem et al.'s density and coverage, one pair at a time."""
  radii = _radius_loops(real, k)
  inside = [[float(np.sqrt(np.sum((y - x)**2))) <= r for x, r in zip(real, radii)]
            for y in generated]
  density = sum(sum(row) for row in inside) / (k * len(generated))
  coverage = sum(any(row[i] for row in inside) for i in range(len(real))) / len(real)
  return density, coverage


def test_density_coverage_match_the_loops():
  rng = np.random.default_rng(3)
  real, generated = rng.normal(size=(23, 4)), rng.normal(0.4, 1.3, size=(17, 4))
  for k in (1, 3, 5):
    assert density_coverage.density_coverage(generated, real, k) == pytest.approx(
        _density_coverage_loops(generated, real, k), abs=1e-12)
  # Radii computed once by the caller give the same figures.
  radii = density_coverage.real_radii(real)
  assert density_coverage.density_coverage(generated, real, squared_radii=radii) == \
      density_coverage.density_coverage(generated, real)
  # Blocks smaller than the set change nothing (each block's counts add up).
  many = rng.normal(size=(600, 4))
  assert density_coverage.density_coverage(many, real) == pytest.approx(
      _density_coverage_loops(many, real, 5), abs=1e-12)


def test_density_coverage_known_cases():
  rng = np.random.default_rng(4)
  real = rng.normal(size=(40, 6))
  # A set against itself: every ball holds its own centre, so coverage is 1.
  assert density_coverage.density_coverage(real, real)[1] == 1.0
  # Samples far from every real row: in no ball.
  assert density_coverage.density_coverage(real + 1e3, real) == (0.0, 0.0)
  # By hand, k = 5, real points 0..5 on a line: squared radii 25, 16, 9, 9, 16, 25 (the 5th
  # nearest other point). 2.5 lies in all six balls: density 6 / (5·1), coverage 6/6.
  # 10 lies only in the ball of 5 (distance 5 <= 5): density 1/5, coverage 1/6.
  line = np.arange(6.0)[:, None]
  np.testing.assert_allclose(density_coverage.real_radii(line), [25, 16, 9, 9, 16, 25])
  assert density_coverage.density_coverage(np.array([[2.5]]), line) == pytest.approx((1.2, 1.0))
  assert density_coverage.density_coverage(np.array([[10.0]]), line) == pytest.approx(
      (0.2, 1 / 6))
  # Both samples: counts add (7 ball memberships over k·M = 10), coverage still 6/6.
  assert density_coverage.density_coverage(np.array([[2.5], [10.0]]), line) == pytest.approx(
      (0.7, 1.0))
