"""A run's history scored after the fact: every kept checkpoint through one `Evaluator`.

`python -m wgan_dist.evaluate --all_checkpoints` uses this. For each checkpoint (oldest first)
the generator (or its EMA copy) is restored into one model and evaluated; the scalars go into
the run's own TensorBoard events (workdir/train, through `monitoring.Monitor`) at the
checkpoint's step, as eval/* (raw) or eval_ema/* (EMA), so a run trained without
eval_every_steps gets its curves, and `report` draws them; and into a CSV,
workdir/eval/history.csv (history_ema.csv for the EMA generator), rewritten whole each time.

TensorBoard's reader keeps, for a tag, the last value written at a step; and when a tag's step
goes back it drops that tag's later points from older files. So scoring again replaces the
earlier values of the same tags from the first scored step on (training-time evaluations of
checkpoints that were rotated away, before that step, stay).
"""

import csv
import os
from typing import Callable, Optional

import tensorflow as tf

from wgan_dist.eval import evaluator as evaluator_lib
from wgan_dist.tools import restore
from wgan_dist.training import monitoring

Result = tuple[restore.Restored, evaluator_lib.Evaluation]


def ema_tags(scalars: dict[str, float], ema: bool) -> dict[str, float]:
  """eval/* tags as they are logged for the generator: eval_ema/* for the EMA copy."""
  return {tag.replace('eval/', 'eval_ema/', 1) if ema else tag: value
          for tag, value in scalars.items()}


def score_checkpoints(workdir: str, evaluator: evaluator_lib.Evaluator, *,
                      ema: Optional[bool], strategy: tf.distribute.Strategy,
                      num_samples: Optional[int] = None, seeds: Optional[int] = None,
                      on_result: Optional[Callable[[Result], None]] = None) -> list[Result]:
  """Evaluates the generator of every kept checkpoint, oldest first; `on_result` sees each
  (restored, evaluation) as it is measured."""
  results = []
  for restored in restore.load_generators(workdir, ema=ema, strategy=strategy):
    evaluation = evaluator.evaluate(restored.generator, num_samples, seeds)
    results.append((restored, evaluation))
    if on_result is not None:
      on_result((restored, evaluation))
  return results


def write_events(workdir: str, results: list[Result]) -> None:
  """Each result's eval scalars into workdir/train's events at its checkpoint's step."""
  if not results:
    return
  monitor = monitoring.Monitor(workdir, total_steps=max(r.step for r, _ in results),
                               images_per_step=0)
  try:
    for restored, evaluation in results:
      monitor.write_scalars(restored.step, ema_tags(evaluation.all_scalars(), restored.ema))
  finally:
    monitor.close()


def csv_path(workdir: str, ema: bool) -> str:
  return os.path.join(workdir, 'eval', 'history_ema.csv' if ema else 'history.csv')


def write_csv(workdir: str, results: list[Result]) -> Optional[str]:
  """workdir/eval/history[_ema].csv: step, checkpoint, generator and every figure of each
  result (KID's subset std and stds over draws included); returns its path."""
  if not results:
    return None
  ema = results[0][0].ema
  rows = []
  for restored, evaluation in results:
    figures = {key: value for key, value in evaluation.report().items()
               if isinstance(value, float)}
    rows.append({'step': restored.step, 'checkpoint': restored.checkpoint,
                 'generator': 'ema' if restored.ema else 'raw', **figures})
  columns = list(rows[0])
  for row in rows[1:]:
    columns += [key for key in row if key not in columns]
  path = csv_path(workdir, ema)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
  return path


def read_csv(path: str) -> list[dict[str, str]]:
  """The rows of a history CSV, as strings."""
  with tf.io.gfile.GFile(path) as f:
    return list(csv.DictReader(f))
