"""`train_and_evaluate(config, workdir)`: one whole training job.

Order matters: the config is checked and the strategy created before any other TensorFlow work
(logical CPU devices and collectives can only be set up first), the data source is checked
before models are built, and a checkpoint in the workdir is restored before the first step.
"""

import dataclasses
import math
import os
from typing import Optional

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from wgan_dist import checkpointing
from wgan_dist import config_validation
from wgan_dist import data
from wgan_dist import distribution
from wgan_dist import ema
from wgan_dist import models
from wgan_dist import monitoring
from wgan_dist import optimizers
from wgan_dist import peers
from wgan_dist import precision
from wgan_dist import random_keys
from wgan_dist import restore
from wgan_dist import signals
from wgan_dist import steps
from wgan_dist.eval import evaluator as evaluator_lib

NUM_SAMPLES = 16  # The fixed noise vectors of the 4x4 sample grid.


def resolve_num_steps(config: ml_collections.ConfigDict, dataset_size: int) -> int:
  """train.num_steps, or num_epochs passes of the data through the critic when it is -1."""
  train = config.train
  if train.num_steps != -1:
    return train.num_steps
  real_images_per_step = train.global_batch_size * train.n_critic
  return max(1, math.ceil(train.num_epochs * dataset_size / real_images_per_step))


def steps_until_due(step: int, every: int) -> int:
  """Generator steps from `step` to the next multiple of `every`."""
  return every - step % every


def is_due(step: int, every: int, total_steps: int) -> bool:
  """Whether a periodic action (log, sample, save) runs at `step`; the last step always does."""
  return step % every == 0 or step == total_steps


@dataclasses.dataclass(frozen=True)
class TrainState:
  """Everything a checkpoint holds; the field names are the checkpoint's keys."""
  generator: keras.Model
  critic: keras.Model
  generator_optimizer: keras.optimizers.Optimizer
  critic_optimizer: keras.optimizers.Optimizer
  step: tf.Variable  # Generator steps done; keys the noise of the next step.
  skipped_updates: tf.Variable  # Updates skipped for non-finite gradients (mixed_float16).
  ema_generator: Optional[keras.Model] = None  # Averaged weights; None when train.ema_decay=0.

  def as_dict(self) -> dict:
    # Not dataclasses.asdict: that deep-copies the models. Absent parts are left out, so a
    # checkpoint holds only what the run has.
    return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
            if getattr(self, field.name) is not None}


def create_train_state(config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy,
                       total_steps: Optional[int] = None) -> TrainState:
  """Models and optimizers under `strategy`, initialised from `config.seed`.

  `total_steps` (generator steps of the whole run) sets the length of a decaying learning rate;
  None means `config.train.num_steps`.
  """
  keras.utils.set_random_seed(config.seed)  # Weight initialisation.
  with strategy.scope():
    with precision.policy_scope(config.mixed_precision):
      generator, critic = models.build_models(config)
      ema_generator = (ema.make_ema_generator(generator, lambda: models.build_models(config)[0])
                       if config.train.ema_decay > 0 else None)
    generator_optimizer = precision.wrap_optimizer(
        optimizers.make_adam(config.train, 'generator_adam', updates_per_step=1,
                             total_steps=total_steps), config.mixed_precision,
        config.initial_loss_scale)
    critic_optimizer = precision.wrap_optimizer(
        optimizers.make_adam(config.train, 'critic_adam', updates_per_step=config.train.n_critic,
                             total_steps=total_steps), config.mixed_precision,
        config.initial_loss_scale)
    # Built now so that a restore fills their slots and the step function creates no variables.
    generator_optimizer.build(generator.trainable_variables)
    critic_optimizer.build(critic.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    skipped_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name='skipped_updates')
  return TrainState(generator, critic, generator_optimizer, critic_optimizer, step,
                    skipped_updates, ema_generator)


def _precision_scalars(state: TrainState) -> dict[str, float]:
  """train/loss_scale (critic), train/generator_loss_scale, train/skipped_steps; {} unscaled."""
  critic_scale = precision.loss_scale(state.critic_optimizer)
  if critic_scale is None:
    return {}
  return {'train/loss_scale': float(critic_scale.numpy()),
          'train/generator_loss_scale': float(
              precision.loss_scale(state.generator_optimizer).numpy()),
          'train/skipped_steps': float(state.skipped_updates.numpy())}


@dataclasses.dataclass(frozen=True)
class _Job:
  """What the start of a job establishes, before the first step."""
  strategy: tf.distribute.Strategy
  source: data.Source
  total_steps: int
  state: TrainState
  checkpointer: checkpointing.Checkpointer
  is_chief: bool


def _start(config: ml_collections.ConfigDict, workdir: str) -> _Job:
  """Strategy, data source, models and optimizers, and the restored checkpoint (if any)."""
  # Creating the strategy waits for every worker to register, inside TensorFlow; bound it.
  # (Later waits are bounded by TensorFlow's heartbeats; a slow but live peer is not lost.)
  with peers.startup_deadline(config.distribution.peer_timeout_secs):
    strategy = distribution.create_strategy(config)
  config_validation.validate_replicas(config, strategy.num_replicas_in_sync)
  source = data.load_source(config)
  total_steps = resolve_num_steps(config, source.size)

  state = create_train_state(config, strategy, total_steps)
  logging.info('Generator %s: %d parameters; critic %s: %d parameters', state.generator.name,
               state.generator.count_params(), state.critic.name, state.critic.count_params())
  is_chief = distribution.is_chief()
  checkpointer = checkpointing.Checkpointer(workdir, config.max_checkpoints_to_keep,
                                            is_chief=is_chief, **state.as_dict())
  restored = checkpointer.restore_latest()
  if restored:
    logging.info('Resuming at step %d of %d', int(state.step.numpy()), total_steps)
    if state.ema_generator is not None and not restore.has_ema(restored):
      logging.info('Starting the EMA generator from the restored generator')
      state.ema_generator.set_weights(state.generator.get_weights())
  return _Job(strategy, source, total_steps, state, checkpointer, is_chief)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains (or resumes) WGAN-GP for `config` in `workdir`; returns the last logged means."""
  config_validation.validate(config)
  multi_worker = len(distribution.cluster_tasks()) > 1
  with peers.naming_lost_workers(multi_worker):
    job = _start(config, workdir)
  strategy, source, total_steps, state = job.strategy, job.source, job.total_steps, job.state
  checkpointer, is_chief = job.checkpointer, job.is_chief
  generator, step = state.generator, state.step
  if multi_worker:
    peers.check_same_step(strategy, int(step.numpy()))

  train_loop = steps.make_train_loop(strategy=strategy, config=config, **state.as_dict())
  # The data order is a function of the step, so a resumed run reads what an uninterrupted one
  # would have read next.
  iterator = iter(data.make_distributed_dataset(strategy, config, source,
                                                first_step=int(step.numpy())))
  fixed_noise = tf.random.stateless_normal(
      [NUM_SAMPLES, config.model.noise_dim],
      seed=random_keys.key(config.seed, 0, 0, random_keys.FIXED_NOISE))
  sample = tf.function(lambda: generator(fixed_noise, training=False))
  # The source: Inception's reference images are drawn from it (a folder is not scanned twice).
  evaluator = (evaluator_lib.make_evaluator(config, strategy, source=source)
               if config.eval_every_steps > 0 else None)
  profiler = Profiler(config.profile_steps, os.path.join(workdir, 'profile'), is_chief)
  agreement = signals.Agreement(strategy, multi_worker)

  monitor = monitoring.Monitor(
      workdir, total_steps=total_steps,
      images_per_step=config.train.n_critic * config.train.global_batch_size, is_chief=is_chief)
  current = int(step.numpy())
  monitor.write_config(config, current)
  monitor.start_window(current)
  last_means: dict[str, float] = {}
  first_call = True
  intervals = [config.log_every_steps, config.sample_every_steps,
               config.checkpoint_every_steps] + (
                   [config.eval_every_steps] if evaluator else [])

  def save() -> Optional[str]:
    # Never save a broken state over a good one.
    _check_finite_weights(state, current, checkpointer.latest())
    path = checkpointer.save(current)
    logging.info('Saved checkpoint at step %d: %s', current, path or 'the chief keeps it')
    return path

  try:
    with signals.StopSignals() as stop_signals:
      while current < total_steps:
        num_steps = min([config.train.steps_per_loop, total_steps - current,
                         profiler.steps_until_boundary(current)] +
                        [steps_until_due(current, every) for every in intervals])
        profiler.update(current)
        metrics = {name: value.numpy() for name, value in
                   train_loop(iterator, tf.constant(num_steps, tf.int32)).items()}
        steps_run = int(metrics.pop(steps.STEPS_RUN))
        nonfinite_step = int(metrics.pop(steps.NONFINITE_STEP))
        current += steps_run
        if nonfinite_step >= 0:
          raise steps.NonFiniteError(nonfinite_step, sorted(
              name for name, value in metrics.items() if not np.isfinite(value)),
                                     checkpointer.latest())
        monitor.accumulate(metrics, steps_run)
        if first_call:
          monitor.start_window(current)  # Keep tracing time out of steps/s.
          first_call = False
        if is_due(current, config.log_every_steps, total_steps):
          last_means = monitor.log(current, _precision_scalars(state))
        if is_chief and is_due(current, config.sample_every_steps, total_steps):
          monitor.write_samples(current, np.asarray(sample()))
        if evaluator and is_due(current, config.eval_every_steps, total_steps):
          monitor.write_scalars(current, _evaluate(evaluator, state))
        if is_due(current, config.checkpoint_every_steps, total_steps):
          save()
        stop_signal = agreement.signal(stop_signals.requested)
        if stop_signal and current < total_steps:
          path = save() if not is_due(current, config.checkpoint_every_steps,
                                      total_steps) else checkpointer.latest()
          raise signals.Stopped(stop_signal, current, path)
      if not last_means:
        logging.info('Nothing to do: the checkpoint is at step %d of %d', current, total_steps)
  except tf.errors.OpError as error:
    if multi_worker and peers.is_lost_worker(error):  # Name the lost peer in one line.
      raise peers.lost_worker_error(error) from error
    raise
  finally:
    profiler.stop()
    monitor.close()  # Flushes what was written, even when a step fails.
  return last_means


def _check_finite_weights(state: TrainState, step: int, last_checkpoint: Optional[str]) -> None:
  """Raises NonFiniteError naming the first variables that hold NaN or Inf."""
  models_ = [state.generator, state.critic] + (
      [state.ema_generator] if state.ema_generator is not None else [])
  broken = [f'{model.name}/{variable.path}' for model in models_ for variable in model.weights
            if not bool(tf.reduce_all(tf.math.is_finite(variable)))]
  if broken:
    raise steps.NonFiniteError(step, [f'weights {", ".join(broken[:5])}'], last_checkpoint)


def _evaluate(evaluator, state: TrainState) -> dict[str, float]:
  """eval/* scalars of the generator (and eval_ema/* of the averaged one), with class shares."""
  scalars = evaluator.evaluate(state.generator)
  scalars.update(evaluator_lib.class_share_scalars(evaluator.last_histogram))
  logging.info('Evaluation: %s', ', '.join(f'{k} {v:.4g}' for k, v in sorted(scalars.items())
                                           if 'class_share_' not in k))
  if state.ema_generator is not None:
    ema_scalars = evaluator.evaluate(state.ema_generator)
    ema_scalars.update(evaluator_lib.class_share_scalars(evaluator.last_histogram))
    scalars.update({name.replace('eval/', 'eval_ema/', 1): value
                    for name, value in ema_scalars.items()})
  return scalars


class Profiler:
  """TensorFlow profiler trace of generator steps [first, last) into `logdir` (chief only)."""

  def __init__(self, steps_range, logdir: str, is_chief: bool):
    self._first, self._last = (int(steps_range[0]), int(steps_range[1]))
    self._logdir = logdir
    self._enabled = is_chief and self._last > self._first
    self._running = False

  def steps_until_boundary(self, step: int) -> int:
    """Steps to the next start or stop, so a loop call never straddles one."""
    ahead = [edge - step for edge in (self._first, self._last) if edge > step]
    return min(ahead) if self._enabled and ahead else 1 << 30

  def update(self, step: int) -> None:
    """Starts or stops the trace for the steps about to run from `step`."""
    if not self._enabled:
      return
    if not self._running and self._first <= step < self._last:
      tf.profiler.experimental.start(self._logdir)
      self._running = True
      logging.info('Profiling steps %d to %d into %s', self._first, self._last, self._logdir)
    elif self._running and step >= self._last:
      self.stop()

  def stop(self) -> None:
    if self._running:
      tf.profiler.experimental.stop()
      self._running = False
