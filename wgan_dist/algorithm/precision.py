"""Mixed precision: PRECISIONS, the registry of `mixed_precision` (each name is the Keras dtype
policy the models are built under), and loss scaling.

`mixed_float16` wraps both optimizers in Keras' dynamic `LossScaleOptimizer`: the total loss is
scaled once for the outer gradient, which the optimizer unscales, and a step whose gradients are
not finite is skipped (and the scale halved). The gradient penalty stays outside that dynamic
scale: its inner gradient ∇x̂ D(x̂) is taken of the float32 critic output times a *fixed* factor
(against fp16 underflow in the backward pass), divided back out in float32, and its norm and
square are formed in float32. `mixed_bfloat16` has float32's exponent range and needs no scaling.
"""

import contextlib
import dataclasses
from typing import Iterator

import keras

from wgan_dist.config import registry

@dataclasses.dataclass(frozen=True)
class Precision:
  """What `mixed_precision` names (the name is also the Keras dtype policy)."""
  # Wrap the optimizers in a dynamic LossScaleOptimizer.
  loss_scaling: bool
  # Fixed scale of the penalty's inner gradient (then divided out; module docstring).
  inner_gradient_scale: float


# Under float16 the per-pixel input gradients of a 1-Lipschitz critic are ~1/sqrt(pixels) and
# the activations' gradients deeper in the net are of the same order, so 2^7 lifts them far
# above fp16's subnormal range (6e-8) while leaving values up to ~500 far from its maximum
# (65504). float32 and bfloat16 need no scale.
PRECISIONS: registry.Registry[Precision] = registry.Registry('mixed_precision', {
    'float32': Precision(loss_scaling=False, inner_gradient_scale=1.0),
    'mixed_float16': Precision(loss_scaling=True, inner_gradient_scale=2.0**7),
    'mixed_bfloat16': Precision(loss_scaling=False, inner_gradient_scale=1.0),
})


def uses_loss_scaling(precision: str) -> bool:
  return PRECISIONS.get(precision).loss_scaling


def inner_gradient_scale(precision: str) -> float:
  """The fixed factor the penalty's inner gradient is computed at (then divided out)."""
  return PRECISIONS.get(precision).inner_gradient_scale


@contextlib.contextmanager
def policy_scope(precision: str) -> Iterator[None]:
  """Layers created inside compute in `precision`'s dtype; the global policy is restored after."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(precision)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def wrap_optimizer(optimizer: keras.optimizers.Optimizer, precision: str,
                   initial_scale: float) -> keras.optimizers.Optimizer:
  """A dynamic LossScaleOptimizer around `optimizer` under mixed_float16, else `optimizer`."""
  if uses_loss_scaling(precision):
    return keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=initial_scale,
                                               name=f'{optimizer.name}_loss_scale')
  return optimizer


def loss_scale(optimizer: keras.optimizers.Optimizer):
  """The optimizer's current dynamic loss scale (a variable), or None without scaling."""
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return optimizer.dynamic_scale
  return None
