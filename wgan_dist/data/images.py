"""Turns generator output in [-1, 1] into a uint8 image grid and PNG files, and lays out the
inputs of a grid with one row per class."""

import math
from typing import Sequence

import numpy as np
import tensorflow as tf


def grid_rows(num: int) -> int:
  """Rows of the most nearly square grid of `num` images (columns >= rows)."""
  return max(1, math.isqrt(num))


def to_grid(images: np.ndarray, rows: int, padding: int = 2) -> np.ndarray:
  """[N, H, W, C] floats in [-1, 1] -> one uint8 [rows·(H+p)+p, cols·(W+p)+p, C] grid."""
  images = np.asarray(images, np.float32)
  count, height, width, channels = images.shape
  cols = -(-count // rows)
  pixels = np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
  grid = np.zeros((rows * (height + padding) + padding, cols * (width + padding) + padding,
                   channels), np.uint8)
  for index in range(count):
    top = padding + (index // cols) * (height + padding)
    left = padding + (index % cols) * (width + padding)
    grid[top:top + height, left:left + width] = pixels[index]
  return grid


def class_rows(noise: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """Generator inputs of a grid with one row per class, in `to_grid`'s row-major order.

  `noise` [C, D] is repeated in every row (column j shows noise[j] in each class), row r is
  labelled classes[r]. Returns (noise [R·C, D], labels int32 [R·C]); draw the images with
  `to_grid(images, rows=len(classes))`.
  """
  noise = np.asarray(noise)
  labels = np.repeat(np.asarray(classes, np.int32), len(noise))
  return np.tile(noise, (len(classes), 1)), labels


def write_png(path: str, image: np.ndarray) -> None:
  """Writes a uint8 [H, W, C] image as PNG (any tf.io.gfile path)."""
  tf.io.write_file(path, tf.io.encode_png(image))
