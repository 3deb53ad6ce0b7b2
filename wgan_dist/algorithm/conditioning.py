"""How the critic uses the class label: one object, chosen once from the config, that owns the
critic's head, how the critic is called and read, its extra loss terms and their metric names.

- `NONE` (unconditional, `model.num_classes` = 0): the critic maps an image to a score [B, 1].
- 'acgan' (the paper's conditional code): image -> [B, 1 + K], column 0 the Wasserstein score,
  then an auxiliary classifier's K logits; the critic update adds the cross-entropy of the
  logits of the real images ('critic_classifier_loss'), the generator update that of its fakes
  ('generator_classifier_loss'), each weighted by train.acgan_*_weight.
- 'projection' (Miyato & Koyama 2018): [image, label] -> psi(phi(x)) + <embed(y), phi(x)>, [B, 1];
  no extra terms.

`from_config(config)` picks the object; CONDITIONINGS is the registry of `model.conditioning`
(its names are the field's allowed values). Nothing here reads the kind from a model's inputs or
output shape: the caller says which conditioning a critic was built with.

A new conditioning is a subclass of `Conditioning` with its head and, when it has them, its
extra terms, plus one entry in CONDITIONINGS (docs/extending.md).
"""

from typing import Callable, Optional

import keras
import ml_collections
import tensorflow as tf
from keras import layers
from keras import ops

from wgan_dist.config import registry


@keras.saving.register_keras_serializable(package='wgan_dist')
class ClassProjection(layers.Layer):
  """<embed(y), phi> per example, float32 [B, 1]: the projection critic's class term.

  Inputs [phi (float [B, D]), labels (int32 [B])]; embed is a [num_classes, D] table (Glorot
  uniform, as the projection discriminator's reference code initialises it). Each output row
  reads only its own example's phi and label.
  """

  def __init__(self, num_classes: int, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes

  def build(self, input_shape):
    features_shape, _ = input_shape
    self.embed = self.add_weight(shape=(self.num_classes, features_shape[-1]),
                                 initializer='glorot_uniform', name='embed', autocast=False)

  def call(self, inputs):
    features, labels = inputs
    rows = ops.take(ops.cast(self.embed, 'float32'), ops.cast(labels, 'int32'), axis=0)
    return ops.sum(rows * ops.cast(features, 'float32'), axis=-1, keepdims=True)

  def compute_output_shape(self, input_shape):
    return (input_shape[0][0], 1)

  def get_config(self):
    return {**super().get_config(), 'num_classes': self.num_classes}


def classifier_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """Per-example cross-entropy of class logits [B, K] against `labels` [B], [B]."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32),
                                                         logits=logits)


# make_dense(units, name) -> a float32 Dense layer with the architecture's initializer.
MakeDense = Callable[[int, str], layers.Layer]


class Conditioning:
  """Unconditional: image -> score [B, 1], no labels, no extra terms. Subclasses override.

  `critic_metrics` / `generator_metrics`: the names of the extra per-example terms that
  `critic_terms` / `generator_terms` return (each added to its loss times the update's weight),
  which the steps then report as metrics of that update.
  """
  name = 'none'
  # Whether the critic reads labels. It holds exactly when model.num_classes > 0 (from_config
  # checks), which is what the data pipeline and the generators decide by.
  conditional = False
  critic_metrics: tuple[str, ...] = ()
  generator_metrics: tuple[str, ...] = ()

  def critic_head(self, image: keras.KerasTensor, features: keras.KerasTensor, num_classes: int,
                  dense: MakeDense, name: str) -> keras.Model:
    """The critic from its image input and trunk features phi (the vector its last Dense
    reads); the output layers are float32 whatever the policy."""
    del num_classes  # Unconditional.
    return keras.Model(image, dense(1, 'score')(features), name=name)

  def _call(self, critic: keras.Model, images: tf.Tensor,
            labels: Optional[tf.Tensor]) -> tf.Tensor:
    del labels
    return critic(images, training=True)

  def outputs(self, critic: keras.Model, images: tf.Tensor,
              labels: Optional[tf.Tensor] = None) -> tuple[tf.Tensor, Optional[tf.Tensor]]:
    """(scores [B], what the extra terms read or None), float32, the critic in training mode.

    Works on any Keras critic (Sequential, functional or subclassed, called before or not):
    nothing is read from the model but its output.
    """
    if self.conditional and labels is None:
      raise ValueError(f'model.conditioning={self.name!r} is class-conditional '
                       '(model.num_classes > 0): it needs the labels of the images it scores')
    if not self.conditional and labels is not None:
      raise ValueError(f'labels given to the unconditional conditioning {self.name!r}: pass the '
                       "critic's conditioning (conditioning=..., algorithm/conditioning.py)")
    outputs = tf.cast(self._call(critic, images, labels), tf.float32)
    return self._split(critic, outputs)

  def _split(self, critic: keras.Model, outputs: tf.Tensor):
    if outputs.shape.rank != 2 or outputs.shape[-1] != 1:
      raise ValueError(
          f'critic {critic.name!r} returned shape {outputs.shape}; allowed: [B, 1], one score '
          f'per example, under model.conditioning={self.name!r}')
    return outputs[:, 0], None

  def critic_terms(self, real_aux, labels) -> dict[str, tf.Tensor]:
    """Extra per-example terms of the critic update, from the real images' `outputs`[1]."""
    del real_aux, labels
    return {}

  def generator_terms(self, fake_aux, labels) -> dict[str, tf.Tensor]:
    """Extra per-example terms of the generator update, from the fakes' `outputs`[1]."""
    del fake_aux, labels
    return {}

  def __repr__(self) -> str:
    return f'<conditioning {self.name!r}>'


class ACGAN(Conditioning):
  """An auxiliary classifier beside the score: image -> [B, 1 + K] (score, then K logits)."""
  name = 'acgan'
  conditional = True
  critic_metrics = ('critic_classifier_loss',)
  generator_metrics = ('generator_classifier_loss',)

  def critic_head(self, image, features, num_classes, dense, name):
    return keras.Model(image, dense(1 + num_classes, 'score_and_logits')(features), name=name)

  def _split(self, critic, outputs):
    del critic
    return outputs[:, 0], outputs[:, 1:]

  def critic_terms(self, real_aux, labels):
    return {'critic_classifier_loss': classifier_loss(real_aux, labels)}

  def generator_terms(self, fake_aux, labels):
    return {'generator_classifier_loss': classifier_loss(fake_aux, labels)}


class Projection(Conditioning):
  """The label enters the score: [image, label] -> psi(phi) + <embed(y), phi>, [B, 1]."""
  name = 'projection'
  conditional = True

  def critic_head(self, image, features, num_classes, dense, name):
    label = keras.Input((), dtype='int32', name='label')
    psi = dense(1, 'score')(features)
    projection = ClassProjection(num_classes, name='projection')([features, label])
    score = layers.Add(dtype='float32', name='score_plus_projection')([psi, projection])
    return keras.Model([image, label], score, name=name)

  def _call(self, critic, images, labels):
    # Keras refuses a list mixing arrays and tensors: make both tensors.
    return critic([tf.convert_to_tensor(images), tf.convert_to_tensor(labels)], training=True)


NONE = Conditioning()
ACGAN_CONDITIONING = ACGAN()
PROJECTION = Projection()

# model.conditioning: how a class-conditional critic (model.num_classes > 0) uses the label.
CONDITIONINGS: registry.Registry[Conditioning] = registry.Registry('model.conditioning', {
    'acgan': ACGAN_CONDITIONING,
    'projection': PROJECTION,
})


def from_config(config: ml_collections.ConfigDict) -> Conditioning:
  """NONE when `model.num_classes` is 0, else the one `model.conditioning` names."""
  if config.model.num_classes == 0:
    return NONE
  conditioning = CONDITIONINGS.get(config.model.conditioning)
  if not conditioning.conditional:
    raise ValueError(f'model.conditioning={config.model.conditioning!r} does not read labels, '
                     f'but model.num_classes={config.model.num_classes}')
  return conditioning
