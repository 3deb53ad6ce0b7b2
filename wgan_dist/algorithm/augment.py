"""Differentiable augmentation of every image the critic sees, for small data sets.

On a few hundred or thousand images the critic memorises the training set and the generator's
quality collapses. DiffAugment (Zhao et al. 2020) transforms the real images *and* the
generated ones with random transforms T that the generator's gradient passes through, so the
critic compares T(x) with T(G(z)) and cannot learn the training images by heart, while matching
T(G(z)) to T(x) still matches G(z) to x. As in ADA (Karras et al. 2020), each transform is
applied to each image with probability p (`augment.p`, or adapted during training:
training/augment_action.py).

`TRANSFORMS` is the registry of `augment.policy`, a comma list of its names ('' = off):
- 'translation': shift by up to 1/8 of the image size in each direction, whole pixels, the
  uncovered border filled with 0 (mid-grey in [-1, 1]);
- 'cutout': a square of half the image size, at a random centre, set to 0;
- 'color': brightness (+U[-0.5, 0.5)), saturation (× U[0, 2) around each pixel's channel mean),
  contrast (× U[0.5, 1.5) around the image's mean), in that order; 3-channel images only.
Whatever the order in the policy, transforms run in the registry's order (colour, translation,
cutout), as DiffAugment does. Given its random parameters, each transform is an affine map of
the image (the means are linear in it; brightness adds a constant), so its gradient is exact and the generator's update goes
through it (tests/test_augment.py checks the adjoint and the float64 reference of each).

Randomness: every parameter, and the draw that decides whether a transform applies, is drawn
for the *global* batch from one stateless key per (seed, step, critic iteration, purpose)
(random_keys.py) and sliced per replica, like the noise: an image's transform depends on its
global index only, so 1 and 2 replicas, several workers and a resumed run augment alike.
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from wgan_dist.algorithm import random_keys
from wgan_dist.config import registry

# DiffAugment's defaults: translation up to 1/8 of the size, cutout of half the size.
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


@dataclasses.dataclass(frozen=True)
class Transform:
  """One augmentation.

  `draw(key, batch, height, width)` -> {name: tensor with the batch as first axis}: the random
  parameters of a global batch; `apply(images, params)` -> the images, each transformed with its
  own row of the parameters (float32 [B, H, W, C] in and out).
  """
  draw: Callable[[tf.Tensor, int, int, int], dict[str, tf.Tensor]]
  apply: Callable[[tf.Tensor, dict[str, tf.Tensor]], tf.Tensor]
  # Needs colour (3-channel) images.
  needs_color: bool = False


def _uniform(key: tf.Tensor, shape: list[int], minval: float = 0.0,
             maxval: float = 1.0) -> tf.Tensor:
  return tf.random.stateless_uniform(shape, seed=key, minval=minval, maxval=maxval)


def _draw_color(key: tf.Tensor, batch: int, height: int, width: int) -> dict[str, tf.Tensor]:
  del height, width
  keys = tf.random.experimental.stateless_split(key, 3)
  return {'brightness': _uniform(keys[0], [batch], -0.5, 0.5),
          'saturation': _uniform(keys[1], [batch], 0.0, 2.0),
          'contrast': _uniform(keys[2], [batch], 0.5, 1.5)}


def _apply_color(images: tf.Tensor, params: dict[str, tf.Tensor]) -> tf.Tensor:
  def per_image(name: str) -> tf.Tensor:
    return params[name][:, tf.newaxis, tf.newaxis, tf.newaxis]
  images = images + per_image('brightness')
  mean = tf.reduce_mean(images, axis=3, keepdims=True)
  images = (images - mean) * per_image('saturation') + mean
  mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
  return (images - mean) * per_image('contrast') + mean


def _shift_limit(size: int) -> int:
  return int(size * TRANSLATION_RATIO + 0.5)


def _draw_translation(key: tf.Tensor, batch: int, height: int,
                      width: int) -> dict[str, tf.Tensor]:
  keys = tf.random.experimental.stateless_split(key, 2)

  def shift(k: tf.Tensor, size: int) -> tf.Tensor:
    limit = _shift_limit(size)
    return tf.random.stateless_uniform([batch], seed=k, minval=-limit, maxval=limit + 1,
                                       dtype=tf.int32)
  return {'dy': shift(keys[0], height), 'dx': shift(keys[1], width)}


def _apply_translation(images: tf.Tensor, params: dict[str, tf.Tensor]) -> tf.Tensor:
  """out[y, x] = image[y + dy, x + dx], 0 where that falls outside the image."""
  height, width = images.shape[1], images.shape[2]
  # One row and column of zeros around the image; indices outside it are clipped onto them.
  padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
  rows = tf.clip_by_value(tf.range(height)[tf.newaxis] + params['dy'][:, tf.newaxis] + 1,
                          0, height + 1)
  cols = tf.clip_by_value(tf.range(width)[tf.newaxis] + params['dx'][:, tf.newaxis] + 1,
                          0, width + 1)
  shifted = tf.gather(padded, rows, axis=1, batch_dims=1)  # [B, H, W + 2, C]
  return tf.gather(shifted, cols, axis=2, batch_dims=1)


def _cutout_size(size: int) -> int:
  return int(size * CUTOUT_RATIO + 0.5)


def _draw_cutout(key: tf.Tensor, batch: int, height: int, width: int) -> dict[str, tf.Tensor]:
  keys = tf.random.experimental.stateless_split(key, 2)

  def centre(k: tf.Tensor, size: int) -> tf.Tensor:
    # DiffAugment's range: any centre whose square overlaps the image by at least half.
    return tf.random.stateless_uniform([batch], seed=k, minval=0,
                                       maxval=size + (1 - _cutout_size(size) % 2),
                                       dtype=tf.int32)
  return {'cy': centre(keys[0], height), 'cx': centre(keys[1], width)}


def _apply_cutout(images: tf.Tensor, params: dict[str, tf.Tensor]) -> tf.Tensor:
  """Zeroes rows [cy − s//2, cy − s//2 + s) × columns [cx − s//2, cx − s//2 + s), s the
  cutout size (clipped to the image)."""
  height, width = images.shape[1], images.shape[2]

  def inside(centre: tf.Tensor, size: int) -> tf.Tensor:  # bool [B, size]
    cut = _cutout_size(size)
    start = centre[:, tf.newaxis] - cut // 2
    positions = tf.range(size)[tf.newaxis]
    return tf.logical_and(positions >= start, positions < start + cut)

  rows, cols = inside(params['cy'], height), inside(params['cx'], width)
  cut = tf.logical_and(rows[:, :, tf.newaxis], cols[:, tf.newaxis, :])
  return images * tf.cast(tf.logical_not(cut), images.dtype)[..., tf.newaxis]


# augment.policy: the transforms, in the order they are applied (module docstring).
TRANSFORMS: registry.Registry[Transform] = registry.Registry('augment.policy', {
    'color': Transform(_draw_color, _apply_color, needs_color=True),
    'translation': Transform(_draw_translation, _apply_translation),
    'cutout': Transform(_draw_cutout, _apply_cutout),
})


def parse_policy(policy: str) -> tuple[str, ...]:
  """The transform names of a policy string ('' = none), in the order they are applied.

  Trusts a validated config (config/validation.py refuses unknown names with one line)."""
  names = {name.strip() for name in policy.split(',') if name.strip()}
  return tuple(name for name in TRANSFORMS.names if name in names)


def draw(policy: tuple[str, ...], key: tf.Tensor, global_batch: int, height: int,
         width: int) -> dict[str, dict[str, tf.Tensor]]:
  """The parameters of a global batch for each transform of `policy`, and under 'apply_draw'
  a uniform [0, 1) per image: the transform applies where it is below p."""
  params = {}
  for index, name in enumerate(TRANSFORMS.names):
    if name not in policy:
      continue
    # Each transform its own stream, fixed by its place in the registry, so adding a transform
    # to a policy does not change the others' draws.
    transform_key = tf.random.experimental.stateless_fold_in(key, index)
    apply_key, param_key = tf.unstack(tf.random.experimental.stateless_split(transform_key, 2))
    params[name] = dict(TRANSFORMS.get(name).draw(param_key, global_batch, height, width),
                        apply_draw=_uniform(apply_key, [global_batch]))
  return params


def apply(images: tf.Tensor, params: dict[str, dict[str, tf.Tensor]], p: tf.Tensor) -> tf.Tensor:
  """`images` [B, H, W, C] with each transform of `params` (rows aligned with the images)
  applied to the images whose draw is below `p`; computed in float32, returned in the images'
  dtype."""
  dtype = images.dtype
  images = tf.cast(images, tf.float32)
  p = tf.cast(p, tf.float32)
  for name in TRANSFORMS.names:
    if name not in params:
      continue
    chosen = params[name]['apply_draw'] < p
    transformed = TRANSFORMS.get(name).apply(images, params[name])
    images = tf.where(chosen[:, tf.newaxis, tf.newaxis, tf.newaxis], transformed, images)
  return tf.cast(images, dtype)


def augment(images: tf.Tensor, *, policy: tuple[str, ...], p: tf.Tensor, key: tf.Tensor,
            global_batch: int) -> tf.Tensor:
  """This replica's `images` (a slice of a global batch of `global_batch`), augmented by
  `policy` with probability `p` per image per transform; the draws keyed by `key` for the whole
  global batch (module docstring). Call in a replica context (or outside any strategy)."""
  if not policy:
    return images
  # From the replica count, not images.shape[0]: a multi-worker input pipeline's batches have no
  # static batch size.
  per_replica = global_batch // tf.distribute.get_replica_context().num_replicas_in_sync
  params = draw(policy, key, global_batch, images.shape[1], images.shape[2])
  local = tf.nest.map_structure(lambda value: random_keys.replica_slice(value, per_replica),
                                params)
  return apply(images, local, p)
