"""Benchmarks of prepared datasets (BENCHMARKS.md, "Prepared data"): synthetic data, then timing.

  python benchmarks/data_bench.py jpegs --out=DIR --count=20000     # CelebA-like 178x218 JPEGs
  python benchmarks/data_bench.py prepare --path=JPEGS --out=DIR --image_size=64
  python benchmarks/data_bench.py pipeline --source=prepared --path=DIR --image_size=64
  python benchmarks/data_bench.py pipeline --source=folder --path=JPEGS --image_size=64
  python benchmarks/data_bench.py formats --path=PREPARED           # raw records vs PNG
  python benchmarks/data_bench.py large --out=DIR --count=1000000   # 28x28x1 prepared records
  python benchmarks/data_bench.py startup --path=DIR --steps=1      # start-up and peak RSS
  python benchmarks/data_bench.py first_batch --path=DIR1,DIR2      # the data's start-up part

Each prints one JSON line with its figures and the 1-minute load average (the machine is
shared: a figure taken under a high load is marked by it).
"""

import io
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np
from absl import app
from absl import flags

_OUT = flags.DEFINE_string('out', None, 'Directory to write.')
_PATH = flags.DEFINE_string('path', None, 'Data directory to read.')
_COUNT = flags.DEFINE_integer('count', 20000, 'Images to make.')
_SOURCE = flags.DEFINE_string('source', 'prepared', "pipeline: 'prepared' or 'folder'.")
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 64, 'pipeline: data.image_size.')
_BATCH = flags.DEFINE_integer('batch', 256, 'pipeline: batch size.')
_SECONDS = flags.DEFINE_float('seconds', 20.0, 'pipeline: seconds to time after warm-up.')
_STEPS = flags.DEFINE_integer('steps', 1, 'startup: training steps of the run.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'startup: the run\'s workdir (a resume when it '
                               'holds a checkpoint).')
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load() -> float:
  return round(os.getloadavg()[0], 1)


def _print(result: dict) -> None:
  result['load_average'] = _load()
  print(json.dumps(result))


def _jpeg(index: int) -> bytes:
  """A 178x218 (width x height, CelebA's aligned crops) JPEG: smooth colour fields plus noise,
  so it compresses like a photograph (~8-10 KB at quality 90) rather than like flat colour."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(index)
  low = rng.uniform(0, 255, (7, 6, 3)).astype(np.float32)
  image = Image.fromarray(low.astype(np.uint8)).resize((178, 218), Image.BICUBIC)
  pixels = np.asarray(image, np.float32) + rng.normal(0, 12, (218, 178, 3))
  buffer = io.BytesIO()
  Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, 'JPEG', quality=90)
  return buffer.getvalue()


def _write_jpeg(args: tuple[str, int]) -> int:
  out, index = args
  data = _jpeg(index)
  with open(os.path.join(out, f'{index:07d}.jpg'), 'wb') as f:
    f.write(data)
  return len(data)


def make_jpegs(out: str, count: int) -> None:
  os.makedirs(out, exist_ok=True)
  start = time.perf_counter()
  with multiprocessing.Pool() as pool:
    sizes = pool.map(_write_jpeg, [(out, i) for i in range(count)], chunksize=256)
  _print({'jpegs': count, 'bytes': sum(sizes), 'mean_bytes': sum(sizes) / count,
          'seconds': time.perf_counter() - start})


def time_pipeline(source: str, path: str, image_size: int, batch: int, seconds: float) -> None:
  """Images/s of the training input pipeline alone (make_dataset, one pipeline), after warm-up."""
  sys.path.insert(0, _REPO)
  from configs import default  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import input_pipeline  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import sources  # pylint: disable=import-outside-toplevel
  config = default.get_config()
  config.data.source, config.data.path = source, path
  config.data.image_size, config.data.channels = image_size, 3
  config.data.center_crop = source == 'folder'
  config.train.global_batch_size = batch
  started = time.perf_counter()
  loaded = sources.load_source(config)
  load_seconds = time.perf_counter() - started
  iterator = iter(input_pipeline.make_dataset(loaded, config, batch))
  for _ in range(5):
    next(iterator)
  count, start, cpu = 0, time.perf_counter(), time.process_time()
  while time.perf_counter() - start < seconds:
    next(iterator)
    count += batch
  elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
  _print({'source': source, 'images': loaded.size, 'load_source_seconds': load_seconds,
          'images_per_sec': count / elapsed, 'images_per_cpu_sec': count / cpu,
          'batch': batch, 'cores': os.cpu_count()})


def time_first_batch(paths: list[str], repeats: int = 3) -> None:
  """The data's part of a start-up, alternating between datasets in one process: seconds to
  load_source (open and check) and to the first batch of the training pipeline (tiny config)."""
  sys.path.insert(0, _REPO)
  from configs import mnist  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import input_pipeline  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import sources  # pylint: disable=import-outside-toplevel
  results = {path: [] for path in paths}
  for _ in range(repeats):
    for path in paths:
      config = mnist.get_config('tiny')
      config.data.source, config.data.path = 'prepared', path
      start = time.perf_counter()
      loaded = sources.load_source(config)
      opened = time.perf_counter() - start
      next(iter(input_pipeline.make_dataset(loaded, config, 8, first_batch=123456)))
      results[path].append((round(opened, 4), round(time.perf_counter() - start, 4)))
  _print({'load_source_and_first_batch_seconds': results})


def pipeline_rss(path: str, batches: int = 40000, every: int = 5000) -> None:
  """This process's RSS while the training pipeline (tiny config, batch 64) streams `batches`
  batches of a prepared dataset: flat if reading keeps nothing."""
  sys.path.insert(0, _REPO)
  from configs import mnist  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import input_pipeline  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import sources  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.data.source, config.data.path = 'prepared', path
  iterator = iter(input_pipeline.make_dataset(sources.load_source(config), config, 64))
  samples = []
  for index in range(1, batches + 1):
    next(iterator)
    if index % every == 0:
      with open('/proc/self/status') as f:
        samples.append(int(f.read().split('VmRSS:')[1].split()[0]) // 1024)
  _print({'batches': batches, 'rss_mb_every_5000_batches': samples})


def time_prepare(source: str, out: str, image_size: int) -> None:
  """prepare (--center_crop) in this process: wall and CPU seconds (all threads) per image; on
  a shared machine images_per_cpu_sec x cores is the rate the cores would give alone."""
  sys.path.insert(0, _REPO)
  from wgan_dist.data import preparing  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel,unused-import
  start, cpu = time.perf_counter(), time.process_time()
  meta = preparing.prepare(preparing.Options(source=source, out=out, image_size=image_size,
                                             center_crop=True, overwrite=True))
  elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
  _print({'images': meta['count'], 'seconds': elapsed, 'cpu_seconds': cpu,
          'images_per_sec': meta['count'] / elapsed, 'images_per_cpu_sec': meta['count'] / cpu,
          'cores': os.cpu_count()})


def compare_formats(path: str, count: int = 20000) -> None:
  """The same images as raw records (this format) and as PNGs: bytes per image, and images/s
  of reading them back (raw: records by index; PNG: decode), on all cores."""
  sys.path.insert(0, _REPO)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import prepared  # pylint: disable=import-outside-toplevel
  dataset = prepared.open_dataset(path)
  count = min(count, dataset.count)
  images, _ = dataset.read(np.arange(count))
  pngs = [tf.io.encode_png(image).numpy() for image in images]
  png_bytes = sum(len(p) for p in pngs) / count
  indices = tf.data.Dataset.from_tensor_slices(
      np.random.default_rng(0).permutation(count).astype(np.int64)).batch(256)

  def rate(make) -> float:
    for _ in make().take(2):
      pass
    start = time.perf_counter()
    seen = sum(int(batch.shape[0]) for batch in make())
    return seen / (time.perf_counter() - start)

  raw = rate(lambda: prepared.read_batches(dataset, indices).map(lambda x, _: x))
  encoded = tf.data.Dataset.from_tensor_slices(pngs)
  png = rate(lambda: encoded.map(lambda p: tf.io.decode_png(p, channels=dataset.image_shape[-1]),
                                 num_parallel_calls=tf.data.AUTOTUNE).batch(256))
  _print({'images': count, 'shape': list(dataset.image_shape),
          'raw_bytes_per_image': dataset.meta['record_bytes'], 'png_bytes_per_image': png_bytes,
          'raw_images_per_sec': raw, 'png_images_per_sec': png})


def make_large(out: str, count: int) -> None:
  """A prepared dataset of `count` 28x28x1 labelled records (random digits-like noise), written
  with prepare's Writer in chunks (never all in memory)."""
  sys.path.insert(0, _REPO)
  from wgan_dist.data import prepared  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import sources  # pylint: disable=import-outside-toplevel
  base, labels = sources.load_embedded_mnist()
  writer = prepared.Writer(out, (28, 28, 1), True, 100000)
  start, chunk = time.perf_counter(), 50000
  for first in range(0, count, chunk):
    n = min(chunk, count - first)
    picks = (np.arange(first, first + n) * 7919) % len(base)  # Digits, in a scrambled order.
    writer.append(base[picks], labels[picks])
  writer.close([str(d) for d in range(10)], prepare={'source': 'benchmarks/data_bench.py large'},
               skipped=[])
  _print({'records': count, 'seconds': time.perf_counter() - start})


def startup(path: str, steps: int, workdir: str) -> None:
  """python -m wgan_dist.main on the tiny MNIST config over a prepared dataset: seconds from
  process start to the first training step's log line, wall seconds, peak RSS, and RSS sampled
  every second (to see it flat over a long run)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=_REPO)
  command = [sys.executable, '-m', 'wgan_dist.main', '--config=configs/mnist.py:tiny',
             '--config.data.source=prepared', f'--config.data.path={path}',
             f'--config.train.num_steps={steps}', '--config.train.steps_per_loop=1',
             '--config.log_every_steps=1', '--config.sample_every_steps=100000000',
             f'--config.checkpoint_every_steps={max(steps, 1)}', f'--workdir={workdir}']
  start = time.perf_counter()
  process = subprocess.Popen(command, cwd=_REPO, env=env, stderr=subprocess.PIPE, text=True)
  first_step, rss = None, []

  def sample() -> None:
    while process.poll() is None:
      try:
        with open(f'/proc/{process.pid}/status') as f:
          rss.append(next(int(line.split()[1]) for line in f if line.startswith('VmRSS')))
      except (OSError, StopIteration):
        pass
      time.sleep(1.0)

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  tail = []
  for line in process.stderr:
    tail = (tail + [line])[-20:]
    # The first step's metrics line (log_every_steps=1), in a fresh or a resumed run.
    if first_step is None and '| critic ' in line:
      first_step = time.perf_counter() - start
  code = process.wait()
  wall = time.perf_counter() - start
  sampler.join()
  if code:
    raise SystemExit(''.join(tail))
  peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
  _print({'path': path, 'steps': steps, 'seconds_to_first_step_log': first_step,
          'wall_seconds': wall, 'peak_rss_mb': peak,
          'rss_mb_samples': [round(r / 1024) for r in rss[::max(1, len(rss) // 20)]]})


def main(argv: list[str]) -> None:
  command = argv[1] if len(argv) > 1 else ''
  if command == 'jpegs':
    make_jpegs(_OUT.value, _COUNT.value)
  elif command == 'pipeline':
    time_pipeline(_SOURCE.value, _PATH.value, _IMAGE_SIZE.value, _BATCH.value, _SECONDS.value)
  elif command == 'pipeline_rss':
    pipeline_rss(_PATH.value)
  elif command == 'first_batch':
    time_first_batch(_PATH.value.split(','))
  elif command == 'prepare':
    time_prepare(_PATH.value, _OUT.value, _IMAGE_SIZE.value)
  elif command == 'formats':
    compare_formats(_PATH.value)
  elif command == 'large':
    make_large(_OUT.value, _COUNT.value)
  elif command == 'startup':
    startup(_PATH.value, _STEPS.value, _WORKDIR.value)
  else:
    raise app.UsageError('command: jpegs, pipeline_rss, first_batch, prepare, pipeline, '
                         'formats, large or startup')


if __name__ == '__main__':
  app.run(main)
