"""Benchmark of the real training step against a naive eager loop and the device's ceiling.

`run(config, ...)` is the library; `python -m wgan_dist.bench` its command line:

  python -m wgan_dist.bench --config=configs/mnist.py --config.data.allow_download=False
  python -m wgan_dist.bench --config=configs/mnist.py --baseline      # also the naive eager loop
  python -m wgan_dist.bench --config=configs/mnist.py --input_only    # the input pipeline alone
  python -m wgan_dist.bench --config=configs/mnist.py --config.distribution.cpu_replicas=2

The timed code is the training loop itself: `trainer.Trainer.train` on a
`train_state.create_train_state` state, fed by `input_pipeline.make_distributed_dataset`
(in-memory images), called in chunks of `train.steps_per_loop` generator steps with the metrics
read after each call, as `train.train_and_evaluate` does (with --baseline, one generator step
per call, alternating with one step of the naive loop so that both see the same load). Its FLOPs
come from TensorFlow's own op counter (the `RegisterStatistics('flops')` table that
`tf.compat.v1.profiler` uses) applied to the graph of that same tf.function; the ceiling is the
best rate of large float32 matmuls on the same device in the same process (before and after the step is timed, so a change of load shows).

Prints a table, then, as the last line, one JSON object (keys in `run`'s docstring).
"""

import os
import platform
import time
from typing import Callable, Optional

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.python.framework import ops as tf_ops  # pylint: disable=g-direct-tensorflow-import
# Registers the flop counts of Conv2DBackprop*, elementwise ops, reductions (what the v1 profiler
# counts); Conv2D, MatMul and BiasAdd are registered by TensorFlow's op modules themselves.
from tensorflow.python.profiler.internal import flops_registry  # pylint: disable=unused-import,g-direct-tensorflow-import
from tensorflow.python.util import deprecation  # pylint: disable=g-direct-tensorflow-import

from wgan_dist.config import validation as config_validation
from wgan_dist.dist import distribution
from wgan_dist.data import input_pipeline
from wgan_dist.algorithm import conditioning as conditioning_lib
from wgan_dist.algorithm import losses
from wgan_dist.models import layers as model_layers
from wgan_dist.models import architectures as models
from wgan_dist.algorithm import optimizers
from wgan_dist.data import sources
from wgan_dist.training import state as train_state
from wgan_dist.training import trainer as trainer_lib


# Loops of the training tf.function, outermost first: generator steps, then critic updates.
_LOOP_LEVELS = 2
# Batches the input-pipeline timing pulls (after as many again to warm up).
_INPUT_BATCHES = 200
_CONTROL_FLOW_CALLS = ('PartitionedCall', 'StatefulPartitionedCall')
_CONDITIONALS = ('If', 'StatelessIf')
_LOOPS = ('While', 'StatelessWhile')


# ---------------------------------------------------------------------------------------------
# FLOPs: TensorFlow's op counter over the step's graph, loop bodies included.


def _live_ops(graph) -> list:
  """Ops the graph's outputs and side effects need; the rest is pruned before it runs.

  The Python graph still holds gradients nobody asked for (Conv2D's gradient function returns
  both the input and the filter gradient even when one is unused); TensorFlow prunes them when it
  instantiates the function, so counting them would overstate the work.
  """
  roots = list(graph.outputs) + list(getattr(graph, 'control_outputs', []))
  live, stack = set(), [t.op if isinstance(t, tf.Tensor) else t for t in roots]
  while stack:
    op = stack.pop()
    if op in live:
      continue
    live.add(op)
    stack.extend(t.op for t in op.inputs)
    stack.extend(op.control_inputs)
  return [op for op in graph.get_operations() if op in live]


def _function_graph(graph, name: str):
  function = graph._get_function(name)  # pylint: disable=protected-access
  if function is None:
    raise ValueError(f'function {name} not found in the graph of the step')
  return function.graph


def _flops_by_loop_level(graph, level: int, totals: list[float], uncounted: set[str]) -> None:
  """Adds each live op's flops to totals[loop depth] (one iteration of each enclosing loop)."""
  for op in _live_ops(graph):
    if op.type in _LOOPS:
      if level + 1 >= len(totals):
        raise ValueError(f'the step has more than {_LOOP_LEVELS} nested loops; the flop count '
                         'assumes generator steps and critic updates')
      _flops_by_loop_level(_function_graph(graph, op.get_attr('body').name), level + 1, totals,
                           uncounted)
    elif op.type in _CONDITIONALS:
      # One branch runs: count the larger.
      branches = []
      for attr in ('then_branch', 'else_branch'):
        branch = [0.0] * len(totals)
        _flops_by_loop_level(_function_graph(graph, op.get_attr(attr).name), level, branch,
                             uncounted)
        branches.append(branch)
      best = max(branches, key=sum)
      for i, value in enumerate(best):
        totals[i] += value
    elif op.type in _CONTROL_FLOW_CALLS:
      _flops_by_loop_level(_function_graph(graph, op.get_attr('f').name), level, totals,
                           uncounted)
    else:
      try:
        # The registry's shape helper is marked deprecated (a TF1 API); it is what it uses.
        with deprecation.silence():
          stats = tf_ops.get_stats_for_node_def(graph, op.node_def, 'flops')
      except ValueError:  # Registered, but a shape is not static.
        uncounted.add(op.type)
        continue
      if stats.value:
        totals[level] += stats.value


def count_step_flops(trainer: trainer_lib.Trainer, n_critic: int) -> dict[str, float]:
  """FLOPs of one critic update, one generator update, and per critic update amortised.

  Counted on the graph of `trainer.loop` (the training tf.function) with TensorFlow's registered
  per-op flop statistics: the body of the inner loop is one critic update, the rest of the outer
  loop's body one generator update.
  """
  concrete = trainer.loop.get_concrete_function(trainer.iterator, tf.TensorSpec([], tf.int32))
  totals = [0.0] * (_LOOP_LEVELS + 1)
  uncounted: set[str] = set()
  _flops_by_loop_level(concrete.graph, 0, totals, uncounted)
  if uncounted:
    logging.warning('Ops with a flop formula but non-static shapes, not counted: %s',
                    sorted(uncounted))
  critic_update, generator_update = totals[2], totals[1]
  return {'critic_update': critic_update, 'generator_update': generator_update,
          'per_critic_step': critic_update + generator_update / n_critic}


# ---------------------------------------------------------------------------------------------
# The ceiling: large float32 matmuls, all cores of the device.


def measure_matmul_ceiling(device: str, max_size: int, repeats: int = 5) -> dict:
  """The best FLOP/s of n x n float32 matmuls (n = max_size and max_size/2) on `device`."""
  best = {'flops_per_sec': 0.0, 'size': 0}
  for size in sorted({max(64, max_size // 2), max_size}):
    with tf.device(device):
      a = tf.random.stateless_normal([size, size], seed=[1, 2])
      b = tf.random.stateless_normal([size, size], seed=[3, 4])
      matmul = tf.function(lambda a=a, b=b: tf.reduce_sum(tf.matmul(a, b)[0, :1]))
      matmul().numpy()  # Trace and warm up.
      for _ in range(repeats):
        start = time.perf_counter()
        matmul().numpy()
        rate = 2.0 * size**3 / (time.perf_counter() - start)
        if rate > best['flops_per_sec']:
          best = {'flops_per_sec': rate, 'size': size}
  return best


# ---------------------------------------------------------------------------------------------
# Timings.


def time_train_loop(trainer: trainer_lib.Trainer, num_steps: int, steps_per_loop: int) -> float:
  """Seconds for `num_steps` generator steps, in calls of at most steps_per_loop as training."""
  start = time.perf_counter()
  done = 0
  while done < num_steps:
    chunk = min(steps_per_loop, num_steps - done)
    trainer.train(chunk)  # Reads the metrics back, as train_and_evaluate does.
    done += chunk
  return time.perf_counter() - start


def make_naive_eager_step(config: ml_collections.ConfigDict, images: np.ndarray,
                          labels: Optional[np.ndarray] = None) -> Callable[[], None]:
  """One generator step the naive way: eager, a Python call per update, numpy batches.

  The same architecture, losses and Adam settings as training, on one device without a
  strategy, with every convolution a plain `layers.Conv2D` (identical variables and values):
  what the blog implementation did (less its bugs), the reference the real step is rated against.
  `labels` (a class-conditional config): the images' labels; the fakes of each critic update are
  generated for the real batch's labels, the generator's for uniform ones, as in training.
  """
  with model_layers.plain_convolutions():
    generator, critic = models.build_models(config)
  generator_optimizer = optimizers.make_adam(config.train, 'generator', total_steps=1)
  critic_optimizer = optimizers.make_adam(config.train, 'critic', total_steps=1)
  conditioning = conditioning_lib.from_config(config)
  train_config = config.train
  batch = train_config.global_batch_size
  rng = np.random.default_rng(config.seed)
  scale = 127.5 if images.dtype == np.uint8 else 0.5

  def step() -> None:
    for _ in range(train_config.n_critic):
      chosen = rng.integers(0, len(images), batch)
      real = tf.constant(images[chosen].astype(np.float32) / scale - 1.0)
      real_labels = None if labels is None else tf.constant(labels[chosen], tf.int32)
      z = tf.random.normal([batch, config.model.noise_dim])
      epsilon = tf.random.uniform([batch, 1, 1, 1])
      with tf.GradientTape() as tape:
        terms = losses.critic_losses(
            critic, real, losses.generate(generator, z, real_labels), epsilon,
            train_config.gp_lambda, labels=real_labels,
            classifier_weight=train_config.acgan_critic_weight, conditioning=conditioning)
        loss = tf.reduce_mean(terms['critic_loss'])
      critic_optimizer.apply(tape.gradient(loss, critic.trainable_variables),
                             critic.trainable_variables)
    z = tf.random.normal([batch, config.model.noise_dim])
    fake_labels = (None if labels is None else
                   tf.constant(rng.integers(0, config.model.num_classes, batch), tf.int32))
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(losses.generator_losses(
          critic, losses.generate(generator, z, fake_labels), fake_labels,
          train_config.acgan_generator_weight, conditioning)['generator_loss'])
    generator_optimizer.apply(tape.gradient(loss, generator.trainable_variables),
                              generator.trainable_variables)
    float(loss)  # The naive loop prints its losses every step.

  return step


def time_input_pipeline(strategy: tf.distribute.Strategy, config: ml_collections.ConfigDict,
                        source: sources.Source, num_batches: int = _INPUT_BATCHES) -> float:
  """Global-batch images per second the training input pipeline delivers, consumed in a graph."""
  iterator = iter(input_pipeline.make_distributed_dataset(strategy, config, source))

  @tf.function
  def pull(count: tf.Tensor) -> tf.Tensor:
    total = tf.constant(0.0)
    for _ in tf.range(count):
      batch = next(iterator)
      # A class-conditional config's batches are (images, labels).
      images = batch[0] if isinstance(batch, tuple) else batch
      for local in strategy.experimental_local_results(images):
        total += local[0, 0, 0, 0]  # Touch every batch so none is skipped.
    return total

  pull(tf.constant(num_batches)).numpy()  # Trace; fill the prefetch buffers.
  start = time.perf_counter()
  pull(tf.constant(num_batches)).numpy()
  return num_batches * config.train.global_batch_size / (time.perf_counter() - start)


def describe_device(strategy: tf.distribute.Strategy) -> str:
  """'GPU: <name> x N' or 'CPU: <model> (<n> cores)'."""
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    names = [tf.config.experimental.get_device_details(gpu).get('device_name', 'GPU')
             for gpu in gpus]
    return f'GPU: {names[0]} x{len(names)}'
  model = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      model = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  devices = strategy.extended.worker_devices
  return f'CPU: {model} ({os.cpu_count()} cores; {len(devices)} logical device(s))'


def _load() -> float:
  return os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')


# ---------------------------------------------------------------------------------------------


def run(config: ml_collections.ConfigDict, *, num_steps: int, warmup: int, baseline: bool = False,
        input_only: bool = False, ceiling_size: int = 4096,
        profile_dir: Optional[str] = None) -> dict:
  """Times the training loop of `config`; returns the figures the JSON line reports.

  Keys: critic_steps_per_sec (critic updates per second, the generator updates' time included),
  images_per_sec (critic updates x global batch / s), replicas, device, flops_per_critic_step
  (TensorFlow's count on the loop built with plain convolutions, the generator update amortised
  over n_critic; flops_per_critic_step_as_run counts the graph that ran), achieved_flops_per_sec,
  ceiling_flops_per_sec, ceiling_fraction, input_images_per_sec, input_headroom (input rate /
  images_per_sec), and with `baseline` baseline_critic_steps_per_sec and speedup_vs_baseline;
  plus the settings and the 1-minute load average at start and end. `input_only` times the input
  pipeline alone (training figures are then absent).
  """
  # The modules trust a validated config; check it once, before any work, as training does.
  config_validation.validate(config)
  strategy = distribution.create_strategy(config)
  config_validation.validate_replicas(config, strategy.num_replicas_in_sync)
  source = sources.load_source(config)
  train_config = config.train
  n_critic = train_config.n_critic
  result = {'replicas': strategy.num_replicas_in_sync, 'device': describe_device(strategy),
            'architecture': config.model.architecture,
            'global_batch_size': train_config.global_batch_size, 'n_critic': n_critic,
            'mixed_precision': config.mixed_precision,
            'jit_compile': bool(train_config.jit_compile),
            'tensorflow': tf.__version__, 'load_average_start': _load()}
  result['input_images_per_sec'] = time_input_pipeline(strategy, config, source)
  if input_only:
    result['load_average_end'] = _load()
    return result

  device = strategy.extended.worker_devices[0]
  ceiling_before = measure_matmul_ceiling(device, ceiling_size)

  trainer = trainer_lib.Trainer(strategy=strategy, config=config, source=source,
                                state=train_state.create_train_state(config, strategy))
  flops_as_run = count_step_flops(trainer, n_critic)
  # The count that rates the step: the same loop over plain convolutions (traced, never run),
  # so computing a layer another way (model_layers.PatchMatmulConv2D) cannot change it.
  with model_layers.plain_convolutions():
    reference = trainer_lib.Trainer(strategy=strategy, config=config, source=source,
                                    state=train_state.create_train_state(config, strategy))
  flops = count_step_flops(reference, n_critic)
  time_train_loop(trainer, warmup, train_config.steps_per_loop)
  if baseline:
    naive_step = make_naive_eager_step(
        config, _in_memory_images(source),
        source.labels if config.model.num_classes > 0 else None)
    for _ in range(warmup):
      naive_step()
    # Alternating one generator step of each, so a change of load hits both alike.
    seconds = naive_seconds = 0.0
    for _ in range(num_steps):
      seconds += time_train_loop(trainer, 1, 1)
      start = time.perf_counter()
      naive_step()
      naive_seconds += time.perf_counter() - start
  else:
    seconds = time_train_loop(trainer, num_steps, train_config.steps_per_loop)
  critic_steps_per_sec = num_steps * n_critic / seconds

  if profile_dir:  # Untimed: tracing slows the step.
    tf.profiler.experimental.start(profile_dir)
    time_train_loop(trainer, 1, 1)
    tf.profiler.experimental.stop()
  ceiling_after = measure_matmul_ceiling(device, ceiling_size)
  ceiling = max(ceiling_before['flops_per_sec'], ceiling_after['flops_per_sec'])
  images_per_sec = critic_steps_per_sec * train_config.global_batch_size
  achieved = critic_steps_per_sec * flops['per_critic_step']
  result.update({
      'critic_steps_per_sec': critic_steps_per_sec, 'images_per_sec': images_per_sec,
      'seconds': seconds, 'steps': num_steps,
      'flops_per_critic_step': flops['per_critic_step'],
      'flops_per_critic_update': flops['critic_update'],
      'flops_per_generator_update': flops['generator_update'],
      'flops_per_critic_step_as_run': flops_as_run['per_critic_step'],
      'achieved_flops_per_sec': achieved, 'ceiling_flops_per_sec': ceiling,
      'ceiling_matmul_size': max(ceiling_before['size'], ceiling_after['size']),
      'ceiling_flops_per_sec_before': ceiling_before['flops_per_sec'],
      'ceiling_flops_per_sec_after': ceiling_after['flops_per_sec'],
      'ceiling_fraction': achieved / ceiling,
      'input_headroom': result['input_images_per_sec'] / images_per_sec,
  })
  if baseline:
    result['baseline_critic_steps_per_sec'] = num_steps * n_critic / naive_seconds
    result['speedup_vs_baseline'] = critic_steps_per_sec / result[
        'baseline_critic_steps_per_sec']
  result['load_average_end'] = _load()
  return result


def _in_memory_images(source: sources.Source) -> np.ndarray:
  if source.images is None:
    raise ValueError(f'--baseline needs an in-memory data source, not files ({source.name})')
  return source.images


def format_table(result: dict) -> str:
  """The human-readable summary printed before the JSON line."""
  rows = [('device', result['device']), ('replicas', result['replicas']),
          ('model', f"{result['architecture']}, batch {result['global_batch_size']}, "
                    f"n_critic {result['n_critic']}, {result['mixed_precision']}, "
                    f"jit_compile={result['jit_compile']}"),
          ('input pipeline', f"{result['input_images_per_sec']:,.0f} images/s")]
  if 'critic_steps_per_sec' in result:
    rows += [
        ('critic updates/s', f"{result['critic_steps_per_sec']:.3f}  "
                             f"({result['steps']} generator steps in {result['seconds']:.1f} s)"),
        ('images/s', f"{result['images_per_sec']:.1f}  (input headroom "
                     f"{result['input_headroom']:.0f}x)"),
        ('GFLOP per critic update', f"{result['flops_per_critic_update'] / 1e9:.1f}  (generator "
                                    f"update {result['flops_per_generator_update'] / 1e9:.1f}; "
                                    f"amortised {result['flops_per_critic_step'] / 1e9:.1f}; "
                                    f"as run {result['flops_per_critic_step_as_run'] / 1e9:.1f})"),
        ('achieved GFLOP/s', f"{result['achieved_flops_per_sec'] / 1e9:.1f}"),
        ('matmul ceiling GFLOP/s', f"{result['ceiling_flops_per_sec'] / 1e9:.1f}  (n="
                                   f"{result['ceiling_matmul_size']}; before "
                                   f"{result['ceiling_flops_per_sec_before'] / 1e9:.1f}, after "
                                   f"{result['ceiling_flops_per_sec_after'] / 1e9:.1f})"),
        ('fraction of ceiling', f"{100 * result['ceiling_fraction']:.1f}%")]
  if 'baseline_critic_steps_per_sec' in result:
    rows += [('naive eager critic updates/s', f"{result['baseline_critic_steps_per_sec']:.3f}"),
             ('speed-up over naive', f"{result['speedup_vs_baseline']:.2f}x")]
  rows.append(('load average (1 min)', f"{result['load_average_start']:.2f} at start, "
                                       f"{result['load_average_end']:.2f} at end"))
  width = max(len(name) for name, _ in rows)
  return '\n'.join(f'{name:<{width}}  {value}' for name, value in rows)
