"""Command line: FID-style Fréchet distance, classifier score and class histogram of a workdir's
latest checkpoint, against the held-out real MNIST images (wgan_dist/eval/evaluator.py).

  python -m wgan_dist.evaluate --workdir=runs/mnist [--num=1000] [--ema]

Prints the figures, then one line of JSON (the last line) for scripts.
"""

import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from wgan_dist import restore  # pylint: disable=wrong-import-position
from wgan_dist.eval import evaluator as evaluator_lib  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory of a training run.')
_NUM = flags.DEFINE_integer('num', None, 'Generated images; default the run\'s '
                            'num_eval_samples.')
_EMA = flags.DEFINE_bool('ema', False, 'Evaluate the EMA generator (needs train.ema_decay > 0).')
flags.mark_flags_as_required(['workdir'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    config = restore.load_config(_WORKDIR.value)
    reason = evaluator_lib.unsupported_reason(config)
    if reason:
      raise evaluator_lib.UnsupportedEvaluation(reason)
    strategy = restore.local_strategy(config)
    restored = restore.load_generator(_WORKDIR.value, ema=_EMA.value, strategy=strategy)
  except (restore.RestoreError, evaluator_lib.UnsupportedEvaluation) as error:
    restore.exit_with_error(error)
  num = _NUM.value if _NUM.value is not None else config.num_eval_samples
  if num < 2:
    raise app.UsageError(f'--num={num}: at least 2')
  evaluator = evaluator_lib.Evaluator(restored.config, strategy)
  scalars = evaluator.evaluate(restored.generator, num)
  histogram = evaluator.last_histogram
  print(f'{"EMA generator" if restored.ema else "Generator"} at step {restored.step} '
        f'({restored.checkpoint}), {num} samples vs {evaluator.num_real} held-out real images')
  for tag, value in scalars.items():
    print(f'{tag}: {value:.4f}')
  print('class shares: ' + '  '.join(f'{k}: {share:.3f}' for k, share in enumerate(histogram)))
  print(json.dumps({**scalars, 'eval/class_histogram': [float(v) for v in histogram],
                    'step': restored.step, 'num_samples': num, 'num_real': evaluator.num_real,
                    'ema': restored.ema, 'checkpoint': restored.checkpoint}))


if __name__ == '__main__':
  app.run(main)
