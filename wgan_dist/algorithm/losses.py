"""WGAN-GP losses per example (Algorithm 1 of arXiv:1704.00028).

The loss functions (`gradient_penalty`, `critic_losses`, `generator_losses`) return per-example
values of shape [B] (a dict of them for the last two); the step averages them over the *global*
batch with `tf.nn.compute_average_loss`, so the result does not depend on how the batch is split
across replicas. `generator_inputs`, `generate` and `interpolate` build their inputs.

A class-conditional critic is read through the `conditioning.Conditioning` it was built with
(`conditioning` argument; default: unconditional), which says how it is called with the labels
and which extra terms it adds; nothing here guesses the kind from the model.
"""

from typing import Optional

import keras
import tensorflow as tf

from wgan_dist.algorithm import conditioning as conditioning_lib

# Added under the square root: d sqrt(s)/ds is infinite at s = 0, so a critic whose input
# gradient vanishes would otherwise turn the penalty's gradient into NaN.
_NORM_EPSILON = 1e-12


def generator_inputs(z: tf.Tensor, labels: Optional[tf.Tensor] = None):
  """What a generator is called with: z, or [z, labels] for a class-conditional one (both as
  tensors: Keras refuses a list mixing tensors and arrays)."""
  return z if labels is None else [tf.convert_to_tensor(z), tf.convert_to_tensor(labels)]


def generate(generator: keras.Model, z: tf.Tensor,
             labels: Optional[tf.Tensor] = None) -> tf.Tensor:
  """G(z), or G(z, y) for a class-conditional generator (labels int32 [B]); training mode."""
  return generator(generator_inputs(z, labels), training=True)


def interpolate(real: tf.Tensor, fake: tf.Tensor, epsilon: tf.Tensor) -> tf.Tensor:
  """x̂ = ε·real + (1 − ε)·fake, in float32; ε has shape [B, 1, 1, 1]."""
  real = tf.cast(real, tf.float32)
  fake = tf.cast(fake, tf.float32)
  epsilon = tf.cast(epsilon, tf.float32)
  return epsilon * real + (1.0 - epsilon) * fake


def gradient_penalty(critic: keras.Model, real: tf.Tensor, fake: tf.Tensor,
                     epsilon: tf.Tensor, inner_scale: float = 1.0,
                     labels: Optional[tf.Tensor] = None,
                     conditioning: conditioning_lib.Conditioning = conditioning_lib.NONE
                     ) -> tf.Tensor:
  """Per-example penalties (‖∇x̂ critic(x̂)‖₂ − 1)², shape [B].

  x̂ = epsilon·real + (1 − epsilon)·fake with epsilon of shape [B, 1, 1, 1]; the norm runs over
  every non-batch axis (all pixels and channels). Differentiating the batch sum of the critic's
  outputs yields each example's own input gradient because the critic must not mix examples
  (no batch norm). The norm and the penalty are formed in float32.

  `inner_scale` (1 unless the critic computes in float16) multiplies the critic's float32 output
  before the inner backward pass and is divided out of the gradient in float32, so small
  gradients survive float16; it is fixed, never the optimizer's dynamic loss scale.

  `labels` (class-conditional models, with the `conditioning` the critic was built with):
  real and fake of example i share label y_i, so x̂_i interpolates within a class and the
  gradient is that of the score D(·, y_i) (for an AC-GAN critic, of the score column only, as
  in the paper's code). Any Keras critic works, called before or not: only its output is read.
  """
  x_hat = interpolate(real, fake, epsilon)
  with tf.GradientTape() as tape:
    tape.watch(x_hat)
    # Summing inside the tape: the gradient of Σ_i D(x̂_i) w.r.t. x̂_i is ∇D(x̂_i).
    total_score = tf.reduce_sum(conditioning.outputs(critic, x_hat, labels)[0])
    total_score *= inner_scale
  grads = tape.gradient(total_score, x_hat)
  grads = tf.reshape(tf.cast(grads, tf.float32), [tf.shape(grads)[0], -1]) / inner_scale
  norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=1) + _NORM_EPSILON)
  return tf.square(norms - 1.0)


# The AC-GAN cross-entropy (kept under this name for callers of the flat layout).
classifier_loss = conditioning_lib.classifier_loss


def critic_losses(critic: keras.Model, real: tf.Tensor, fake: tf.Tensor, epsilon: tf.Tensor,
                  gp_lambda: float, inner_scale: float = 1.0, labels: Optional[tf.Tensor] = None,
                  classifier_weight: float = 0.0,
                  conditioning: conditioning_lib.Conditioning = conditioning_lib.NONE
                  ) -> dict[str, tf.Tensor]:
  """Per-example critic terms: L(i) = D(x̃) − D(x) + λ·gp(i), and its parts, each [B].

  Class-conditional: `labels` [B] are the real images' labels, which the fakes were generated
  for. The `conditioning`'s extra terms (AC-GAN: CE(logits(x), y) on the real images, as the
  paper's code does, term 'critic_classifier_loss') are added to L times `classifier_weight`.
  """
  real_scores, real_aux = conditioning.outputs(critic, real, labels)
  fake_scores, _ = conditioning.outputs(critic, fake, labels)
  penalty = gradient_penalty(critic, real, fake, epsilon, inner_scale, labels, conditioning)
  wasserstein = real_scores - fake_scores
  terms = {
      'critic_loss': -wasserstein + gp_lambda * penalty,
      'gradient_penalty': penalty,
      'wasserstein_estimate': wasserstein,
  }
  for name, values in conditioning.critic_terms(real_aux, labels).items():
    terms[name] = values
    terms['critic_loss'] += classifier_weight * values
  return terms


def generator_losses(critic: keras.Model, fake: tf.Tensor, labels: Optional[tf.Tensor] = None,
                     classifier_weight: float = 0.0,
                     conditioning: conditioning_lib.Conditioning = conditioning_lib.NONE
                     ) -> dict[str, tf.Tensor]:
  """Per-example generator terms, each [B]: 'generator_loss' −D(G(z)) (−D(G(z, y), y) for a
  conditional model), plus `classifier_weight` times each of the `conditioning`'s extra terms
  (AC-GAN: CE(logits(G(z, y)), y), term 'generator_classifier_loss')."""
  scores, aux = conditioning.outputs(critic, fake, labels)
  terms = {'generator_loss': -scores}
  for name, values in conditioning.generator_terms(aux, labels).items():
    terms[name] = values
    terms['generator_loss'] += classifier_weight * values
  return terms
