"""Command line: FID, KID, precision / recall and classifier score (with the class histogram)
of a workdir's latest checkpoint, or of every kept one, against the held-out real MNIST images
(a class-conditional run also gets eval/conditional_accuracy, eval/intra_fid and each class's
FID); or, for other data, Inception features from local InceptionV3 weights
(wgan_dist/eval/evaluator.py).

  python -m wgan_dist.evaluate --workdir=runs/mnist [--num=1000] [--ema] [--seeds=5]
  python -m wgan_dist.evaluate --workdir=runs/mnist --all_checkpoints   # the run's history
  python -m wgan_dist.evaluate --workdir=runs/mnist --memorisation      # copies of training?
                                                   # (of the data.limit images it trained on)
  python -m wgan_dist.evaluate --workdir=runs/cifar10 \
      [--inception_weights=/path/inception_v3_weights_tf_dim_ordering_tf_kernels.h5]
  python -m wgan_dist.evaluate --workdir=runs/cifar10 --protocol=paper \
      --inception_graph=/path/classify_image_graph_def.pb   # 50,000 samples, the 2015 network
  python -m wgan_dist.evaluate --reference_stats=stats.npz --config=configs/cifar10.py \
      [--config.data...] [--protocol=paper]       # the real side once (or --workdir=RUN)
  python -m wgan_dist.evaluate --workdir=runs/cifar10 --eval_reference_stats=stats.npz

--protocol=paper: 50,000 samples (--num overrides) against the whole test split where the data
have one (CIFAR-10, MNIST) or else the whole training split, the score as mean ± std over 10
splits (eval/evaluator.py). --reference_stats=OUT.npz: writes the reference's statistics
(eval/reference_stats.py) of --config's data (or --workdir's run) and exits; a run's config
field eval_reference_stats (or --eval_reference_stats here) then reads them instead of
embedding the real images again.

--seeds=K: every figure is the mean over K independent noise draws of --num images, with its
standard deviation (eval/<metric>_std). --all_checkpoints: every kept checkpoint, oldest first,
written into the run's TensorBoard events at its step and into workdir/eval/history.csv
(tools/history.py). For the latest checkpoint, eval/critic_overfit (the critic-overfitting gauge
training's evaluation writes, training/overfit.py) is read too when the data hold real images out
of training (--nocritic_overfit: not). Each evaluation appends a record with its protocol to
workdir/eval/records.jsonl (eval/records.py; --norecord: not).

Prints the figures, then one line of JSON (the last line) for scripts: the figures, 'protocol'
(N generated / reference, reference split, feature extractor and weights' sha256, image size,
resize, quantisation, seed and draws, step, checkpoint, EMA or raw), and step, num_samples,
num_real, ema, checkpoint at the top level; with --all_checkpoints, {'evaluations': [one such
object per checkpoint], 'csv': path}.
"""

import json
import os
import time

from wgan_dist.config import tf_log_level  # pylint: disable=wrong-import-position

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position
from ml_collections import config_flags  # pylint: disable=wrong-import-position

from wgan_dist.config import validation as config_validation  # pylint: disable=wrong-import-position
from wgan_dist.tools import history  # pylint: disable=wrong-import-position
from wgan_dist.tools import restore  # pylint: disable=wrong-import-position
from wgan_dist.data import sources  # pylint: disable=wrong-import-position
from wgan_dist.eval import evaluator as evaluator_lib  # pylint: disable=wrong-import-position
from wgan_dist.eval import records  # pylint: disable=wrong-import-position
from wgan_dist import train  # pylint: disable=wrong-import-position
from wgan_dist.training import evaluate_action  # pylint: disable=wrong-import-position
from wgan_dist.training import overfit  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory of a training run.')
_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'With --reference_stats and no --workdir: the config whose data (and '
    'evaluation network) the statistics are of, e.g. configs/cifar10.py.', lock_config=True)
_PROTOCOL = flags.DEFINE_enum('protocol', 'default', ['default', 'paper'],
                              'default: the run\'s num_eval_samples against its reference; '
                              'paper: 50,000 samples against the whole test (or training) '
                              'split, the score over 10 splits.')
_REFERENCE_STATS = flags.DEFINE_string(
    'reference_stats', None, 'Write the reference statistics (mu, sigma, features) to this '
    '.npz and exit; no generator is needed.')
_EVAL_REFERENCE_STATS = flags.DEFINE_string(
    'eval_reference_stats', None, 'Read the real side from this statistics file; default the '
    'run\'s eval_reference_stats.')
_INCEPTION_GRAPH = flags.DEFINE_string(
    'inception_graph', None, 'The 2015 Inception frozen graph (classify_image_graph_def.pb) for '
    'non-MNIST runs; default the run\'s eval_inception_graph.')
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
_CRITIC_OVERFIT = flags.DEFINE_bool(
    'critic_overfit', True, 'Also read eval/critic_overfit, the checkpoint critic\'s r_v, as '
    'training\'s evaluation does (when the data hold images out of training).')
_RECORD = flags.DEFINE_bool('record', True, 'Append a record per evaluation to '
                            'workdir/eval/records.jsonl.')


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
    if tag in evaluator_lib.SCORE_TAGS and evaluation.protocol.get('score_splits', 1) > 1:
      extra = (f'  (± {evaluation.score_split_std:.4f} over '
               f'{evaluation.protocol["score_splits"]} splits)')
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
  # Under data.limit the evaluator compares with the images the run trained on.
  result = evaluator.memorisation(restored.generator, num)
  print(f'memorisation: ratio {result.ratio:.3f} (median nearest-training distance of the '
        f'samples / of {len(result.held_out_distances)} held-out real images; ~1 new, << 1 '
        f'copies), copy share {result.copy_share:.3f}')
  return {'eval/memorisation_ratio': result.ratio, 'eval/copy_share': result.copy_share}


def _critic_overfit(config, strategy, checkpoint: str) -> dict:
  """{eval/critic_overfit: r_v} of the critic at `checkpoint`, read as training's evaluation
  reads it (training/overfit.py: the same fixed samples of training and held-out images, the
  trained generator's fakes, in float32); {} when the data hold no images out (said so)."""
  try:
    loaded = sources.load_source(config)
    source, _ = train.training_data(config, loaded)
    heldout = overfit.heldout_source(config, loaded)
  except sources.DataError as error:  # The figures above stand; only the gauge is missing.
    print(f'eval/critic_overfit: not read (the training data: {error})')
    return {}
  generator, critic = restore.load_trained_models(config, checkpoint, strategy)
  gauge = overfit.make_gauge(config, strategy, source, heldout, critic, generator)
  if gauge is None:
    print('eval/critic_overfit: not read (no real images held out of training)')
    return {}
  reading = gauge.read()
  print(f'{evaluate_action.OVERFIT_TAG}: {reading.overfit:.4f}  (mean critic score: training '
        f'{reading.train_score:.4g}, held-out {reading.heldout_score:.4g}, fakes '
        f'{reading.fake_score:.4g}; {reading.images} images each)')
  return {evaluate_action.OVERFIT_TAG: reading.overfit}


def _write_reference_stats(path: str) -> None:
  """--reference_stats: the real side of --config's (or --workdir's) evaluation, to `path`."""
  try:
    if _CONFIG.value is not None:
      config = _CONFIG.value.copy_and_resolve_references()
      config_validation.validate(config)
    else:
      config = restore.load_config(_WORKDIR.value)
    _override(config)
    config.eval_reference_stats = ''  # Computed here, not read.
    reason = evaluator_lib.unsupported_reason(config)
    if reason:
      raise evaluator_lib.UnsupportedEvaluation(reason)
    start = time.perf_counter()
    evaluator = evaluator_lib.Evaluator(config, restore.local_strategy(config),
                                        protocol=_PROTOCOL.value)
    evaluator.save_reference_stats(path)
  except (restore.RestoreError, evaluator_lib.UnsupportedEvaluation,
          config_validation.ConfigError, sources.DataError) as error:
    restore.exit_with_error(error)
  protocol = evaluator.protocol
  print(f'{path}: {evaluator.num_real} reference images ({protocol["reference_split"]}), '
        f'{protocol["feature_extractor"]}, in {time.perf_counter() - start:.1f} s')
  print(json.dumps({'reference_stats': path, 'num_reference': evaluator.num_real,
                    'bytes': os.path.getsize(path), 'protocol': protocol}))


def _override(config) -> None:
  """The flags that replace the run's evaluation fields."""
  if _INCEPTION_WEIGHTS.value is not None:
    config.eval_inception_weights = _INCEPTION_WEIGHTS.value
  if _INCEPTION_GRAPH.value is not None:
    config.eval_inception_graph = _INCEPTION_GRAPH.value
  if _EVAL_REFERENCE_STATS.value is not None:
    config.eval_reference_stats = _EVAL_REFERENCE_STATS.value
  for field in ('eval_inception_graph', 'eval_reference_stats'):
    value = config.get(field, '')
    if value and not os.path.isfile(value):
      raise config_validation.ConfigError(f'{field}={value!r} is not an existing file')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _REFERENCE_STATS.value:
    if _WORKDIR.value is None and _CONFIG.value is None:
      restore.exit_with_error(ValueError('--reference_stats needs --config=CONFIG (the data '
                                         'and network) or --workdir=RUN'))
    _write_reference_stats(_REFERENCE_STATS.value)
    return
  workdir = _WORKDIR.value
  if workdir is None:
    restore.exit_with_error(ValueError('--workdir is required (or --reference_stats=OUT.npz '
                                       'with --config)'))
  try:
    config = restore.load_config(workdir)
    _override(config)
    reason = evaluator_lib.unsupported_reason(config)
    if reason:
      raise evaluator_lib.UnsupportedEvaluation(reason)
    strategy = restore.local_strategy(config)
    if _ALL_CHECKPOINTS.value:
      restore.checkpoint_prefixes(workdir)  # No checkpoint: one line before any work.
      restored = None
    else:
      restored = restore.load_generator(workdir, ema=_EMA.value, strategy=strategy)
  except (restore.RestoreError, evaluator_lib.UnsupportedEvaluation,
          config_validation.ConfigError) as error:
    restore.exit_with_error(error)
  paper = _PROTOCOL.value == evaluator_lib.PAPER
  default_num = evaluator_lib.PAPER_NUM_SAMPLES if paper else config.num_eval_samples
  num = _NUM.value if _NUM.value is not None else default_num
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
  if paper and num < evaluator_lib.PAPER_SCORE_SPLITS:
    restore.exit_with_error(ValueError(f'--num={num} is not allowed with --protocol=paper; '
                                       f'allowed: >= {evaluator_lib.PAPER_SCORE_SPLITS} (the '
                                       'score\'s splits)'))
  try:
    evaluator = evaluator_lib.Evaluator(config, strategy, protocol=_PROTOCOL.value)
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
    if _CRITIC_OVERFIT.value and not _ALL_CHECKPOINTS.value:
      extra.update(_critic_overfit(config, strategy, restored_.checkpoint))
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
