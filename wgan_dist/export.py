"""Command line: a workdir's latest generator as a SavedModel that needs only TensorFlow.

  python -m wgan_dist.export --workdir=runs/mnist --out=exported/mnist [--ema]

Using it (no wgan_dist import; the Python classes are not needed, only the traced graph):

  model = tf.saved_model.load('exported/mnist')
  images = model(tf.random.normal([16, int(model.noise_dim)]))       # [16, H, W, C] in [-1, 1]
  model.signatures['serving_default'](noise=z)['images']              # TF Serving / TFLite

A class-conditional generator (int(model.num_classes) = K > 0; 0 for an unconditional one)
takes the class too, int32 [batch] in [0, K); a label outside that range or a batch size
differing from the noise's fails with an InvalidArgumentError naming it:

  images = model(z, tf.constant([0, 1, 2], tf.int32))
  model.signatures['serving_default'](noise=z, label=labels)['images']

The batch dimension is free; the noise must be float32 [batch, noise_dim].
"""

from wgan_dist.config import tf_log_level  # pylint: disable=wrong-import-position

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

import keras  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position
from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from wgan_dist.tools import restore  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory of a training run.')
_OUT = flags.DEFINE_string('out', None, 'Directory to write the SavedModel into.')
_EMA = flags.DEFINE_bool('ema', False, 'Export the EMA generator (needs train.ema_decay > 0).')
flags.mark_flags_as_required(['workdir', 'out'])


class ExportedGenerator(tf.Module):
  """noise float32 [batch, noise_dim] (and, class-conditional, label int32 [batch]) -> images
  float32 [batch, H, W, C] in [-1, 1]."""

  def __init__(self, generator: keras.Model, noise_dim: int, step: int, num_classes: int = 0):
    super().__init__(name='exported_generator')
    self.generator = generator
    self._classes = num_classes
    # Variables, not constants: a SavedModel keeps only trackable attributes.
    self.noise_dim = tf.Variable(noise_dim, dtype=tf.int64, trainable=False, name='noise_dim')
    self.step = tf.Variable(step, dtype=tf.int64, trainable=False, name='step')  # Of the checkpoint.
    self.num_classes = tf.Variable(num_classes, dtype=tf.int64, trainable=False,
                                   name='num_classes')
    specs = [tf.TensorSpec([None, noise_dim], tf.float32, name='noise')]
    if num_classes:
      specs.append(tf.TensorSpec([None], tf.int32, name='label'))
      self.serve = tf.function(lambda noise, label: {'images': self._generate(noise, label)},
                               input_signature=specs)
    else:
      self.serve = tf.function(lambda noise: {'images': self._generate(noise)},
                               input_signature=specs)
    self.__call__ = tf.function(self._generate, input_signature=specs)

  def _generate(self, noise: tf.Tensor, label: tf.Tensor | None = None) -> tf.Tensor:
    # float32 out whatever the layers computed in; inference mode (batch norm moving stats).
    if label is None:
      return tf.cast(self.generator(noise, training=False), tf.float32)
    # Checked here: a gather past the class tables is an error on CPUs but zeros on GPUs.
    checks = [
        tf.debugging.assert_equal(tf.shape(label)[0], tf.shape(noise)[0],
                                  message='label and noise must have the same batch size'),
        tf.debugging.assert_non_negative(label, message='label must be >= 0'),
        tf.debugging.assert_less(label, self._classes,
                                 message=f'label must be < num_classes = {self._classes}'),
    ]
    with tf.control_dependencies(checks):
      return tf.cast(self.generator([noise, label], training=False), tf.float32)


def export(restored: restore.Restored, out: str) -> None:
  """Writes `restored.generator` as a SavedModel at `out`."""
  module = ExportedGenerator(restored.generator, restored.config.model.noise_dim, restored.step,
                             restored.config.model.num_classes)
  tf.saved_model.save(module, out, signatures={'serving_default': module.serve})


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    restored = restore.load_generator(_WORKDIR.value, ema=_EMA.value)
  except restore.RestoreError as error:
    restore.exit_with_error(error)
  export(restored, _OUT.value)
  print(f'{"EMA generator" if restored.ema else "Generator"} at step {restored.step} '
        f'({restored.checkpoint}) -> SavedModel {_OUT.value}')


if __name__ == '__main__':
  app.run(main)
