"""The evaluate action: every `eval_every_steps` generator steps (0 = off) and at the last step,
the evaluator's eval/* scalars of the generator (and eval_ema/* of the averaged one) to
TensorBoard, with one console line giving both generators' figures side by side, and the
critic-overfitting gauge eval/critic_overfit (training/overfit.py) when the data have held-out
images, augmented run or not. Off when eval_every_steps is 0; when the data have no evaluation
backbone (evaluator.make_evaluator) the gauge is still read."""

from typing import Optional

import ml_collections
from absl import logging

from wgan_dist.eval import evaluator as evaluator_lib
from wgan_dist.eval import records
from wgan_dist.training import context
from wgan_dist.training import controller
from wgan_dist.training import overfit
from wgan_dist.training import schedules
from wgan_dist.training import state as train_state


def evaluate(evaluator: evaluator_lib.Evaluator, state: train_state.TrainState,
             records_workdir: Optional[str] = None, step: int = 0) -> dict[str, float]:
  """eval/* scalars of the generator (and eval_ema/* of the averaged one), with class shares
  (means over config.eval_seeds noise draws, and eval/<metric>_std when more than one); with
  `records_workdir` (the chief's workdir), a record of each evaluation in its
  eval/records.jsonl."""
  evaluation = evaluator.evaluate(state.generator)
  scalars = evaluation.all_scalars()
  evaluations = [(evaluation, False)]
  if state.ema_generator is not None:
    evaluations.append((evaluator.evaluate(state.ema_generator), True))
    scalars.update({name.replace('eval/', 'eval_ema/', 1): value for name, value in
                    evaluations[-1][0].all_scalars().items()})
  logging.info('Evaluation: %s', console_line(scalars))
  if records_workdir is not None:
    for measured, ema in evaluations:
      records.append(records_workdir, records.make_record(
          measured.report(), step=step, checkpoint=None, ema=ema, source='training'))
  return scalars


def console_line(scalars: dict[str, float]) -> str:
  """'eval/fid 12.3 (EMA 10.1), ...': each eval/* figure, with the EMA generator's (eval_ema/*)
  beside it when there is one; class shares left out (TensorBoard has them)."""
  parts = []
  for name, value in sorted(scalars.items()):
    if not name.startswith('eval/') or 'class_share_' in name:
      continue
    ema = scalars.get(name.replace('eval/', 'eval_ema/', 1))
    parts.append(f'{name} {value:.4g}' + ('' if ema is None else f' (EMA {ema:.4g})'))
  return ', '.join(parts)


# r_v of the trained critic at each evaluation (training/overfit.py).
OVERFIT_TAG = 'eval/critic_overfit'


class Evaluate(controller.PeriodicAction):
  """Evaluates on every worker (the gathers are collectives); only the chief's writer writes."""
  name = 'evaluate'
  field = 'eval_every_steps'

  @staticmethod
  def config_error(config: ml_collections.ConfigDict) -> Optional[str]:
    # What the evaluator would refuse (it needs the data's backbone, which config validation
    # does not know about).
    return (evaluator_lib.conditional_error(config) if config.eval_every_steps > 0
            else None)

  def __init__(self, run: context.Run):
    # The source: Inception's reference images are drawn from it (a folder is not scanned
    # twice).
    on = run.config.eval_every_steps > 0
    # The loaded source: an Inception reference drawn from it is not a data.limit run's own
    # training set.
    self._evaluator = (evaluator_lib.make_evaluator(
        run.config, run.strategy, source=run.loaded if run.loaded is not None else run.source)
                       if on else None)
    self._gauge = (overfit.make_gauge(run.config, run.strategy, run.source, run.heldout,
                                      run.state.critic, run.state.generator) if on else None)
    self.schedule = schedules.Every(
        run.config.eval_every_steps if self._evaluator or self._gauge else 0, run.total_steps)
    self.hparams_metrics = tuple(evaluator_lib.metric_tags(
        self._evaluator, with_ema=run.state.ema_generator is not None)) + (
            (OVERFIT_TAG,) if self._gauge else ())
    self._monitor, self._state = run.monitor, run.state
    # Only the chief writes the evaluation records.
    self._records_workdir = run.workdir if run.is_chief else None

  def run(self, step: int) -> None:
    scalars = (evaluate(self._evaluator, self._state, self._records_workdir, step)
               if self._evaluator else {})
    if self._gauge:
      reading = self._gauge.read()
      logging.info('Critic overfitting r_v %.3f (mean D: training %.4g, held-out %.4g, fakes '
                   '%.4g; %d images each)', reading.overfit, reading.train_score,
                   reading.heldout_score, reading.fake_score, reading.images)
      scalars[OVERFIT_TAG] = reading.overfit
    self._monitor.write_scalars(step, scalars)
