"""Command line: a PNG of real training images as the critic sees them under augmentation.

  python -m wgan_dist.augment_preview --config=configs/mnist.py:quick --out=augmented.png
  python -m wgan_dist.augment_preview --config=configs/celeba64.py \
      --config.data.source=prepared --config.data.path=data/celeba64 --out=augmented.png

Row 1: 8 training images, evenly spaced through the data; then one row per transform (translation, cutout, and
colour on 3-channel data), then the config's augment.policy (or every transform together when
it is ''), each with p = 1. Prints the rows' titles, then the PNG's path.
"""

from wgan_dist.config import tf_log_level

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position
from ml_collections import config_flags  # pylint: disable=wrong-import-position

from wgan_dist.config import validation as config_validation  # pylint: disable=wrong-import-position
from wgan_dist.data import images  # pylint: disable=wrong-import-position
from wgan_dist.data import sources  # pylint: disable=wrong-import-position
from wgan_dist.tools import augment_preview  # pylint: disable=wrong-import-position
from wgan_dist.tools import restore  # pylint: disable=wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, optionally with an argument: configs/mnist.py:quick.',
    lock_config=True)
_OUT = flags.DEFINE_string('out', None, 'Path of the PNG to write.')
_NUM_IMAGES = flags.DEFINE_integer('num_images', 8, 'Training images per row.')
flags.mark_flags_as_required(['config', 'out'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _NUM_IMAGES.value < 1:
    restore.exit_with_error(ValueError(
        f'--num_images={_NUM_IMAGES.value} is not allowed; allowed: an integer >= 1'))
  try:
    config_validation.validate(_CONFIG.value)
    grid, titles = augment_preview.preview(_CONFIG.value, _NUM_IMAGES.value)
  except (config_validation.ConfigError, sources.DataError) as error:
    restore.exit_with_error(error)
  images.write_png(_OUT.value, grid)
  print('rows: ' + ' | '.join(titles))
  print(_OUT.value)


if __name__ == '__main__':
  app.run(main)
