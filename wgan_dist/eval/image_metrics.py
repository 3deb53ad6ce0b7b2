"""Metrics on the generated images themselves (not on features): the evaluator's per-batch hook.

An `ImageMetric` runs inside the evaluator's generation pass, on each replica, on the batch that
replica has just generated: `per_image(images)` gets the quantised images [b, H, W, C] (float32
in [-1, 1], exactly what the feature network sees, protocol.py) and returns one value per image
([b], or [b, K] for K numbers per image), traced into the same tf.function as generation and
the features. Only those values leave the replica, gathered in global order as the features
are, so the metric costs no second generation pass and N images never exist at once on the
host. `reduce(values)` (numpy, on the host, all N rows) makes the scalar; means and standard
deviations over noise draws, TensorBoard, the HParams columns, `evaluate`'s JSON and
eval/records.jsonl then carry its tag like any other eval/* figure.

    image_metrics.register(image_metrics.ImageMetric(
        tag='eval/mean_intensity', per_image=lambda images: tf.reduce_mean(images, [1, 2, 3])))

IMAGE_METRICS is the registry: name (the tag) -> metric. An Evaluator takes the metrics
registered when it is built whose `applies(config)` is true; docs/extending.md has a worked
example.
"""

import dataclasses
from typing import Callable

import ml_collections
import numpy as np
import tensorflow as tf


def _mean(values: np.ndarray) -> float:
  return float(np.mean(values))


def _always(config: ml_collections.ConfigDict) -> bool:
  del config
  return True


@dataclasses.dataclass(frozen=True)
class ImageMetric:
  """One figure computed from the generated images (module docstring)."""
  tag: str  # 'eval/<name>'
  # images [b, H, W, C] float32 in [-1, 1] -> values [b] or [b, K]; runs on the replica.
  per_image: Callable[[tf.Tensor], tf.Tensor]
  # values [N] or [N, K] (numpy, every sample of one noise draw) -> the scalar.
  reduce: Callable[[np.ndarray], float] = _mean
  # Whether an evaluation of `config` computes it (e.g. RGB data only).
  applies: Callable[[ml_collections.ConfigDict], bool] = _always


IMAGE_METRICS: dict[str, ImageMetric] = {}


def register(metric: ImageMetric) -> ImageMetric:
  """Adds `metric` to IMAGE_METRICS (its tag must be new and start with 'eval/')."""
  if not metric.tag.startswith('eval/') or metric.tag in IMAGE_METRICS:
    raise ValueError(f'image metric tag {metric.tag!r} is not allowed; allowed: a new tag '
                     f'starting with eval/ (taken: {sorted(IMAGE_METRICS)})')
  IMAGE_METRICS[metric.tag] = metric
  return metric


def active(config: ml_collections.ConfigDict) -> tuple[ImageMetric, ...]:
  """The registered metrics an evaluation of `config` computes, in registration order."""
  return tuple(metric for metric in IMAGE_METRICS.values() if metric.applies(config))
