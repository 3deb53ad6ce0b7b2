"""`train_and_evaluate(config, workdir)`: one whole training job, as a short driver.

It sets the job up (config check, strategy, data source, train state, restored checkpoint), then
hands a `trainer.Trainer` and the periodic actions (log, sample, evaluate, checkpoint, stop
signal, profile) to `actions.run`, which calls the trainer up to the nearest due action.

Order matters: the config is checked (with what the evaluation would refuse) and its
device-dependent 'auto' choices resolved, then the strategy created, before any other
TensorFlow work (logical CPU devices and collectives can only be set up first); the data source
is checked before models are built, and a checkpoint in the workdir is restored before the first
step. A watchdog thread (watchdog.py) bounds every call that could wait for a stuck peer, from
the restore on, and ends with the job.
"""

import dataclasses
import json
import math
import os
import time
from typing import Callable, Optional

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from wgan_dist.training import actions
from wgan_dist.training import checkpointing
from wgan_dist.config import validation as config_validation
from wgan_dist.dist import devices
from wgan_dist.dist import distribution
from wgan_dist.data import images
from wgan_dist.data import prepared
from wgan_dist.algorithm import losses
from wgan_dist.training import monitoring
from wgan_dist.dist import peers
from wgan_dist.algorithm import random_keys
from wgan_dist.tools import restore
from wgan_dist.dist import signals
from wgan_dist.data import sources
from wgan_dist.algorithm import steps
from wgan_dist.training import state as train_state
from wgan_dist.training import trainer as trainer_lib
from wgan_dist.dist import watchdog as watchdog_lib
from wgan_dist.eval import evaluator as evaluator_lib

NUM_SAMPLES = 16  # The fixed noise vectors of the 4x4 sample grid (unconditional models).
SAMPLES_PER_CLASS = 8  # Columns of a conditional model's grid: one row per class.


def fixed_sample_inputs(config: ml_collections.ConfigDict
                        ) -> tuple[tf.Tensor, Optional[tf.Tensor], int]:
  """(noise, labels or None, grid rows) of the sample grid, the same at every step.

  Unconditional: 16 noise vectors in a 4x4 grid. Conditional: one row per class, row k all
  label k, column j the same noise vector in every row (so a column shows one z across the
  classes).
  """
  conditional = config.model.num_classes > 0
  columns = SAMPLES_PER_CLASS if conditional else NUM_SAMPLES
  noise = tf.random.stateless_normal(
      [columns, config.model.noise_dim],
      seed=random_keys.key(config.seed, 0, 0, random_keys.FIXED_NOISE))
  if not conditional:
    return noise, None, 4
  noise, labels = images.class_rows(noise.numpy(), range(config.model.num_classes))
  return tf.constant(noise), tf.constant(labels), config.model.num_classes


def resolve_num_steps(config: ml_collections.ConfigDict, dataset_size: int) -> int:
  """train.num_steps, or num_epochs passes of the data through the critic when it is -1."""
  train = config.train
  if train.num_steps != -1:
    return train.num_steps
  real_images_per_step = train.global_batch_size * train.n_critic
  return max(1, math.ceil(train.num_epochs * dataset_size / real_images_per_step))


def _restore(state: train_state.TrainState, checkpointer: checkpointing.Checkpointer,
             total_steps: int) -> None:
  restored = checkpointer.restore_latest()
  if restored:
    logging.info('Resuming at step %d of %d', int(state.step.numpy()), total_steps)
    if state.ema_generator is not None and not restore.has_ema(restored):
      logging.info('Starting the EMA generator from the restored generator')
      state.ema_generator.set_weights(state.generator.get_weights())


def write_class_names(workdir: str, source: sources.Source) -> None:
  """workdir/class_names.json: the name of each label id, a JSON list (when the source has them),
  so samples of a class-conditional run can be read without the data."""
  if source.class_names is None:
    return
  tf.io.gfile.makedirs(workdir)
  with tf.io.gfile.GFile(os.path.join(workdir, 'class_names.json'), 'w') as f:
    json.dump(list(source.class_names), f, indent=1)


def _evaluate(evaluator: evaluator_lib.Evaluator,
              state: train_state.TrainState) -> dict[str, float]:
  """eval/* scalars of the generator (and eval_ema/* of the averaged one), with class shares."""
  scalars = evaluator.evaluate(state.generator).all_scalars()
  logging.info('Evaluation: %s', ', '.join(f'{k} {v:.4g}' for k, v in sorted(scalars.items())
                                           if 'class_share_' not in k))
  if state.ema_generator is not None:
    scalars.update({name.replace('eval/', 'eval_ema/', 1): value for name, value in
                    evaluator.evaluate(state.ema_generator).all_scalars().items()})
  return scalars


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains (or resumes) WGAN-GP for `config` in `workdir`; returns the last logged means."""
  config_validation.validate(config)
  # What the evaluator would refuse, refused before any work (it needs the data's backbone,
  # which config_validation does not know about).
  evaluation_error = (evaluator_lib.conditional_error(config) if config.eval_every_steps > 0
                      else None)
  if evaluation_error:
    raise config_validation.ConfigError(evaluation_error)
  # The device-dependent 'auto' choices, made once: the strategy, the models and config.json
  # see the same values.
  config = devices.resolve(config, distribution.strategy_kind(config, devices.num_gpus()))
  multi_worker = len(distribution.cluster_tasks()) > 1
  # Bounds every call below that could wait for a stuck peer or storage (watchdog.py).
  watchdog = watchdog_lib.Watchdog(config.distribution.step_timeout_secs,
                                   config.distribution.stop_grace_secs)
  try:  # The watchdog's thread ends with the job, however the job ends.
    return _train(config, workdir, multi_worker, watchdog)
  finally:
    watchdog.close()


def _train(config: ml_collections.ConfigDict, workdir: str, multi_worker: bool,
           watchdog: watchdog_lib.Watchdog) -> dict[str, float]:
  """train_and_evaluate after its checks: set up, restore, train; returns the last means."""
  with peers.naming_lost_workers(multi_worker):
    # Creating the strategy waits for every worker to register, inside TensorFlow; bound it.
    # (Later waits are bounded by TensorFlow's heartbeats and the watchdog; a slow but live
    # peer is not lost.)
    with peers.startup_deadline(config.distribution.peer_timeout_secs):
      strategy = distribution.create_strategy(config)
      devices.check_workers_agree(config, distribution.cluster_tasks(), distribution.this_task(),
                                  config.distribution.peer_timeout_secs)
    config_validation.validate_replicas(config, strategy.num_replicas_in_sync)
    source = sources.load_source(config)
    total_steps = resolve_num_steps(config, source.size)
    state = train_state.create_train_state(config, strategy, total_steps)
    logging.info('Generator %s: %d parameters; critic %s: %d parameters', state.generator.name,
                 state.generator.count_params(), state.critic.name,
                 state.critic.count_params())
    is_chief = distribution.is_chief()
    checkpointer = checkpointing.Checkpointer(workdir, config.max_checkpoints_to_keep,
                                              is_chief=is_chief, **state.as_dict())
    with watchdog.watch('restore', 'restoring the newest checkpoint'):
      _restore(state, checkpointer, total_steps)
  first_step = int(state.step.numpy())
  if multi_worker:
    with watchdog.watch('resume check', f'checking all workers resumed at step {first_step}'):
      peers.check_same_step(strategy, first_step)

  trainer = trainer_lib.Trainer(strategy=strategy, config=config, state=state, source=source)
  # The source: Inception's reference images are drawn from it (a folder is not scanned twice).
  evaluator = (evaluator_lib.make_evaluator(config, strategy, source=source)
               if config.eval_every_steps > 0 else None)
  monitor = monitoring.Monitor(
      workdir, total_steps=total_steps,
      images_per_step=config.train.n_critic * config.train.global_batch_size, is_chief=is_chief)
  monitor.write_config(config, first_step)
  if is_chief:
    write_class_names(workdir, source)
  monitor.write_hparams(config, evaluator_lib.metric_tags(
      evaluator, with_ema=state.ema_generator is not None))
  profiler = actions.Profiler(config.profile_steps, os.path.join(workdir, 'profile'), is_chief)
  try:
    with signals.StopSignals(on_signal=watchdog.stop_requested) as stop_signals:
      run = _Run(config, total_steps, trainer, checkpointer, monitor, profiler, evaluator,
                 is_chief, signals.Agreement(strategy, multi_worker), stop_signals, watchdog)
      step = actions.run(run.train, run.actions(), first_step=first_step, last_step=total_steps,
                         steps_per_loop=config.train.steps_per_loop)
      if not run.last_means:
        logging.info('Nothing to do: the checkpoint is at step %d of %d', step, total_steps)
  except tf.errors.OpError as error:
    shard_error = prepared.data_error(error)  # A prepared dataset's bad shard, in one line.
    if shard_error is not None:
      raise shard_error from error
    if multi_worker and peers.is_lost_worker(error):  # Name the lost peer in one line.
      raise peers.lost_worker_error(error) from error
    raise
  finally:
    profiler.stop()
    monitor.close()  # Flushes what was written, even when a step fails.
  return run.last_means


class _Run:
  """The training call and the periodic actions of one run, sharing its parts."""

  def __init__(self, config: ml_collections.ConfigDict, total_steps: int,
               trainer: trainer_lib.Trainer, checkpointer: checkpointing.Checkpointer,
               monitor: monitoring.Monitor, profiler: actions.Profiler,
               evaluator: Optional[evaluator_lib.Evaluator], is_chief: bool,
               agreement: signals.Agreement, stop_signals: signals.StopSignals,
               watchdog: watchdog_lib.Watchdog):
    self._total_steps, self._trainer, self._state = total_steps, trainer, trainer.state
    self._watchdog = watchdog
    self._checkpointer, self._monitor, self._profiler = checkpointer, monitor, profiler
    self._evaluator, self._is_chief = evaluator, is_chief
    self._agreement, self._stop_signals = agreement, stop_signals
    self._traced = False
    self.last_means: dict[str, float] = {}
    # From the config alone, so the same on every worker (actions.py).
    self._schedules = {
        'log': actions.Every(config.log_every_steps, total_steps),
        'sample': actions.Every(config.sample_every_steps, total_steps),
        'evaluate': actions.Every(config.eval_every_steps, total_steps) if evaluator else None,
        'checkpoint': actions.Every(config.checkpoint_every_steps, total_steps)}
    noise, labels, self._sample_rows = fixed_sample_inputs(config)
    generator = self._state.generator
    self._sample = tf.function(
        lambda: generator(losses.generator_inputs(noise, labels), training=False))

  def _watched(self, name: str, run: Callable[[int], None]) -> Callable[[int], None]:
    def watched(step: int) -> None:
      with self._watchdog.watch(name, f'the {name} action at step {step}'):
        run(step)
    return watched

  def _actions(self) -> list[actions.Action]:  # Before `actions`, which hides the module.
    schedules = self._schedules
    return [
        actions.Action('log', schedules['log'], self._log),
        actions.Action('sample', schedules['sample'], self._write_sample),
    ] + ([actions.Action('evaluate', schedules['evaluate'], self._evaluate)]
         if self._evaluator else []) + [
        actions.Action('checkpoint', schedules['checkpoint'], self._save),
        actions.Action('stop signal', actions.AfterEveryCall(), self._stop_if_signalled),
        # Last: a trace that starts at a step leaves out the actions before it.
        actions.Action('profile', self._profiler.schedule, self._profiler.update, at_start=True),
    ]

  def actions(self) -> list[actions.Action]:
    """The actions in the order they run when due at the same step, each under the watchdog."""
    return [dataclasses.replace(action, run=self._watched(action.name, action.run))
            for action in self._actions()]

  def train(self, num_steps: int) -> int:
    """One trainer call; fails on a non-finite step; returns the step reached."""
    step = int(self._state.step.numpy())
    start = time.perf_counter()
    with self._profiler.step_marker(step), self._watchdog.watch(
        'train', f'the training call of generator steps {step + 1} to {step + num_steps}',
        units=num_steps):
      metrics, status = self._trainer.train(num_steps)
    seconds = time.perf_counter() - start
    step += status.steps_run
    if status.nonfinite_step is not None:
      # The quantities of the first bad step: the later steps of the call ran on broken
      # weights, so the call's means would name nearly every metric.
      raise steps.NonFiniteError(status.nonfinite_step, list(status.nonfinite_metrics),
                                 self._checkpointer.latest())
    # The first call traces the loop: leave it out of steps/s.
    self._monitor.accumulate(metrics, status.steps_run, seconds if self._traced else None)
    self._traced = True
    return step

  def _log(self, step: int) -> None:
    self.last_means = self._monitor.log(step, train_state.scalars(self._state))

  def _write_sample(self, step: int) -> None:
    if self._is_chief:
      self._monitor.write_samples(step, np.asarray(self._sample()), self._sample_rows)

  def _evaluate(self, step: int) -> None:
    # Every worker evaluates (the gathers are collectives); only the chief's writer writes.
    self._monitor.write_scalars(step, _evaluate(self._evaluator, self._state))

  def _save(self, step: int) -> Optional[str]:
    # Never save a broken state over a good one.
    train_state.check_finite_weights(self._state, step, self._checkpointer.latest())
    path = self._checkpointer.save(step)
    logging.info('Saved checkpoint at step %d: %s', step, path or 'the chief keeps it')
    return path

  def _stop_if_signalled(self, step: int) -> None:
    stop_signal = self._agreement.signal(self._stop_signals.requested)
    if stop_signal and step < self._total_steps:
      path = (self._checkpointer.latest() if self._schedules['checkpoint'].is_due(step)
              else self._save(step))
      raise signals.Stopped(stop_signal, step, path)
