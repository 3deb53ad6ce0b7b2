"""Command line: prepare a dataset once (decode, crop, resize, shard) for data.source='prepared'.

  python -m wgan_dist.prepare --source=~/celeba/img_align_celeba --out=data/celeba64 \
      --image_size=64 --center_crop
  python -m wgan_dist.prepare --source=images.zip --out=data/mine --image_size=32
  python -m wgan_dist.prepare --source=keras:cifar10 --out=data/cifar10 --image_size=32
  python -m wgan_dist.prepare --source=tfds:celeb_a --split=train --out=data/c64 --image_size=64

then train with --config.data.source=prepared --config.data.path=data/celeba64. Sources, labels,
the format and its dataset.json: docs/data.md. Every path may be local or any file system
TensorFlow reads (gs://, hdfs://, ...). A bad option, a missing source or (with
--on_bad_image=error) an image that does not decode is a one-line error.
"""

import sys

from wgan_dist.config import tf_log_level  # pylint: disable=wrong-import-position

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from wgan_dist.data import preparing  # pylint: disable=wrong-import-position

_SOURCE = flags.DEFINE_string(
    'source', None, 'A directory of images, a .zip of images, an .npz/.npy, keras:mnist, '
    'keras:fashion_mnist, keras:cifar10 (the keras.datasets cache), or tfds:NAME.')
_OUT = flags.DEFINE_string('out', None, 'Directory to write the prepared dataset into.')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', None, 'Side of the square images written.')
_CENTER_CROP = flags.DEFINE_boolean(
    'center_crop', False, 'Cut the largest centred square before resizing (keeps the aspect '
    'ratio); without it, non-square images are stretched.')
_CHANNELS = flags.DEFINE_integer(
    'channels', 0, '1 (grayscale) or 3 (RGB); 0: the source\'s (3 for image files).')
_LABELS = flags.DEFINE_enum(
    'labels', 'auto', preparing.LABEL_MODES, 'auto: class sub-directories when there are 2 or '
    'more (and no images beside them), else the source\'s labels if it has them; dirs: require '
    'class sub-directories; source: require the source\'s labels; none: unlabelled.')
_ON_BAD_IMAGE = flags.DEFINE_enum(
    'on_bad_image', 'skip', preparing.BAD_IMAGE_MODES,
    'skip: leave out images that do not decode, listed with the reason in dataset.json; error: '
    'stop at the first, naming it.')
_SPLIT = flags.DEFINE_string('split', 'train', 'Split of a keras: or tfds: source.')
_TFDS_DATA_DIR = flags.DEFINE_string('tfds_data_dir', '', 'TFDS data directory (default: its '
                                     'own default).')
_IMAGES_PER_SHARD = flags.DEFINE_integer(
    'images_per_shard', 0, 'Records per shard; 0: about 256 MB per shard.')
_OVERWRITE = flags.DEFINE_boolean('overwrite', False, 'Replace a prepared dataset in --out.')
_PROVENANCE = flags.DEFINE_string('provenance', '', 'Where the images come from (dataset.json).')
_LICENCE = flags.DEFINE_string('licence', '', 'The images\' licence (dataset.json).')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  missing = [name for name, flag in (('source', _SOURCE), ('out', _OUT),
                                     ('image_size', _IMAGE_SIZE)) if flag.value is None]
  if missing:
    sys.exit(f'error: --{", --".join(missing)} needed (python -m wgan_dist.prepare --helpshort)')
  options = preparing.Options(
      source=_SOURCE.value, out=_OUT.value, image_size=_IMAGE_SIZE.value,
      center_crop=_CENTER_CROP.value, channels=_CHANNELS.value, labels=_LABELS.value,
      on_bad_image=_ON_BAD_IMAGE.value, split=_SPLIT.value, tfds_data_dir=_TFDS_DATA_DIR.value,
      images_per_shard=_IMAGES_PER_SHARD.value, overwrite=_OVERWRITE.value,
      provenance=_PROVENANCE.value, licence=_LICENCE.value)
  try:
    meta = preparing.prepare(options)
  except preparing.sources.DataError as error:
    sys.exit(f'error: {error}')
  skipped = meta['skipped']
  print(f'{options.out}: {meta["count"]} images {"x".join(map(str, meta["image_shape"]))} in '
        f'{len(meta["shards"])} shard(s), {meta["fingerprint"]}'
        + (f'; {len(skipped)} skipped (listed in dataset.json), first: {skipped[0]["file"]} '
           f'({skipped[0]["reason"]})' if skipped else ''))


if __name__ == '__main__':
  app.run(main)
