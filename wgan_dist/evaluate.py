"""Command line: FID, KID, precision / recall and classifier score (with the class histogram)
of a workdir's latest checkpoint, or of every kept one, against the held-out real MNIST images
(a class-conditional run also gets eval/conditional_accuracy, eval/intra_fid and each class's
FID); or, for other data, Inception features from local InceptionV3 weights
(wgan_dist/eval/evaluator.py).

  python -m wgan_dist.evaluate --workdir=runs/mnist [--num=1000] [--ema] [--seeds=5]
  python -m wgan_dist.evaluate --workdir=runs/mnist --all_checkpoints   # the run's history
  python -m wgan_dist.evaluate --workdir=runs/mnist --memorisation      # copies of training?
  python -m wgan_dist.evaluate --workdir=runs/cifar10 \
      [--inception_weights=/path/inception_v3_weights_tf_dim_ordering_tf_kernels.h5]

--seeds=K: every figure is the mean over K independent noise draws of --num images, with its
standard deviation (eval/<metric>_std). --all_checkpoints: every kept checkpoint, oldest first,
written into the run's TensorBoard events at its step and into workdir/eval/history.csv
(tools/history.py). Each evaluation appends a record with its protocol to
workdir/eval/records.jsonl (eval/records.py; --norecord: not).

Prints the figures, then one line of JSON (the last line) for scripts: the figures, 'protocol'
(N generated / reference, reference split, feature extractor and weights' sha256, image size,
resize, quantisation, seed and draws, step, checkpoint, EMA or raw), and step, num_samples,
num_real, ema, checkpoint at the top level; with --all_checkpoints, {'evaluations': [one such
object per checkpoint], 'csv': path}.
"""

import json
import time

from wgan_dist.config import tf_log_level  # pylint: disable=wrong-import-position

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from wgan_dist.config import validation as config_validation  # pylint: disable=wrong-import-position
from wgan_dist.tools import history  # pylint: disable=wrong-import-position
from wgan_dist.tools import restore  # pylint: disable=wrong-import-position
from wgan_dist.data import sources  # pylint: disable=wrong-import-position
from wgan_dist.eval import evaluator as evaluator_lib  # pylint: disable=wrong-import-position
from wgan_dist.eval import records  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory of a training run.')
_NUM = flags.DEFINE_integer('num', None, 'Generated images per noise draw; default the run\'s '
                            'num_eval_samples.')
_SEEDS = flags.DEFINE_integer('seeds', None, 'Independent noise draws: figures are their mean '
                              '± std; default the run\'s eval_seeds (1).')
_INCEPTION_WEIGHTS = flags.DEFINE_string(
    'inception_weights', None, 'InceptionV3 weights file for non-MNIST runs; default the run\'s '
    'eval_inception_weights.')
_EMA = flags.DEFINE_bool('ema', False, 'Evaluate the EMA generator (needs train.ema_decay > 0).')
_ALL_CHECKPOINTS = flags.DEFINE_bool(
    'all_checkpoints', False, 'Score every kept checkpoint (oldest first) and write the figures '
    'into the run\'s TensorBoard events and workdir/eval/history.csv.')
_MEMORISATION = flags.DEFINE_bool(
    'memorisation', False, 'Also measure the nearest-training-image distance of the samples '
    'against that of held-out real images (eval/memorisation_ratio ~1: new images, << 1: '
    'copies).')
_RECORD = flags.DEFINE_bool('record', True, 'Append a record per evaluation to '
                            'workdir/eval/records.jsonl.')
flags.mark_flags_as_required(['workdir'])


def _print_evaluation(restored: restore.Restored, evaluation: evaluator_lib.Evaluation,
                      num_real: int) -> None:
  draws = evaluation.protocol.get('noise_draws', 1)
  print(f'{"EMA generator" if restored.ema else "Generator"} at step {restored.step} '
        f'({restored.checkpoint}), {evaluation.num_samples} samples'
        f'{f" x {draws} noise draws" if draws > 1 else ""} vs {num_real} real images '
        f'({evaluation.protocol.get("reference_split")})')
  for tag, value in evaluation.scalars.items():
    spread = evaluation.stds.get(tag)
    extra = ''
    if tag == 'eval/kid':
      extra = f'  (± {evaluation.kid_subset_std:.5f} over subsets)'
    print(f'{tag}: {value:.4f}' + (f' ± {spread:.4f}' if spread is not None else '') + extra)
  if evaluation.class_histogram is not None:  # MNIST only: no shares over 1000 classes.
    print('class shares: ' + '  '.join(f'{k}: {share:.3f}'
                                       for k, share in enumerate(evaluation.class_histogram)))
  if evaluation.class_fids is not None:  # Class-conditional MNIST runs.
    print('class FIDs: ' + '  '.join(f'{k}: {fid:.2f}' for k, fid in
                                     enumerate(evaluation.class_fids)))


def _summary(restored: restore.Restored, evaluation: evaluator_lib.Evaluation,
             num_real: int, extra: dict) -> dict:
  """The JSON object of one evaluation: a record (figures + protocol) and the flat keys."""
  record = records.make_record({**evaluation.report(), **extra}, step=restored.step,
                               checkpoint=restored.checkpoint, ema=restored.ema,
                               source='evaluate')
  return {**record, 'step': restored.step, 'num_samples': evaluation.num_samples,
          'num_real': num_real, 'ema': restored.ema, 'checkpoint': restored.checkpoint}


def _memorisation(evaluator: evaluator_lib.Evaluator, restored: restore.Restored,
                  num: int) -> dict:
  result = evaluator.memorisation(restored.generator, num)
  print(f'memorisation: ratio {result.ratio:.3f} (median nearest-training distance of the '
        f'samples / of {len(result.held_out_distances)} held-out real images; ~1 new, << 1 '
        f'copies), copy share {result.copy_share:.3f}')
  return {'eval/memorisation_ratio': result.ratio, 'eval/copy_share': result.copy_share}


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  workdir = _WORKDIR.value
  try:
    config = restore.load_config(workdir)
    if _INCEPTION_WEIGHTS.value is not None:
      config.eval_inception_weights = _INCEPTION_WEIGHTS.value
    reason = evaluator_lib.unsupported_reason(config)
    if reason:
      raise evaluator_lib.UnsupportedEvaluation(reason)
    strategy = restore.local_strategy(config)
    if _ALL_CHECKPOINTS.value:
      restore.checkpoint_prefixes(workdir)  # No checkpoint: one line before any work.
      restored = None
    else:
      restored = restore.load_generator(workdir, ema=_EMA.value, strategy=strategy)
  except (restore.RestoreError, evaluator_lib.UnsupportedEvaluation) as error:
    restore.exit_with_error(error)
  num = _NUM.value if _NUM.value is not None else config.num_eval_samples
  # Intra-FID fits a covariance to each class's samples: at least two per class.
  least = 2 * max(1, int(config.model.num_classes))
  if num < least:
    restore.exit_with_error(ValueError(
        f'--num={num} is not allowed' + (f' for model.num_classes={config.model.num_classes}'
                                         if config.model.num_classes else '') +
        f'; allowed: >= {least}'))
  seeds = _SEEDS.value if _SEEDS.value is not None else int(config.get('eval_seeds', 1))
  if seeds < 1:
    restore.exit_with_error(ValueError(f'--seeds={seeds} is not allowed; allowed: an integer '
                                       '>= 1 (noise draws)'))
  try:
    evaluator = evaluator_lib.Evaluator(config, strategy)
  except (config_validation.ConfigError, sources.DataError) as error:  # Bad weights file, data.
    restore.exit_with_error(error)
  if _MEMORISATION.value and not evaluator.reference.held_out:
    restore.exit_with_error(evaluator_lib.UnsupportedEvaluation(
        f'--memorisation needs reference images held out of training; here they are '
        f'{evaluator.reference.split}'))

  def finish(result: history.Result) -> dict:
    restored_, evaluation = result
    _print_evaluation(restored_, evaluation, evaluator.num_real)
    extra = _memorisation(evaluator, restored_, num) if _MEMORISATION.value else {}
    summary = _summary(restored_, evaluation, evaluator.num_real, extra)
    if _RECORD.value:
      records.append(workdir, {key: value for key, value in summary.items()
                               if key in ('time', 'source', 'protocol') or '/' in key})
    return summary

  if not _ALL_CHECKPOINTS.value:
    start = time.perf_counter()
    evaluation = evaluator.evaluate(restored.generator, num, seeds)
    # Generation, features and every metric; not TensorFlow's start-up or the reference.
    print(f'evaluated in {time.perf_counter() - start:.1f} s')
    print(json.dumps(finish((restored, evaluation))))
    return
  summaries = []
  try:
    results = history.score_checkpoints(
        workdir, evaluator, ema=_EMA.value, strategy=strategy, num_samples=num, seeds=seeds,
        on_result=lambda result: summaries.append(finish(result)))
  except restore.RestoreError as error:  # E.g. --ema on a checkpoint without an EMA.
    restore.exit_with_error(error)
  history.write_events(workdir, results)
  path = history.write_csv(workdir, results)
  print(f'{len(results)} checkpoints scored; eval scalars written into '
        f'{workdir}/train at their steps; {path}')
  print(json.dumps({'evaluations': summaries, 'csv': path}))


if __name__ == '__main__':
  app.run(main)
