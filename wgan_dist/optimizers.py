"""Adam for the critic and the generator, fed gradients the step has already summed across
replicas.

The step all-reduces each gradient itself so that it can log the norm of the gradient that is
actually applied (the sum over replicas, not one replica's share). Keras 3's TensorFlow
optimizers all-reduce (SUM) again inside `apply`; this subclass turns that second reduction off,
so every replica applies the same, once-summed gradient. The 1-vs-2-replica tests fail if it
ever stops doing so.
"""

import keras
import ml_collections


class AdamOnSummedGradients(keras.optimizers.Adam):
  """keras.optimizers.Adam whose `apply` takes gradients already summed over replicas."""

  def _all_reduce_sum_gradients(self, grads_and_vars):
    return list(grads_and_vars)


if not hasattr(keras.optimizers.Adam, '_all_reduce_sum_gradients'):
  # The override above would be dead and 2 replicas would apply twice the gradient.
  raise ImportError('This Keras version has no Optimizer._all_reduce_sum_gradients; '
                    'wgan_dist.optimizers must be adapted to it')


def make_adam(train_config: ml_collections.ConfigDict, name: str) -> keras.optimizers.Optimizer:
  """Adam(lr, beta1, beta2) from `config.train`; create under the strategy scope."""
  return AdamOnSummedGradients(learning_rate=train_config.learning_rate,
                               beta_1=train_config.beta1, beta_2=train_config.beta2, name=name)
