"""Sample-quality metrics on classifier outputs, in numpy float64.

`frechet_distance`: FID's formula (Heusel et al. 2017, TTUR) on any features,
  d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½).
  tr (Σ₁ Σ₂)^½ is taken as TF-GAN's `trace_sqrt_product` does, without scipy.linalg.sqrtm:
  Σ₁Σ₂ is similar to the symmetric PSD matrix A = Σ₁^½ Σ₂ Σ₁^½ (Σ₁^½ from a symmetric
  eigendecomposition), so tr (Σ₁Σ₂)^½ = Σᵢ √λᵢ(A). Eigenvalues a rounding error left below zero are
  clipped to zero (sqrtm would return a complex result there).
  From features with fewer samples than dimensions (1,000 Inception vectors of 2,048) the same
  trace is the sum of the singular values of the n1 x n2 cross product of the centred features
  (`frechet_distance_of_features`), far cheaper than two 2048x2048 eigendecompositions.
`classifier_score`: the Inception Score's formula on our classifier,
  exp(E_x KL(p(y|x) ‖ p(y))), p(y) the mean prediction: 1 for constant predictions, the number of
  classes for confident predictions spread evenly over all classes.
`class_histogram` / `min_class_share`: the share of samples whose most likely class is each
  digit (mode coverage), and the smallest share.
Class-conditional generators (samples asked for a label each):
`conditional_accuracy`: the share of samples whose most likely class is the label they were
  generated for.
`class_frechet_distances` / `intra_frechet_distance`: the Fréchet distance between each class's
  generated and real features, and its mean over the classes (intra-FID, Miyato & Koyama 2018).
  Each class's Gaussians come from that class's samples alone, so far fewer samples per fit than
  the unconditional distance has: the estimate is biased upwards, roughly by O(1/n) in the
  per-class sample count n (the evaluator's docstring gives the MNIST floor).
"""

import numpy as np


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean [D], covariance [D, D]) of features [N, D], in float64 (unbiased covariance)."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or len(features) < 2:
    raise ValueError(f'features must be [N >= 2, D], got shape {features.shape}')
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
  """Square root of a symmetric PSD matrix (negative rounding-error eigenvalues -> 0)."""
  eigenvalues, eigenvectors = np.linalg.eigh(matrix)
  return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """tr (Σ₁ Σ₂)^½ for symmetric PSD Σ₁, Σ₂ (module docstring)."""
  sqrt_sigma1 = _symmetric_sqrt(np.asarray(sigma1, np.float64))
  inner = sqrt_sigma1 @ np.asarray(sigma2, np.float64) @ sqrt_sigma1
  inner = (inner + inner.T) / 2  # Symmetric in exact arithmetic; remove the rounding skew.
  return float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0.0, None))))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """Squared Fréchet (2-Wasserstein) distance between N(μ₁, Σ₁) and N(μ₂, Σ₂)."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(f'mismatched statistics: means {mu1.shape} vs {mu2.shape}, covariances '
                     f'{sigma1.shape} vs {sigma2.shape}')
  distance = (np.sum((mu1 - mu2)**2) + np.trace(sigma1) + np.trace(sigma2)
              - 2.0 * trace_sqrt_product(sigma1, sigma2))
  # The exact value is >= 0; rounding can leave a tiny negative for identical statistics.
  return float(max(distance, 0.0))


def _trace_sqrt_product_of_features(features1: np.ndarray, features2: np.ndarray) -> float:
  """tr (Σ₁ Σ₂)^½ from the features themselves.

  With A = (X₁ − μ₁)/√(n₁−1) and B likewise, Σ₁ = AᵀA and Σ₂ = BᵀB; the nonzero eigenvalues of
  Σ₁Σ₂ = Aᵀ(A BᵀB) are those of (A BᵀB)Aᵀ = M Mᵀ with M = A Bᵀ [n₁, n₂], i.e. the squared
  singular values of M. So the trace is the sum of M's singular values.
  """
  a = (features1 - features1.mean(axis=0)) / np.sqrt(len(features1) - 1)
  b = (features2 - features2.mean(axis=0)) / np.sqrt(len(features2) - 1)
  return float(np.sum(np.linalg.svd(a @ b.T, compute_uv=False)))


def frechet_distance_of_features(features1: np.ndarray, features2: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to two feature sets [N1, D] and [N2, D].

  Equal to frechet_distance(*statistics(features1), *statistics(features2)); when a set has
  fewer samples than dimensions the trace term comes from the samples (module docstring).
  """
  features1 = np.asarray(features1, np.float64)
  features2 = np.asarray(features2, np.float64)
  mu1, sigma1 = statistics(features1)
  mu2, sigma2 = statistics(features2)
  if mu1.shape != mu2.shape:
    raise ValueError(f'mismatched features: {features1.shape} vs {features2.shape}')
  if min(len(features1), len(features2)) >= features1.shape[1]:
    return frechet_distance(mu1, sigma1, mu2, sigma2)
  distance = (np.sum((mu1 - mu2)**2) + np.trace(sigma1) + np.trace(sigma2)
              - 2.0 * _trace_sqrt_product_of_features(features1, features2))
  return float(max(distance, 0.0))  # As frechet_distance: rounding below an exact 0.


def classifier_score(probabilities: np.ndarray, eps: float = 1e-12) -> float:
  """exp(mean_i KL(p(y|x_i) ‖ mean_j p(y|x_j))) of probabilities [N, K] (rows sum to 1)."""
  p = np.asarray(probabilities, np.float64)
  if p.ndim != 2 or len(p) == 0:
    raise ValueError(f'probabilities must be [N >= 1, K], got shape {p.shape}')
  marginal = p.mean(axis=0, keepdims=True)
  # 0 · log 0 = 0: eps only keeps the log finite where p is 0.
  kl = np.sum(p * (np.log(p + eps) - np.log(marginal + eps)), axis=1)
  return float(np.exp(kl.mean()))


def class_histogram(probabilities: np.ndarray) -> np.ndarray:
  """Share of samples [K] (float64, sums to 1) whose most probable class is each class."""
  p = np.asarray(probabilities)
  counts = np.bincount(np.argmax(p, axis=1), minlength=p.shape[1])
  return counts.astype(np.float64) / len(p)


def min_class_share(histogram: np.ndarray) -> float:
  """The rarest class's share: 0 when a class (mode) is missing, 1/K when perfectly even."""
  return float(np.min(histogram))


def conditional_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
  """Share of samples whose most probable class is their requested label (probabilities
  [N, K'], labels int [N])."""
  p, labels = np.asarray(probabilities), np.asarray(labels)
  if p.ndim != 2 or labels.shape != (len(p),) or len(p) == 0:
    raise ValueError(f'probabilities [N >= 1, K] and labels [N] needed, got shapes {p.shape} '
                     f'and {labels.shape}')
  return float(np.mean(np.argmax(p, axis=1) == labels))


def class_frechet_distances(features1: np.ndarray, labels1: np.ndarray, features2: np.ndarray,
                            labels2: np.ndarray, num_classes: int) -> np.ndarray:
  """Fréchet distance [K] (float64) between the features of each class k in set 1 (rows with
  labels1 == k) and in set 2; every class needs at least 2 rows on each side."""
  features1, features2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
  labels1, labels2 = np.asarray(labels1), np.asarray(labels2)
  if labels1.shape != (len(features1),) or labels2.shape != (len(features2),):
    raise ValueError(f'one label per feature row needed: features {features1.shape}, labels '
                     f'{labels1.shape}; features {features2.shape}, labels {labels2.shape}')
  distances = np.zeros(num_classes, np.float64)
  for k in range(num_classes):
    rows1, rows2 = features1[labels1 == k], features2[labels2 == k]
    if min(len(rows1), len(rows2)) < 2:
      raise ValueError(f'class {k} has {len(rows1)} and {len(rows2)} samples; a covariance '
                       'needs at least 2 on each side')
    distances[k] = frechet_distance_of_features(rows1, rows2)
  return distances


def intra_frechet_distance(features1: np.ndarray, labels1: np.ndarray, features2: np.ndarray,
                           labels2: np.ndarray, num_classes: int) -> float:
  """Intra-FID: the mean over classes of `class_frechet_distances`."""
  return float(np.mean(class_frechet_distances(features1, labels1, features2, labels2,
                                               num_classes)))


def split_scores(probabilities: np.ndarray, splits: int = 1) -> tuple[float, float]:
  """(mean, standard deviation) of `classifier_score` over `splits` consecutive parts of the
  rows, part i being rows [i·N // splits, (i + 1)·N // splits), as Salimans et al.'s
  inception_score.py reports the Inception Score (10 splits, population std); (score, 0.0) for
  one split."""
  p = np.asarray(probabilities, np.float64)
  if not 1 <= splits <= len(p):
    raise ValueError(f'splits={splits} needs 1 <= splits <= N={len(p)} rows')
  scores = [classifier_score(p[i * len(p) // splits:(i + 1) * len(p) // splits])
            for i in range(splits)]
  return float(np.mean(scores)), float(np.std(scores))
