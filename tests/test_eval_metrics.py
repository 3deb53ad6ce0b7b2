"""The metric math of wgan_dist/eval/metrics.py against closed forms (numpy only, fast)."""

import numpy as np
import pytest

from wgan_dist.eval import metrics


def _gaussian_closed_form(mu1, var1, mu2, var2) -> float:
  """Fréchet distance of N(mu1, diag var1) and N(mu2, diag var2)."""
  return float(np.sum((mu1 - mu2)**2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2)))


def _random_orthogonal(dim: int, rng) -> np.ndarray:
  q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
  return q * np.sign(np.diag(r))


def test_a_set_against_itself_is_zero():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(2000, 16)) @ rng.normal(size=(16, 16))  # Correlated features.
  assert metrics.frechet_distance_of_features(features, features) == pytest.approx(0, abs=1e-6)


def test_matches_the_closed_form_for_diagonal_gaussians():
  rng = np.random.default_rng(1)
  mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
  var1, var2 = rng.uniform(0.1, 3, size=8), rng.uniform(0.1, 3, size=8)
  expected = _gaussian_closed_form(mu1, var1, mu2, var2)
  assert metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(
      expected, rel=1e-10)
  # The distance is rotation invariant: rotated, both covariances are full and do not commute
  # with the coordinate axes, and the trace term needs a real matrix square root.
  q = _random_orthogonal(8, rng)
  rotated = metrics.frechet_distance(q @ mu1, q @ np.diag(var1) @ q.T, q @ mu2,
                                     q @ np.diag(var2) @ q.T)
  assert rotated == pytest.approx(expected, rel=1e-9)


def test_general_covariances_agree_with_scipy_sqrtm():
  linalg = pytest.importorskip('scipy.linalg')
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
  sigma1, sigma2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
  expected = float(np.real(np.trace(linalg.sqrtm(sigma1 @ sigma2))))
  assert metrics.trace_sqrt_product(sigma1, sigma2) == pytest.approx(expected, rel=1e-9)


def test_sampled_gaussians_approach_the_closed_form():
  rng = np.random.default_rng(3)
  mu1, mu2 = np.zeros(4), np.array([1.0, -0.5, 0.0, 2.0])
  var1, var2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([0.5, 2.0, 2.0, 0.25])
  x = mu1 + np.sqrt(var1) * rng.normal(size=(200_000, 4))
  y = mu2 + np.sqrt(var2) * rng.normal(size=(200_000, 4))
  expected = _gaussian_closed_form(mu1, var1, mu2, var2)  # 5.75
  assert metrics.frechet_distance_of_features(x, y) == pytest.approx(expected, rel=0.01)


def test_grows_with_a_mean_shift():
  rng = np.random.default_rng(4)
  base = rng.normal(size=(5000, 8))
  distances = [metrics.frechet_distance_of_features(base, rng.normal(size=(5000, 8)) + shift)
               for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
  assert all(a < b for a, b in zip(distances, distances[1:])), distances
  # With identical statistics but the mean, the distance is exactly the squared shift.
  mu, sigma = metrics.statistics(base)
  assert metrics.frechet_distance(mu, sigma, mu + 1.5, sigma) == pytest.approx(8 * 1.5**2)


def test_rank_deficient_covariances_stay_finite_and_non_negative():
  rng = np.random.default_rng(5)
  few = rng.normal(size=(10, 64))  # 10 samples of 64 features: covariance of rank 9.
  distance = metrics.frechet_distance_of_features(few, rng.normal(size=(10, 64)))
  assert np.isfinite(distance) and distance >= 0


def test_classifier_score_of_one_hot_uniform_predictions_is_the_class_count():
  one_hot = np.eye(10)[np.arange(1000) % 10]
  assert metrics.classifier_score(one_hot) == pytest.approx(10, rel=1e-9)
  assert metrics.classifier_score(np.eye(10)[np.arange(1000) % 5]) == pytest.approx(5, rel=1e-9)


def test_classifier_score_of_constant_predictions_is_one():
  rng = np.random.default_rng(6)
  p = rng.dirichlet(np.ones(10))
  assert metrics.classifier_score(np.tile(p, (100, 1))) == pytest.approx(1, rel=1e-9)
  assert metrics.classifier_score(np.full((100, 10), 0.1)) == pytest.approx(1, rel=1e-9)


def test_class_histogram_and_min_share():
  labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
  probabilities = np.eye(4)[labels] * 0.7 + 0.075  # argmax = label; class 3 never wins.
  histogram = metrics.class_histogram(probabilities)
  np.testing.assert_allclose(histogram, [0.5, 0.3, 0.2, 0.0])
  assert metrics.min_class_share(histogram) == 0.0
  assert metrics.min_class_share(metrics.class_histogram(np.eye(10))) == pytest.approx(0.1)
