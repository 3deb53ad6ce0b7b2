"""Memorisation: are generated samples closer to the training images than real images are?

For each generated sample, the Euclidean distance (in the features FID uses) to its nearest
training image; for each held-out real image, the same. A generator that copies training
images puts its samples at distance ~0 from them, while held-out images of the same
distribution sit at a typical nearest-neighbour distance. So

  ratio = median nearest-training distance of the generated samples
          / median nearest-training distance of the held-out real images

is ~1 for a generator that draws new images from the data distribution, and well below 1 for
one that copies (~0 for exact copies). The median, so that a few outliers (blurry samples far
from everything) do not hide a majority of copies. `copy_share` adds the share of generated
samples nearer to a training image than the held-out images' 1st percentile of that distance:
~0.01 for a generator like the data, more when some samples are copies. The comparison is
meaningful only when the held-out images were never trained on.
"""

import dataclasses

import numpy as np

from wgan_dist.eval import distances

COPY_PERCENTILE = 1.0


@dataclasses.dataclass(frozen=True)
class Memorisation:
  """Nearest-training-image distances of generated and held-out real features."""
  generated_distances: np.ndarray  # [N generated] float64.
  generated_nearest: np.ndarray  # [N generated] index of each sample's nearest training image.
  held_out_distances: np.ndarray  # [N held out] float64.

  @property
  def ratio(self) -> float:
    """Median generated distance / median held-out distance (module docstring)."""
    return float(np.median(self.generated_distances) / np.median(self.held_out_distances))

  @property
  def copy_share(self) -> float:
    """Share of generated samples nearer to training data than the held-out 1st percentile."""
    threshold = np.percentile(self.held_out_distances, COPY_PERCENTILE)
    return float(np.mean(self.generated_distances < threshold))


def memorisation(generated: np.ndarray, held_out: np.ndarray,
                 train: np.ndarray) -> Memorisation:
  """Nearest training rows of `generated` and `held_out` features [N, D] among `train`'s."""
  generated = distances.as_features(generated, 'generated features')
  held_out = distances.as_features(held_out, 'held-out features')
  train = distances.as_features(train, 'training features')
  generated_distances, nearest = distances.nearest(generated, train)
  held_out_distances, _ = distances.nearest(held_out, train)
  if np.median(held_out_distances) <= 0:
    raise ValueError('the held-out images have a median distance of 0 to the training images: '
                     'they are training images, so memorisation cannot be measured against them')
  return Memorisation(generated_distances, nearest, held_out_distances)
