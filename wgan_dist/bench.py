"""Command line of the benchmark (the library is `wgan_dist.tools.benchmark`):

  python -m wgan_dist.bench --config=configs/mnist.py --config.data.allow_download=False
  python -m wgan_dist.bench --config=configs/mnist.py --baseline      # also the naive eager loop
  python -m wgan_dist.bench --config=configs/mnist.py --input_only    # the input pipeline alone
  python -m wgan_dist.bench --config=configs/mnist.py --config.distribution.cpu_replicas=2

Prints a table, then, as the last line, one JSON object (keys in `benchmark.run`'s docstring).
Flags live here only, so tests can import the library next to wgan_dist.main.
"""

from wgan_dist.config import tf_log_level

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

import json  # pylint: disable=wrong-import-position
import sys  # pylint: disable=wrong-import-position

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position
from ml_collections import config_flags  # pylint: disable=wrong-import-position

from wgan_dist.config import validation as config_validation  # pylint: disable=wrong-import-position
from wgan_dist.data import sources  # pylint: disable=wrong-import-position
from wgan_dist.tools import restore  # pylint: disable=wrong-import-position
from wgan_dist.tools.benchmark import format_table  # pylint: disable=wrong-import-position
from wgan_dist.tools.benchmark import run  # pylint: disable=wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, optionally with an argument: configs/mnist.py:quick.',
    lock_config=True)
_STEPS = flags.DEFINE_integer('steps', 4, 'Generator steps timed (each with n_critic critic '
                              'updates), for the real loop and for --baseline.')
_WARMUP = flags.DEFINE_integer('warmup', 1, 'Generator steps run before timing (tracing, '
                               'allocation).')
_BASELINE = flags.DEFINE_boolean('baseline', False, 'Also time a naive eager loop (one Python '
                                 'call per update, plain Conv2D layers) of the same models and '
                                 'batch.')
_INPUT_ONLY = flags.DEFINE_boolean('input_only', False, 'Time only the input pipeline.')
_PROFILE_DIR = flags.DEFINE_string('profile_dir', None, 'Also trace one more generator step, '
                                   'after the timing, with the TensorFlow profiler into this '
                                   'directory (TensorBoard Profile tab).')
_CEILING_SIZE = flags.DEFINE_integer('ceiling_size', 4096, 'Largest n of the n x n float32 '
                                     'matmuls that measure the ceiling.')
flags.mark_flags_as_required(['config'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _STEPS.value < 1 or _WARMUP.value < 0:
    raise app.UsageError('--steps must be >= 1 and --warmup >= 0')
  try:
    result = run(_CONFIG.value, num_steps=_STEPS.value, warmup=_WARMUP.value,
                 baseline=_BASELINE.value, input_only=_INPUT_ONLY.value,
                 ceiling_size=_CEILING_SIZE.value, profile_dir=_PROFILE_DIR.value)
  except (config_validation.ConfigError, sources.DataError) as error:
    restore.exit_with_error(error)  # One line naming the field or data, as the other tools.
  print(format_table(result))
  sys.stdout.flush()
  print(json.dumps(result, sort_keys=True))


if __name__ == '__main__':
  app.run(main)
