"""Command line: a PNG of generated images from a workdir's latest checkpoint.

  python -m wgan_dist.sample --workdir=runs/mnist                  # 8x8 grid -> W/sample.png
  python -m wgan_dist.sample --workdir=runs/mnist --num=16 --seed=3 --out=grid.png
  python -m wgan_dist.sample --workdir=runs/mnist --interpolate    # 10-frame strip
  python -m wgan_dist.sample --workdir=runs/mnist --ema            # the EMA generator

A class-conditional run (model.num_classes = K > 0) draws one row per class by default, K rows
of --num columns (default 8), column j the same noise vector in every row; --label=k draws
--num images (default 64) of class k alone; --interpolate draws one strip per class, or of
class k alone with --label=k. --label outside [0, K), or given for an unconditional run, is a
one-line error before any work.

  python -m wgan_dist.sample --workdir=runs/mnist_cond              # K x 8: one row per digit
  python -m wgan_dist.sample --workdir=runs/mnist_cond --label=3    # 8x8 grid of threes

The noise is keyed by --seed alone, so the same seed shows the same noise at every checkpoint;
the labels are fixed by the flags (no random draw), so a command always shows the same images
of a checkpoint. --interpolate walks between two noise vectors along the great circle (slerp):
z ~ N(0, I) lies near a sphere of radius sqrt(noise_dim), and a straight line between two such
points passes through norms the generator never saw in training.
"""

import os

from wgan_dist.config import tf_log_level  # pylint: disable=wrong-import-position

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

import tensorflow as tf  # pylint: disable=wrong-import-position
from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from wgan_dist.data import images  # pylint: disable=wrong-import-position
from wgan_dist.tools import restore  # pylint: disable=wrong-import-position
from wgan_dist.tools import sampling  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory of a training run.')
_NUM = flags.DEFINE_integer('num', None, 'Images: default 64 (an 8x8 grid); per class (default '
                            '8) in a conditional run\'s grid without --label; frames (default '
                            '10) with --interpolate.')
_OUT = flags.DEFINE_string('out', None, 'PNG to write; default W/sample.png or '
                           'W/interpolation.png.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the noise.')
_EMA = flags.DEFINE_bool('ema', False, 'Use the EMA generator (needs train.ema_decay > 0).')
_INTERPOLATE = flags.DEFINE_bool('interpolate', False,
                                 'One strip interpolating between two noise vectors (one per '
                                 'class in a conditional run without --label).')
_LABEL = flags.DEFINE_integer('label', None, 'Class-conditional runs: draw this class only, in '
                              '[0, model.num_classes); default one row per class.')
flags.mark_flags_as_required(['workdir'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  workdir = _WORKDIR.value
  interpolate = _INTERPOLATE.value
  num, label = _NUM.value, _LABEL.value
  if num is not None and num < (2 if interpolate else 1):
    raise app.UsageError(f'--num={num}: at least {2 if interpolate else 1}')
  try:
    # The config alone first: a --label that does not fit stops before the model is built.
    num_classes = restore.load_config(workdir).model.num_classes
    error = sampling.label_error(label, num_classes)
    if error:
      raise restore.RestoreError(error)
    restored = restore.load_generator(workdir, ema=_EMA.value)
  except restore.RestoreError as error:
    restore.exit_with_error(error)
  z, labels, rows = sampling.sample_inputs(
      seed=_SEED.value, noise_dim=restored.config.model.noise_dim, num_classes=num_classes,
      label=label, num=num, interpolate=interpolate)
  generated = sampling.generate(restored.generator, z, labels)
  num = len(z)
  out = _OUT.value or os.path.join(workdir, 'interpolation.png' if interpolate else 'sample.png')
  if os.path.dirname(out):
    tf.io.gfile.makedirs(os.path.dirname(out))
  images.write_png(out, images.to_grid(generated, rows=rows))
  classes = '' if labels is None else (f' of class {label}' if label is not None
                                         else f', one row per class ({num_classes} rows)')
  print(f'{"EMA generator" if restored.ema else "Generator"} at step {restored.step} '
        f'({restored.checkpoint}): {num} images{classes} -> {out}')


if __name__ == '__main__':
  app.run(main)
