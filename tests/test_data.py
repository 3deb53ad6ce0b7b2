"""Data sources and the pipeline: ranges, shapes, the offline MNIST fallback, image folders."""

import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from wgan_dist.dist import distribution
from wgan_dist.data import input_pipeline
from wgan_dist.data import sources


def _first_batch(config, source, batch_size=8) -> np.ndarray:
  return next(iter(input_pipeline.make_dataset(source, config, batch_size))).numpy()


def test_embedded_mnist_is_real_digits():
  images, labels = sources.load_embedded_mnist()
  assert images.shape == (5000, 28, 28, 1) and images.dtype == np.uint8
  assert set(np.unique(labels)) == set(range(10))
  assert images.max() == 255 and images.min() == 0


def test_pipeline_scales_to_minus_one_one(tiny_config):
  source = sources.load_source(tiny_config)
  batch = _first_batch(tiny_config, source)
  assert batch.shape == (8, 28, 28, 1) and batch.dtype == np.float32
  assert batch.min() == -1.0 and batch.max() <= 1.0 and batch.max() > 0.9


def test_mnist_falls_back_to_embedded_sample_offline(tiny_config, tmp_path, monkeypatch, caplog):
  monkeypatch.setenv('KERAS_HOME', str(tmp_path))  # An empty cache.
  tiny_config.data.source = 'mnist'
  tiny_config.data.allow_download = False
  source = sources.load_source(tiny_config)
  assert source.name == 'embedded_mnist' and source.size == 5000
  assert any('embedded' in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize('variant, overrides, expected', [
    ('', {}, '625 generator steps instead of 9,375 on full MNIST; '
             '--config.train.num_steps=9375 keeps the full schedule'),
    ('', {'eval_reference': 'train_full'}, '782 generator steps instead of 9,375'),
    ('', {'data.limit': 1000}, '157 generator steps instead of 157'),
    ('quick', {}, 'train.num_steps=20000 makes 320 passes over them'),
])
def test_the_offline_fallback_says_the_steps_it_implies(tmp_path, monkeypatch, caplog, variant,
                                                        overrides, expected):
  """configs/mnist.py offline: the warning's step count is the one the run trains for."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  from wgan_dist import train  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv('KERAS_HOME', str(tmp_path))  # An empty cache.
  config = mnist.get_config(variant)
  config.data.allow_download = False
  for field, value in overrides.items():
    section, _, name = field.rpartition('.')
    (config[section] if section else config)[name] = value
  caplog.set_level('WARNING')
  _, total_steps = train.training_data(config)
  warning = next(record.getMessage() for record in caplog.records
                 if 'Full MNIST is not cached' in record.getMessage())
  assert expected in warning, warning
  if config.train.num_steps == -1:
    assert f' {total_steps:,} generator steps' in warning


def test_the_fallback_counts_the_held_out_digits_the_evaluation_uses():
  from wgan_dist.eval import classifier  # pylint: disable=import-outside-toplevel
  assert len(classifier.embedded_split().held_out_labels) == sources.EMBEDDED_HELD_OUT


def test_folder_of_images_is_decoded_and_resized(tiny_config, tmp_path):
  rng = np.random.default_rng(0)
  for index in range(5):
    pixels = rng.integers(0, 256, (40, 36), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / f'img{index}.png')
  tiny_config.data.source = 'folder'
  tiny_config.data.path = str(tmp_path)
  source = sources.load_source(tiny_config)
  assert source.size == 5
  batch = _first_batch(tiny_config, source, batch_size=4)
  assert batch.shape == (4, 28, 28, 1)
  assert -1.0 <= batch.min() and batch.max() <= 1.0


def test_npz_source_and_channel_check(tiny_config, tmp_path):
  path = tmp_path / 'images.npz'
  np.savez(path, x=np.zeros((10, 28, 28), np.uint8))
  tiny_config.data.source = 'npz'
  tiny_config.data.path = str(path)
  assert sources.load_source(tiny_config).size == 10
  np.savez(path, x=np.zeros((10, 28, 28, 3), np.uint8))
  with pytest.raises(sources.DataError, match='3 channel.*data.channels=1'):
    sources.load_source(tiny_config)


def test_same_seed_same_order(tiny_config):
  source = sources.load_source(tiny_config)
  assert np.array_equal(_first_batch(tiny_config, source), _first_batch(tiny_config, source))


def test_two_replicas_split_the_global_batch(tiny_config):
  """Replica r's batch is slice r of the batch one replica would get (the invariance premise)."""
  source = sources.load_source(tiny_config)
  tiny_config.distribution.cpu_replicas = 2
  strategy = distribution.create_strategy(tiny_config)
  assert strategy.num_replicas_in_sync == 2
  distributed = next(iter(input_pipeline.make_distributed_dataset(strategy, tiny_config, source)))
  parts = [part.numpy() for part in strategy.experimental_local_results(distributed)]
  whole = _first_batch(tiny_config, source, batch_size=tiny_config.train.global_batch_size)
  np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_each_worker_pipeline_reads_its_slice_of_the_global_batch(tiny_config):
  """Multi-worker: pipeline p's batches are slice p of the global batches one pipeline yields."""
  source = sources.load_source(tiny_config)
  global_batch = tiny_config.train.global_batch_size
  whole = iter(input_pipeline.make_dataset(source, tiny_config, global_batch))
  contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                         num_replicas_in_sync=2) for pipeline in range(2)]
  shares = [iter(input_pipeline.make_dataset(source, tiny_config, global_batch // 2, context))
            for context in contexts]
  for _ in range(3):
    expected = next(whole).numpy()
    parts = [next(share).numpy() for share in shares]
    assert not np.array_equal(parts[0], parts[1])
    np.testing.assert_array_equal(np.concatenate(parts), expected)


def test_center_crop_keeps_the_middle_square(tiny_config, tmp_path):
  # 20 rows x 12 columns: white bands in the top and bottom 4 rows, black in the middle square.
  pixels = np.zeros((20, 12), np.uint8)
  pixels[:4] = pixels[-4:] = 255
  for index in range(2):
    Image.fromarray(pixels).save(tmp_path / f'img{index}.png')
  tiny_config.data.source = 'folder'
  tiny_config.data.path = str(tmp_path)
  tiny_config.data.image_size = 12
  source = sources.load_source(tiny_config)
  tiny_config.data.center_crop = True
  cropped = _first_batch(tiny_config, source, batch_size=2)
  assert cropped.shape == (2, 12, 12, 1) and cropped.max() == -1.0
  tiny_config.data.center_crop = False
  assert _first_batch(tiny_config, source, batch_size=2).max() == 1.0


def test_a_large_folder_warns_with_its_scan_time_and_points_to_prepare(tiny_config, tmp_path,
                                                                       monkeypatch, caplog):
  for index in range(3):
    Image.fromarray(np.full((8, 8), index, np.uint8)).save(tmp_path / f'img{index}.png')
  tiny_config.data.source, tiny_config.data.path = 'folder', str(tmp_path)
  sources.load_source(tiny_config)
  assert 'prepare' not in caplog.text  # Below the threshold: only the info line.
  monkeypatch.setattr(sources, 'SCAN_ADVICE_FILES', 3)
  sources.load_source(tiny_config)
  warnings = [r.getMessage() for r in caplog.records if 'python -m wgan_dist.prepare' in
              r.getMessage()]
  assert len(warnings) == 1
  path = re.escape(repr(str(tmp_path)))
  assert re.fullmatch(
      rf"data.source='folder': checking the 3 files under data.path={path}"
      r' took \d+\.\d s, on every worker at every start \(and resume\); `python -m '
      r'wgan_dist.prepare` converts them once into shards that data.source=.prepared. streams '
      'without a scan', warnings[0])


def test_in_memory_images_are_gathered_from_the_source_array_not_a_copy(tiny_config):
  """The pipeline reads the source's own array: changing it changes the next batch."""
  images = np.zeros((8, 28, 28, 1), np.uint8)
  source = sources.Source('npz', images=images)
  tiny_config.seed = 1
  dataset = iter(input_pipeline.make_dataset(source, tiny_config, batch_size=8))
  assert next(dataset).numpy().max() == -1.0
  images[:] = 255  # Batches already prefetched keep the old pixels; later ones the new.
  assert any(next(dataset).numpy().min() == 1.0 for _ in range(200))
