"""python -m wgan_dist.augment_preview as a user runs it: real PNGs with one row per transform,
on the embedded digits and on colour images (the digits tinted with random colours, as an
.npz: the data that docs/augmentation_colour.png shows), and a bad policy in one line."""

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from wgan_dist.data import sources


def tinted_digits(path: str, count: int = 64) -> None:
  """`count` embedded digits, evenly spaced through the sample (every class), each with a random
  foreground and background colour, as uint8 RGB in an .npz."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  loaded = sources.load_source(mnist.get_config('tiny'))
  digits = loaded.subset(np.linspace(0, loaded.size - 1, count).astype(np.int64)).images
  ink = digits.astype(np.float32) / 255.0
  rng = np.random.default_rng(0)
  foreground = rng.uniform(0.3, 1.0, (count, 1, 1, 3))
  background = rng.uniform(0.0, 0.6, (count, 1, 1, 3))
  np.savez(path, x=((ink * foreground + (1 - ink) * background) * 255).astype(np.uint8))


def _png(path) -> np.ndarray:
  return tf.io.decode_png(tf.io.read_file(str(path))).numpy()


def _rows(grid: np.ndarray, count: int, size: int) -> list[np.ndarray]:
  step = size + 2  # images.to_grid's padding.
  return [grid[2 + r * step:2 + r * step + size] for r in range(count)]


@pytest.mark.slow
def test_digits_and_colour_images(tmp_path):
  out = tmp_path / 'digits.png'
  result = helpers.run_module('wgan_dist.augment_preview', '--config=configs/mnist.py:tiny',
                              '--config.augment.policy=translation,cutout', f'--out={out}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.splitlines() == [
      'rows: original | translation | cutout | translation + cutout', str(out)]
  grid = _png(out)
  assert grid.shape == (4 * 30 + 2, 8 * 30 + 2, 1)
  rows = _rows(grid, 4, 28)
  for row in rows[1:]:  # Every transform changed what the critic sees.
    assert not np.array_equal(row, rows[0])

  npz = tmp_path / 'tinted.npz'
  tinted_digits(str(npz))
  out = tmp_path / 'colour.png'
  result = helpers.run_module('wgan_dist.augment_preview', '--config=configs/cifar10.py:tiny',
                              '--config.data.source=npz', f'--config.data.path={npz}',
                              f'--out={out}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.splitlines()[0] == (
      'rows: original | color | translation | cutout | color + translation + cutout')
  grid = _png(out)
  assert grid.shape == (5 * 34 + 2, 8 * 34 + 2, 3)
  original, colour = _rows(grid, 5, 32)[:2]
  # Colour moves the pixel values; translation and cutout would only move or zero them.
  assert abs(float(colour.mean()) - float(original.mean())) > 1.0


def test_a_colour_policy_on_digits_is_one_line():
  result = helpers.run_module('wgan_dist.augment_preview', '--config=configs/mnist.py:tiny',
                              '--config.augment.policy=color', '--out=/tmp/never.png')
  helpers.assert_one_line_error(
      result, "augment.policy='color' is not allowed; allowed: transforms without ['color'] "
      'for data.channels=1')
