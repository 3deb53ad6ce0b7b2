"""Command line: Fréchet distance and classifier score (with the class histogram) of a workdir's
latest checkpoint, against the held-out real MNIST images (a class-conditional run also gets
eval/conditional_accuracy, eval/intra_fid and each class's FID); or, for other data, Inception
FID and Inception Score from local InceptionV3 weights (wgan_dist/eval/evaluator.py).

  python -m wgan_dist.evaluate --workdir=runs/mnist [--num=1000] [--ema]
  python -m wgan_dist.evaluate --workdir=runs/cifar10 \
      [--inception_weights=/path/inception_v3_weights_tf_dim_ordering_tf_kernels.h5]

Prints the figures, then one line of JSON (the last line) for scripts.
"""

import json

from wgan_dist.config import tf_log_level  # pylint: disable=wrong-import-position

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from wgan_dist.config import validation as config_validation  # pylint: disable=wrong-import-position
from wgan_dist.tools import restore  # pylint: disable=wrong-import-position
from wgan_dist.data import sources  # pylint: disable=wrong-import-position
from wgan_dist.eval import evaluator as evaluator_lib  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory of a training run.')
_NUM = flags.DEFINE_integer('num', None, 'Generated images; default the run\'s '
                            'num_eval_samples.')
_INCEPTION_WEIGHTS = flags.DEFINE_string(
    'inception_weights', None, 'InceptionV3 weights file for non-MNIST runs; default the run\'s '
    'eval_inception_weights.')
_EMA = flags.DEFINE_bool('ema', False, 'Evaluate the EMA generator (needs train.ema_decay > 0).')
flags.mark_flags_as_required(['workdir'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    config = restore.load_config(_WORKDIR.value)
    if _INCEPTION_WEIGHTS.value is not None:
      config.eval_inception_weights = _INCEPTION_WEIGHTS.value
    reason = evaluator_lib.unsupported_reason(config)
    if reason:
      raise evaluator_lib.UnsupportedEvaluation(reason)
    strategy = restore.local_strategy(config)
    restored = restore.load_generator(_WORKDIR.value, ema=_EMA.value, strategy=strategy)
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
  try:
    evaluator = evaluator_lib.Evaluator(config, strategy)
  except (config_validation.ConfigError, sources.DataError) as error:  # Bad weights file, data.
    restore.exit_with_error(error)
  evaluation = evaluator.evaluate(restored.generator, num)
  scalars, histogram = evaluation.scalars, evaluation.class_histogram
  print(f'{"EMA generator" if restored.ema else "Generator"} at step {restored.step} '
        f'({restored.checkpoint}), {num} samples vs {evaluator.num_real} real images')
  for tag, value in scalars.items():
    print(f'{tag}: {value:.4f}')
  report = dict(scalars)
  if histogram is not None:  # MNIST only: no class shares over 1000 ImageNet classes.
    print('class shares: ' + '  '.join(f'{k}: {share:.3f}' for k, share in enumerate(histogram)))
    report['eval/class_histogram'] = [float(v) for v in histogram]
  if evaluation.class_fids is not None:  # Class-conditional MNIST runs.
    print('class FIDs: ' + '  '.join(f'{k}: {fid:.2f}' for k, fid in
                                     enumerate(evaluation.class_fids)))
    report['eval/class_fids'] = [float(v) for v in evaluation.class_fids]
  print(json.dumps({**report, 'step': restored.step, 'num_samples': num,
                    'num_real': evaluator.num_real,
                    'ema': restored.ema, 'checkpoint': restored.checkpoint}))


if __name__ == '__main__':
  app.run(main)
