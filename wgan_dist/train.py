"""`train_and_evaluate(config, workdir)`: one whole training job.

It checks the config, sets the job up (strategy, data source, train state, the newest
checkpoint restored), builds the periodic actions (training/actions.py, one list) and hands
them with a `trainer.Trainer` to `controller.Controller`, which calls the trainer up to the
nearest due action until the last step.

Order matters: the config is checked (with what the actions would refuse) and its
device-dependent 'auto' choices resolved, then the strategy created, before any other
TensorFlow work (logical CPU devices and collectives can only be set up first); the data source
is checked (and its identity compared across the workers) before models are built, and a
checkpoint in the workdir is restored, and its record of the data order compared
(training/run_identity.py), before the first step. A watchdog thread (watchdog.py) bounds every call that could wait for a stuck peer, from
the restore on, and ends with the job.
"""

import json
import os
from typing import Optional

import ml_collections
import tensorflow as tf
from absl import logging

from wgan_dist.config import validation as config_validation
from wgan_dist.data import prepared
from wgan_dist.data import sources
from wgan_dist.dist import devices
from wgan_dist.dist import distribution
from wgan_dist.dist import peers
from wgan_dist.dist import signals
from wgan_dist.dist import watchdog as watchdog_lib
from wgan_dist.eval import reference
from wgan_dist.tools import restore
from wgan_dist.training import actions
from wgan_dist.training import checkpointing
from wgan_dist.training import context
from wgan_dist.training import controller
from wgan_dist.training import monitoring
from wgan_dist.training import overfit
from wgan_dist.training import run_identity
from wgan_dist.training import state as train_state
from wgan_dist.training import trainer as trainer_lib


def write_class_names(workdir: str, source: sources.Source) -> None:
  """workdir/class_names.json: the name of each label id, a JSON list (when the source has them),
  so samples of a class-conditional run can be read without the data."""
  if source.class_names is None:
    return
  tf.io.gfile.makedirs(workdir)
  with tf.io.gfile.GFile(os.path.join(workdir, 'class_names.json'), 'w') as f:
    json.dump(list(source.class_names), f, indent=1)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains (or resumes) WGAN-GP for `config` in `workdir`; returns the last logged means ({}
  when nothing was logged)."""
  config_validation.validate(config)
  actions.check(config)
  # The device-dependent 'auto' choices, made once: the strategy, the models and config.json
  # see the same values.
  config = devices.resolve(config, distribution.strategy_kind(config, devices.num_gpus()))
  multi_worker = len(distribution.cluster_tasks()) > 1
  # Bounds every call below that could wait for a stuck peer or storage (watchdog.py).
  watchdog = watchdog_lib.Watchdog(config.distribution.step_timeout_secs,
                                   config.distribution.stop_grace_secs)
  try:  # The watchdog's thread ends with the job, however the job ends.
    with peers.naming_lost_workers(multi_worker), prepared.naming_bad_shards():
      return _train(config, workdir, multi_worker, watchdog)
  finally:
    watchdog.close()


def training_data(config: ml_collections.ConfigDict,
                  loaded: Optional[sources.Source] = None) -> tuple[sources.Source, int]:
  """(the examples the generator trains on, the run's generator steps).

  The examples leave out the evaluation reference's images when config.eval_reference holds
  them out (eval/reference.py), then keep the first data.limit of the rest (data/limit.py), and
  train.num_steps=-1 counts epochs of what remains.
  `loaded`: the config's source when already loaded (else loaded here).
  """
  if loaded is None:
    loaded = sources.load_source(config)
  source = reference.trained_on(config, loaded)
  return source, train_state.resolve_num_steps(config, source.size)


def _train(config: ml_collections.ConfigDict, workdir: str, multi_worker: bool,
           watchdog: watchdog_lib.Watchdog) -> dict[str, float]:
  """train_and_evaluate after its checks: set up, restore, train; returns the last means."""
  # Creating the strategy waits for every worker to register, inside TensorFlow; bound it.
  # (Later waits are bounded by TensorFlow's heartbeats and the watchdog.)
  with peers.startup_deadline(config.distribution.peer_timeout_secs):
    strategy = distribution.create_strategy(config)
    devices.check_workers_agree(config, distribution.cluster_tasks(), distribution.this_task(),
                                config.distribution.peer_timeout_secs)
  config_validation.validate_replicas(config, strategy.num_replicas_in_sync)
  loaded = sources.load_source(config)
  source, total_steps = training_data(config, loaded)
  # What the generator trains on (after the held-out split and data.limit) is the identity.
  recorder = run_identity.start(config, loaded, source, distribution.cluster_tasks(),
                                distribution.this_task())
  heldout = overfit.heldout_source(config, loaded)
  overfit.check_adaptive(config, source, heldout)  # Before any model is built.
  state = train_state.create_train_state(config, strategy, total_steps)
  logging.info('Generator %s: %d parameters; critic %s: %d parameters', state.generator.name,
               state.generator.count_params(), state.critic.name, state.critic.count_params())
  is_chief = distribution.is_chief()
  checkpointer = checkpointing.Checkpointer(
      workdir, config.max_checkpoints_to_keep, is_chief=is_chief,
      optional=('ema_generator', 'augment_p', run_identity.KEY), **state.as_dict(),
      **recorder.trackables())
  with watchdog.watch('restore', 'restoring the newest checkpoint'):
    restored = checkpointer.restore_latest()
  recorder.check_resume(restored, config.data.allow_changed_on_resume)
  if state.augment_p is not None and config.augment.target == 0:
    # A fixed p is the config's, also on resume (the adaptive p continues from the checkpoint's,
    # or from augment.p when the checkpoint has none).
    state.augment_p.assign(config.augment.p)
  first_step = int(state.step.numpy())
  if restored:
    logging.info('Resuming at step %d of %d', first_step, total_steps)
    if state.ema_generator is not None and not restore.has_ema(restored):
      logging.info('Starting the EMA generator from the restored generator')
      state.ema_generator.set_weights(state.generator.get_weights())
  if multi_worker:
    with watchdog.watch('resume check', f'checking all workers resumed at step {first_step}'):
      peers.check_same_step(strategy, first_step)

  trainer = trainer_lib.Trainer(strategy=strategy, config=config, state=state, source=source)
  monitor = monitoring.Monitor(
      workdir, total_steps=total_steps,
      images_per_step=config.train.n_critic * config.train.global_batch_size, is_chief=is_chief)
  try:
    # Installed (`with`) only for the loop; built first, for the stop-signal action.
    stop_signals = signals.StopSignals(on_signal=watchdog.stop_requested)
    periodic = actions.build(context.Run(config, workdir, total_steps, strategy, state, source,
                                         monitor, checkpointer, is_chief, multi_worker,
                                         stop_signals, heldout, loaded))
    monitor.write_config(config, first_step)
    if is_chief:
      run_identity.record_in_config_json(workdir, recorder.current)
      write_class_names(workdir, source)
    monitor.write_hparams(config, [tag for action in periodic.values()
                                   for tag in action.hparams_metrics])
    with stop_signals:
      step = controller.Controller(
          trainer, list(periodic.values()), monitor=monitor, watchdog=watchdog,
          latest_checkpoint=checkpointer.latest, last_step=total_steps,
          steps_per_loop=config.train.steps_per_loop).run()
    if step == first_step:
      logging.info('Nothing to do: the checkpoint is at step %d of %d', step, total_steps)
  finally:
    monitor.close()  # Flushes what was written, even when a step fails.
    prepared.log_reads()
  return periodic['log'].last_means
