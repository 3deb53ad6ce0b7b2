"""`Trainer`: runs generator steps. It owns the train state, the input iterator and the compiled
loop; `train(num_steps)` runs that many steps in one tf.function call of the loop, which returns
three values (the mean metrics, the first non-finite step or -1, and that step's metric row),
and returns two: the mean metrics and, apart from them, the loop's status (`LoopStatus`).

One generator step is n_critic critic steps (each on a fresh real batch, with its labels for a
class-conditional model) and one generator step (steps.py), then the EMA update and the step
counter. Several steps per call keep the host out of the way, and so do the metrics: each
replica accumulates its share of them on its own device, and they are gathered once, after the
call's last step (no decision inside the loop waits for the devices). The call reports the first
step with a non-finite loss or gradient norm, and which metrics were not finite in it, so that
the caller can fail before anything is saved; the steps after it in the same call run on broken
weights that are never saved.
"""

import dataclasses
from typing import Optional

import ml_collections
import numpy as np
import tensorflow as tf

from wgan_dist.algorithm import ema
from wgan_dist.data import input_pipeline
from wgan_dist.data import sources
from wgan_dist.algorithm import steps
from wgan_dist.training import state as train_state


# "No non-finite step", as an offset in the call: beyond any call's length, and exact as a
# float32 (2^24), the type it is gathered in.
_NO_STEP = 2**24


@dataclasses.dataclass(frozen=True)
class LoopStatus:
  """What one `Trainer.train` call did, besides its metrics."""
  steps_run: int  # Every step asked for (the loop has no early exit).
  # The first generator step (1-based: the step counter after it) whose loss or gradient norm
  # was not finite, with all its updates applied; None when every step was finite. (A step the
  # loss scale skipped changed nothing and does not count.)
  nonfinite_step: Optional[int] = None
  # The metrics that were not finite in that step (on the first replica that saw it), sorted.
  nonfinite_metrics: tuple[str, ...] = ()


class Trainer:
  """Generator steps of `state` on real batches of `source`, on every replica of `strategy`.

  `critic_step` and `generator_step` (steps.py) are attributes, callable alone. The input
  stream starts where `state.step` says, so a resumed run reads what an uninterrupted one
  would have read next.
  """

  def __init__(self, *, strategy: tf.distribute.Strategy, config: ml_collections.ConfigDict,
               state: train_state.TrainState, source: sources.Source):
    self.strategy = strategy
    self.state = state
    self._n_critic = config.train.n_critic
    self._ema_decay = config.train.ema_decay
    self._ema_warmup = config.train.ema_warmup
    self.metric_names = steps.metric_names(config)
    # Which update measures what, as the steps declare it.
    self._critic_side = set(steps.critic_metric_names(config))
    self._generator_side = set(steps.generator_metric_names(config))
    assert self._critic_side | self._generator_side == set(self.metric_names)
    self.critic_step = steps.make_critic_step(
        strategy=strategy, config=config, generator=state.generator, critic=state.critic,
        critic_optimizer=state.critic_optimizer, augment_p=state.augment_p)
    self.generator_step = steps.make_generator_step(
        strategy=strategy, config=config, generator=state.generator, critic=state.critic,
        generator_optimizer=state.generator_optimizer, augment_p=state.augment_p)
    self.iterator = iter(input_pipeline.make_distributed_dataset(
        strategy, config, source, first_step=int(state.step.numpy())))
    # Per replica, on its device (synchronised on read, i.e. never by the loop): the current
    # step's metric shares and skip flags, their totals over the call, and the call's first
    # step that went non-finite (_NO_STEP if none). Not part of the checkpoint.
    width = len(self.metric_names) + 1  # The metrics, then the skipped updates.
    with strategy.scope():
      def local(initial: tf.Tensor) -> tf.Variable:
        return tf.Variable(initial, trainable=False,
                           synchronization=tf.VariableSynchronization.ON_READ,
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self._step_row = local(tf.zeros([width]))
      self._totals = local(tf.zeros([width]))
      self._first_nonfinite = local(tf.constant(_NO_STEP, tf.int64))
      self._first_bad_row = local(tf.zeros([width]))  # That step's row.
    # `loop(iterator, num_steps) -> (metric means, first non-finite step or -1, that step's
    # metric row)`; public so that the benchmark can count the FLOPs of its graph.
    self.loop = tf.function(self._loop)

  def train(self, num_steps: int) -> tuple[dict[str, float], LoopStatus]:
    """Runs `num_steps` generator steps; returns ({metric: mean over them}, status)."""
    means, nonfinite_step, bad_row = self.loop(self.iterator, tf.constant(num_steps, tf.int32))
    nonfinite_step = int(nonfinite_step)
    if nonfinite_step < 0:
      return {name: float(value) for name, value in means.items()}, LoopStatus(num_steps)
    bad = tuple(sorted(name for name, value in zip(self.metric_names, bad_row.numpy())
                       if not np.isfinite(value)))
    return ({name: float(value) for name, value in means.items()},
            LoopStatus(num_steps, nonfinite_step, bad))

  # The replica side: every write below stays on the replica's own device.

  def _add_to_step(self, metrics: dict[str, tf.Tensor], weight: float) -> None:
    """Adds weight * this replica's share of each metric, and its skip flag, to the step's row."""
    self._step_row.assign_add(tf.stack(
        [weight * metrics[name] if name in metrics else 0.0 for name in self.metric_names] +
        [metrics[steps.SKIPPED]]))

  def _end_step(self, offset: tf.Tensor) -> None:
    """Adds the step's row to the call's totals; records the step (its 1-based `offset` in the
    call) if it went non-finite."""
    row = self._step_row.read_value()
    # A non-finite value in a step whose updates were all applied means the weights are no
    # longer finite. (A step the loss scale skipped changed nothing.) A metric is the sum of the
    # replicas' shares: it is non-finite when a share is.
    bad = tf.logical_and(tf.logical_not(steps.all_finite([row[:-1]])), row[-1] <= 0.0)
    first = tf.logical_and(bad, offset < self._first_nonfinite)
    self._first_nonfinite.assign(tf.where(first, offset, self._first_nonfinite))
    self._first_bad_row.assign(tf.where(first, row, self._first_bad_row))
    self._totals.assign_add(row)
    self._step_row.assign(tf.zeros_like(row))

  def _reset(self) -> None:
    self._totals.assign(tf.zeros_like(self._totals))
    self._step_row.assign(tf.zeros_like(self._step_row))
    self._first_nonfinite.assign(_NO_STEP)
    self._first_bad_row.assign(tf.zeros_like(self._first_bad_row))

  def _local_results(self) -> tf.Tensor:
    """[1, this replica's totals..., first non-finite step, that step's row...] (the step as a
    float32: exact)."""
    return tf.concat([self._totals.read_value(),
                      [tf.cast(self._first_nonfinite, tf.float32)],
                      self._first_bad_row.read_value()], axis=0)[tf.newaxis]

  # The loop, in cross-replica context.

  def _one_step(self, iterator, step: tf.Tensor, first_step: tf.Tensor) -> None:
    """One generator step (n_critic critic updates first) of a call that started at
    `first_step`; its metrics stay on the replicas."""
    for iteration in tf.range(self._n_critic):
      critic = self.critic_step.per_replica(next(iterator), step, iteration)
      # At trace time: a metric missing from a step would be logged as zeros.
      assert set(critic) == self._critic_side | {steps.SKIPPED}, critic.keys()
      self.strategy.run(self._add_to_step, args=(critic, 1.0 / self._n_critic))
    generator = self.generator_step.per_replica(step)
    assert set(generator) == self._generator_side | {steps.SKIPPED}, generator.keys()
    self.strategy.run(self._add_to_step, args=(generator, 1.0))
    self.strategy.run(self._end_step, args=(step + 1 - first_step,))
    if self.state.ema_generator is not None:
      # t = generator steps done, this one included; restored with the step counter.
      ema.update(self.state.ema_generator, self.state.generator,
                 ema.warmup_decay(self._ema_decay, step + 1) if self._ema_warmup
                 else self._ema_decay)
    self.state.step.assign_add(1)

  def _loop(self, iterator, num_steps: tf.Tensor):
    self.strategy.run(self._reset)
    first_step = self.state.step.read_value()
    # Nothing in the loop depends on what the replicas computed, so the host never waits for
    # the devices inside it: the metrics reach the host once, after the last step.
    for _ in tf.range(num_steps):
      self._one_step(iterator, self.state.step.read_value(), first_step)
    # The call's one cross-replica collective: every replica's totals, first non-finite step
    # and that step's row, gathered (a minimum is not among the reductions strategies offer).
    results = self.strategy.gather(self.strategy.run(self._local_results), axis=0)
    width = len(self.metric_names) + 1
    totals = tf.reduce_sum(results[:, :width], axis=0)
    first_replica = tf.argmin(results[:, width])
    offset = tf.cast(results[first_replica, width], tf.int64)
    self.state.skipped_updates.assign_add(tf.cast(tf.round(totals[-1]), tf.int64))
    means = {name: totals[index] / tf.cast(num_steps, tf.float32)
             for index, name in enumerate(self.metric_names)}
    nonfinite_step = tf.where(offset == _NO_STEP, tf.constant(-1, tf.int64), first_step + offset)
    return means, nonfinite_step, results[first_replica, width + 1:width + width]
