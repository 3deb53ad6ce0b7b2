"""`Trainer`: runs generator steps. It owns the train state, the input iterator and the compiled
loop; `train(num_steps)` runs up to that many steps in one tf.function call and returns their
mean metrics and, apart from them, the loop's status.

One generator step is n_critic critic steps (each on a fresh real batch, with its labels for a
class-conditional model) and one generator step
(steps.py), then the EMA update and the step counter. Several steps per call keep the host out of
the way; the loop stops early after a step with a non-finite loss or gradient norm so that the
caller can fail before anything is saved.
"""

import dataclasses
from typing import Optional

import ml_collections
import tensorflow as tf

from wgan_dist import ema
from wgan_dist import input_pipeline
from wgan_dist import sources
from wgan_dist import steps
from wgan_dist import train_state


@dataclasses.dataclass(frozen=True)
class LoopStatus:
  """What one `Trainer.train` call did, besides its metrics."""
  steps_run: int
  # The first generator step (1-based: the step counter after it) whose loss or gradient norm
  # was not finite, with all its updates applied; None when every step was finite. (A step the
  # loss scale skipped changed nothing and does not count.)
  nonfinite_step: Optional[int] = None


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
    self.critic_step = steps.make_critic_step(
        strategy=strategy, config=config, generator=state.generator, critic=state.critic,
        critic_optimizer=state.critic_optimizer)
    self.generator_step = steps.make_generator_step(
        strategy=strategy, config=config, generator=state.generator, critic=state.critic,
        generator_optimizer=state.generator_optimizer)
    self.iterator = iter(input_pipeline.make_distributed_dataset(
        strategy, config, source, first_step=int(state.step.numpy())))
    # `loop(iterator, num_steps) -> (metric means, steps run, first non-finite step or -1)`;
    # public so that the benchmark can count the FLOPs of its graph.
    self.loop = tf.function(self._loop)

  def train(self, num_steps: int) -> tuple[dict[str, float], LoopStatus]:
    """Runs up to `num_steps` generator steps; returns ({metric: mean over them}, status)."""
    means, steps_run, nonfinite_step = self.loop(self.iterator, tf.constant(num_steps, tf.int32))
    nonfinite_step = int(nonfinite_step)
    return ({name: float(value) for name, value in means.items()},
            LoopStatus(int(steps_run), nonfinite_step if nonfinite_step >= 0 else None))

  def _count_skipped(self, flag: tf.Tensor) -> None:
    self.state.skipped_updates.assign_add(tf.cast(tf.round(flag), tf.int64))

  def _one_step(self, iterator, step: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """One generator step (n_critic critic updates first); returns its metrics and how many of
    its updates the loss scale skipped."""
    metrics = {name: tf.constant(0.0) for name in self.metric_names}
    skipped = tf.constant(0.0)
    for iteration in tf.range(self._n_critic):
      critic = self.critic_step(next(iterator), step, iteration)
      self._count_skipped(critic[steps.SKIPPED])
      skipped += critic[steps.SKIPPED]
      metrics = {name: value + critic[name] / self._n_critic if name in critic else value
                 for name, value in metrics.items()}
    generator = self.generator_step(step)
    self._count_skipped(generator[steps.SKIPPED])
    skipped += generator[steps.SKIPPED]
    metrics = {name: value + generator.get(name, 0.0) for name, value in metrics.items()}
    if self.state.ema_generator is not None:
      # t = generator steps done, this one included; restored with the step counter.
      ema.update(self.state.ema_generator, self.state.generator,
                 ema.warmup_decay(self._ema_decay, step + 1) if self._ema_warmup
                 else self._ema_decay)
    self.state.step.assign_add(1)
    return metrics, skipped

  def _loop(self, iterator, num_steps: tf.Tensor):
    totals = {name: tf.constant(0.0) for name in self.metric_names}
    steps_run = tf.constant(0, tf.int32)
    nonfinite_step = tf.constant(-1, tf.int64)
    for _ in tf.range(num_steps):
      step = self.state.step.read_value()
      metrics, skipped = self._one_step(iterator, step)
      totals = {name: totals[name] + metrics[name] for name in self.metric_names}
      steps_run += 1
      # A non-finite value in a step whose updates were all applied means the weights are no
      # longer finite: stop here. (A step the loss scale skipped changed nothing.)
      if tf.logical_and(tf.logical_not(steps.all_finite(list(metrics.values()))),
                        skipped < 0.5):
        nonfinite_step = step + 1
        break
    means = {name: total / tf.cast(steps_run, tf.float32) for name, total in totals.items()}
    return means, steps_run, nonfinite_step
