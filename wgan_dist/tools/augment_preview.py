"""What the critic sees under augmentation: a grid of real training images, one row per
transform and one for the whole policy, each at p = 1 (`python -m wgan_dist.augment_preview`)."""

import ml_collections
import numpy as np
import tensorflow as tf

from wgan_dist.algorithm import augment
from wgan_dist.algorithm import random_keys
from wgan_dist.data import images as image_lib
from wgan_dist.data import input_pipeline
from wgan_dist.data import sources
from wgan_dist.eval import reference


def rows(config: ml_collections.ConfigDict) -> list[tuple[str, tuple[str, ...]]]:
  """[(row title, policy)]: the originals, each transform the data's channels allow, then the
  config's policy (or, when it is '', every allowed transform together)."""
  allowed = tuple(name for name in augment.TRANSFORMS.names
                  if config.data.channels == 3 or not augment.TRANSFORMS.get(name).needs_color)
  policy = augment.parse_policy(config.augment.policy) or allowed
  return ([('original', ())] + [(name, (name,)) for name in allowed] +
          [(' + '.join(policy), policy)])


def preview(config: ml_collections.ConfigDict, num_images: int = 8) -> tuple[np.ndarray, list]:
  """(uint8 grid [rows·H, num_images·W, C], the row titles): `num_images` training images of
  `config`'s data, evenly spaced through its stored order, augmented by each row's policy with p = 1 (fresh draws per row,
  keyed by the config's seed)."""
  source = reference.trained_on(config, sources.load_source(config))
  count = min(num_images, source.size)
  unlabelled = config.copy_and_resolve_references()
  unlabelled.model.num_classes = 0
  # Evenly spaced through the stored order: sources stored by class show several classes.
  spread = source.subset(np.linspace(0, source.size - 1, count).astype(np.int64))
  originals, _ = input_pipeline.preprocessed(spread, unlabelled)
  layout = rows(config)
  grid_images = []
  for index, (_, policy) in enumerate(layout):
    key = random_keys.key(config.seed, index, 0, random_keys.SAMPLE_NOISE)
    grid_images.append(augment.augment(tf.constant(originals), policy=policy,
                                       p=tf.constant(1.0), key=key, global_batch=count).numpy())
  return image_lib.to_grid(np.concatenate(grid_images), rows=len(layout)), [t for t, _ in layout]
