"""Command line: one PNG of a training run, its curves and a grid of samples.

  python -m wgan_dist.report --workdir=runs/mnist --out=report.png   # default out: W/report.png
  python -m wgan_dist.report --workdir=runs/mnist --num=100          # a 10x10 grid
  python -m wgan_dist.report --workdir=runs/mnist --noema            # the trained generator's grid

Needs matplotlib, an optional extra: pip install -e ".[report]".

Left, against generator step, from the run's TensorBoard events (workdir/train): `eval/fid`
(log scale), `eval/classifier_score` (or `eval/inception_score` for non-MNIST data),
`eval/min_class_share` and `train/wasserstein_estimate`; the EMA generator's figures (the same
eval/* tags in workdir/train/ema, called eval_ema/* here) beside the raw generator's when the
run kept an EMA. MNIST runs also show the real-data references of
docs/evaluation.md as dashed lines: FID 4.23 between two real 1,000-image splits (the floor), and
classifier score 9.44 / smallest class share 0.091 of the 1,000 held-out real digits.
A class-conditional MNIST run (it logged `eval/intra_fid` or `eval/conditional_accuracy`) gets
two more panels, so six in a 2x3 block: `eval/intra_fid` (log scale) beside `eval/fid`, with
its floor 14.28 (two real 100-image samples per digit), and `eval/conditional_accuracy`, with
the classifier's accuracy on the held-out real digits, 0.969, which a generator that obeys its
labels with real-looking digits reaches.

Right: `--num` samples (default 64, an 8x8 grid) of the latest checkpoint's EMA generator when
it holds one (else the trained generator), from noise keyed by the run's `seed` alone, so the
grid is not picked, is the same at every rerun, and equals
`python -m wgan_dist.sample --workdir=W --seed=<the run's seed> [--ema]`. A class-conditional
generator (model.num_classes = K > 0) gets one row per class, as training's and the sample
command's grids: row k shows class k, column j the same noise in every row, num // K columns
(`python -m wgan_dist.sample --workdir=W --seed=<seed> --num=<num // K>` draws the same grid).

The eval curves are whatever the run's events hold: those training logged (eval_every_steps),
and those `python -m wgan_dist.evaluate --all_checkpoints` wrote afterwards at each kept
checkpoint's step (so a run trained without evaluation gets its curves that way).

`--nearest=K` (K > 0) also writes <out>_nearest.png: the K samples (of the run's
num_eval_samples evaluation samples, the raw or EMA generator as for the grid) nearest to a
training image in the evaluation's feature space, each beside that training image (left
column the sample, right column its nearest training image, nearest pair first), and prints
the memorisation ratio (wgan_dist/eval/memorisation.py): ~1 new images, well below 1 copies.

The PNG is always FIGURE_INCHES x DPI = 1500x800 pixels, whatever it shows. The command prints
the latest figures in one line and the path written. A run without eval/* tags (evaluation off)
still gets its training curve and grid, with a one-line note; no matplotlib, a workdir that is
not a directory or has no event files or no checkpoint: one line `error: ...`, exit status 1.
"""

import glob
import logging
import os
import sys
from typing import TYPE_CHECKING, Callable, Optional

from wgan_dist.config import tf_log_level

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

import numpy as np  # pylint: disable=wrong-import-position
from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

if TYPE_CHECKING:  # Annotations only: matplotlib is optional, TensorFlow slow to import.
  from matplotlib import figure as figure_lib
  from wgan_dist.tools import restore

# The command's flags exist only when the report runs as a command: its functions (read_series,
# nearest_pairs, draw) are imported by tools and tests in processes that already hold another
# command's --workdir, and absl refuses a flag defined twice.
if __name__ == '__main__':
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory of a training run.')
  _OUT = flags.DEFINE_string('out', None, 'PNG to write; default W/report.png.')
  _NUM = flags.DEFINE_integer('num', 64, 'Samples in the grid (the most nearly square grid).')
  _EMA = flags.DEFINE_bool('ema', None, 'Grid of the EMA generator (--ema) or of the trained one '
                           '(--noema); default the EMA generator when the checkpoint holds one.')
  _NEAREST = flags.DEFINE_integer('nearest', 0, 'Also write <out>_nearest.png: this many samples '
                                  'beside their nearest training images (0 = off).')
  flags.mark_flags_as_required(['workdir'])

MISSING_MATPLOTLIB = 'wgan_dist.report needs matplotlib ({}): pip install -e ".[report]"'

# Figure size in inches and pixels per inch: the PNG is 1500x800 pixels for every run (no
# tight bounding box, which would crop it to its contents).
FIGURE_INCHES = (15, 8)
DPI = 100

# Real-data references of the MNIST classifier evaluation (docs/evaluation.md, "Figures";
# checked by tests/test_eval_tools.py): two real 1,000-image splits, and the held-out digits.
REAL_FID_FLOOR = 4.23
REAL_CLASSIFIER_SCORE = 9.44
REAL_MIN_CLASS_SHARE = 0.091
# Class-conditional runs: per digit, 100 train-split vs the 100 held-out images (intra-FID's
# floor); the classifier's held-out accuracy (what an obedient, realistic generator scores).
REAL_INTRA_FID_FLOOR = 14.28
REAL_CONDITIONAL_ACCURACY = 0.969

WASSERSTEIN_TAG = 'train/wasserstein_estimate'
FID_TAG = 'eval/fid'
CLASSIFIER_SCORE_TAG = 'eval/classifier_score'  # MNIST runs (the project's classifier).
INCEPTION_SCORE_TAG = 'eval/inception_score'  # Other data, with InceptionV3 weights.
MIN_SHARE_TAG = 'eval/min_class_share'  # MNIST runs only.
INTRA_FID_TAG = 'eval/intra_fid'  # Class-conditional MNIST runs only.
CONDITIONAL_ACCURACY_TAG = 'eval/conditional_accuracy'  # Class-conditional MNIST runs only.
CONDITIONAL_TAGS = (INTRA_FID_TAG, CONDITIONAL_ACCURACY_TAG)
EVAL_TAGS = (FID_TAG, INTRA_FID_TAG, CLASSIFIER_SCORE_TAG, INCEPTION_SCORE_TAG, MIN_SHARE_TAG,
             CONDITIONAL_ACCURACY_TAG)
TITLES = {FID_TAG: 'FID', CLASSIFIER_SCORE_TAG: 'classifier score',
          INCEPTION_SCORE_TAG: 'Inception score', MIN_SHARE_TAG: 'smallest class share',
          INTRA_FID_TAG: 'intra-FID',
          CONDITIONAL_ACCURACY_TAG: 'conditional accuracy'}
# The MNIST classifier's real-data references; Inception FID and score have none here.
REFERENCES = {FID_TAG: (REAL_FID_FLOOR, 'real vs real (floor)'),
              CLASSIFIER_SCORE_TAG: (REAL_CLASSIFIER_SCORE, 'real held-out digits'),
              MIN_SHARE_TAG: (REAL_MIN_CLASS_SHARE, 'real held-out digits'),
              INTRA_FID_TAG: (REAL_INTRA_FID_FLOOR, 'real vs real, 100 per class (floor)'),
              CONDITIONAL_ACCURACY_TAG: (REAL_CONDITIONAL_ACCURACY, 'real held-out digits')}


def ema_tag(tag: str) -> str:
  return tag.replace('eval/', 'eval_ema/', 1)


# In the printed summary only (no panel): KID, precision and recall.
SUMMARY_TAGS = ('eval/kid', 'eval/precision', 'eval/recall')
KNOWN_TAGS = tuple(name for tag in EVAL_TAGS + SUMMARY_TAGS for name in (tag, ema_tag(tag))) + (
    WASSERSTEIN_TAG,)

Series = dict[str, tuple[np.ndarray, np.ndarray]]  # {tag: (steps, values)}, steps ascending.


class ReportError(ValueError):
  """A workdir the report cannot be drawn from; the message names the path and what is missing."""


def check_workdir(workdir: str, isdir: Callable[[str], bool],
                  list_glob: Callable[[str], list]) -> None:
  """Raises ReportError unless `workdir` is a directory with event files and a checkpoint."""
  if not isdir(workdir):
    raise ReportError(f'{workdir} is not a directory (--workdir must be a training run\'s work '
                      'directory)')
  events = os.path.join(workdir, 'train')
  if not list_glob(os.path.join(events, 'events.*')):
    raise ReportError(f'no TensorBoard event files (events.*) in {events}: {workdir} is not a '
                      'wgan_dist work directory, or training has not started')
  checkpoints = os.path.join(workdir, 'checkpoints')
  # tf.train.CheckpointManager's index file; restore.load_generator checks the rest.
  if not list_glob(os.path.join(checkpoints, 'checkpoint')):
    raise ReportError(f'no checkpoint in {checkpoints}: train first (python -m wgan_dist.main '
                      f'--config=... --workdir={workdir})')


def read_series(workdir: str) -> Series:
  """The KNOWN_TAGS scalars of the run, read with TensorBoard's own reader: workdir/train, and
  the EMA generator's figures from workdir/train/ema (under eval/*; keyed eval_ema/* here).

  A step logged twice (a resumed run redoes the steps after its last checkpoint) keeps its last
  value; the reader also purges the orphaned later steps when it sees a step go back.
  """
  # pylint: disable=import-outside-toplevel
  import tensorflow as tf
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util
  from wgan_dist.training import dashboards
  # pylint: enable=import-outside-toplevel
  # The reader logs every event file it opens or misses at INFO; only its problems matter here.
  logging.getLogger('tensorboard').setLevel(logging.WARNING)
  runs = {}
  series = {}
  for name in KNOWN_TAGS:
    run, tag = dashboards.placements(name)[0]
    if run not in runs:
      path = os.path.join(workdir, run)
      # TENSORS: 0 keeps every event; the default keeps a reservoir sample of 10 per tag. A
      # run without an EMA generator has no train/ema directory.
      runs[run] = (event_accumulator.EventAccumulator(
          path, size_guidance={event_accumulator.TENSORS: 0}).Reload()
                   if tf.io.gfile.isdir(path) else None)
    events = runs[run]
    if events is None:
      continue
    tags = events.Tags()
    # tf.summary.scalar (TF2) writes tensors; TF1-style simple values land in 'scalars'.
    if tag in tags['tensors']:
      points = {event.step: float(tensor_util.make_ndarray(event.tensor_proto))
                for event in events.Tensors(tag)}
    elif tag in tags['scalars']:
      points = {event.step: event.value for event in events.Scalars(tag)}
    else:
      continue
    steps = np.array(sorted(points), np.int64)
    series[name] = (steps, np.array([points[step] for step in steps], np.float64))
  return series


def _format(value: float) -> str:
  return f'{value:.3g}' if abs(value) < 1 else f'{value:.4g}'


def summary(series: Series, step: int) -> str:
  """'tag value, ...' of each tag's last value, with its step when that is not `step`."""
  parts = []
  for tag in KNOWN_TAGS:
    if tag in series:
      steps, values = series[tag]
      at = '' if steps[-1] == step else f' (step {steps[-1]})'
      parts.append(f'{tag} {_format(values[-1])}{at}')
  return ', '.join(parts)


def _title_figures(series: Series) -> str:
  """'FID 64.1 (EMA 60.2) · classifier score 6.17 (EMA 6.3) · ...': each curve's last value."""
  parts = []
  for tag in EVAL_TAGS:
    if tag in series:
      text = f'{TITLES[tag]} {_format(series[tag][1][-1])}'
      if ema_tag(tag) in series:
        text += f' (EMA {_format(series[ema_tag(tag)][1][-1])})'
      parts.append(text)
  if WASSERSTEIN_TAG in series:
    parts.append(f'W estimate {_format(series[WASSERSTEIN_TAG][1][-1])}')
  # A conditional run's six figures take two lines to fit the page's width.
  lines = [parts] if len(parts) <= 4 else [parts[:3], parts[3:]]
  return '\n'.join('  ·  '.join(line) for line in lines)


def _plot_curves(axes, title: str, curves: list[tuple[str, np.ndarray, np.ndarray]],
                 last_step: int, *, empty: str, log_scale: bool = False,
                 reference: Optional[tuple[float, str]] = None) -> None:
  """One panel: each (label, steps, values) curve and a dashed reference line, or `empty`."""
  from matplotlib import ticker  # pylint: disable=import-outside-toplevel
  axes.set_title(title)
  axes.set_xlabel('generator step')
  # 2% each side, so that markers at step 0 and at the last step are not cut in half.
  axes.set_xlim(-0.02 * max(last_step, 1), 1.02 * max(last_step, 1))
  # At most ~5 whole steps (no step 2.5 on short runs), thousands as 'k': a panel is ~4 inches.
  axes.xaxis.set_major_locator(ticker.MaxNLocator(nbins=5, steps=(1, 2, 5, 10), integer=True))
  axes.xaxis.set_major_formatter(ticker.FuncFormatter(
      lambda value, _: f'{value / 1000:g}k' if abs(value) >= 1000 else f'{value:g}'))
  axes.grid(True, alpha=0.3)
  if not curves:
    axes.text(0.5, 0.5, empty, ha='center', va='center', transform=axes.transAxes, color='0.4')
    axes.set_yticks([])
    return
  for label, steps, values in curves:
    # Markers while the points are few, so that a single evaluation still shows.
    axes.plot(steps, values, label=label, marker='o' if len(steps) <= 30 else None,
              markersize=3)
  if reference is not None:
    value, what = reference
    axes.axhline(value, color='0.3', linestyle='--', linewidth=1, label=f'{what}: {value:g}')
  if log_scale and all(np.all(values > 0) for _, _, values in curves):
    axes.set_yscale('log')
    axes.set_title(f'{title} (log scale)')
    # 10, 100 rather than 10^1, 10^2; the minor ticks are labelled only on short ranges.
    plain = ticker.FuncFormatter(lambda value, _: f'{value:g}')
    axes.yaxis.set_major_formatter(plain)
    axes.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False))
  axes.legend(fontsize='small')


def draw(series: Series, grid: np.ndarray, *, name: str, step: int, ema: bool, seed: int,
         num_classes: int = 0) -> 'figure_lib.Figure':
  """The report (a matplotlib Figure): FID, score, smallest share and Wasserstein panels (2x2;
  2x3 with intra-FID and conditional accuracy for a class-conditional run), the sample grid at
  right (`num_classes` > 0: a conditional generator's, one row per class). A panel with
  nothing logged keeps its place and says so, so the layout never changes within a kind of
  run."""
  # matplotlib is an optional extra, imported where it is used (main checks it first); the
  # Figure class needs no pyplot and no backend state.
  from matplotlib import figure as figure_lib  # pylint: disable=import-outside-toplevel
  figure = figure_lib.Figure(figsize=FIGURE_INCHES, dpi=DPI, layout='constrained')
  last_step = max([step] + [int(steps[-1]) for steps, _ in series.values()])
  # The references are the MNIST classifier's: only for runs it scored.
  mnist = CLASSIFIER_SCORE_TAG in series
  score_tag = INCEPTION_SCORE_TAG if INCEPTION_SCORE_TAG in series else CLASSIFIER_SCORE_TAG
  evaluated = any(tag.startswith('eval') for tag in series)
  conditional = any(tag in series or ema_tag(tag) in series for tag in CONDITIONAL_TAGS)
  # Panels in reading order, None = the Wasserstein estimate; intra-FID sits beside FID.
  if conditional:
    cells = figure.add_gridspec(2, 4, width_ratios=(1, 1, 1, 1.9))
    panels = (FID_TAG, INTRA_FID_TAG, score_tag, MIN_SHARE_TAG, CONDITIONAL_ACCURACY_TAG, None)
  else:
    cells = figure.add_gridspec(2, 3, width_ratios=(1, 1, 1.9))
    panels = (FID_TAG, score_tag, MIN_SHARE_TAG, None)
  columns = len(panels) // 2
  for index, tag in enumerate(panels):
    axes = figure.add_subplot(cells[index // columns, index % columns])
    if tag is None:
      _plot_curves(axes, 'Wasserstein estimate (training)',
                   [('mean D(x) - mean D(G(z))', *series[WASSERSTEIN_TAG])]
                   if WASSERSTEIN_TAG in series else [], last_step,
                   empty=f'no {WASSERSTEIN_TAG} logged')
      continue
    curves = [(label, *series[name_])
              for label, name_ in (('generator', tag), ('EMA generator', ema_tag(tag)))
              if name_ in series]
    # E.g. the Inception evaluation of non-MNIST data has no class shares.
    _plot_curves(axes, TITLES[tag], curves, last_step,
                 empty=f'no {tag} logged' if evaluated else 'no evaluation logged',
                 log_scale=tag in (FID_TAG, INTRA_FID_TAG),
                 reference=REFERENCES.get(tag) if mnist else None)

  axes = figure.add_subplot(cells[:, columns])
  gray = grid.shape[-1] == 1
  axes.imshow(grid[..., 0] if gray else grid, cmap='gray' if gray else None, vmin=0, vmax=255,
              interpolation='nearest')
  axes.set_axis_off()
  labels = '; row k: class k' if num_classes else ''
  axes.set_title(f'samples of the {"EMA generator" if ema else "generator"} at step {step}\n'
                 f'(noise from the run\'s seed {seed}: not selected{labels})')
  # A live run may have evaluated after its latest checkpoint (or saved after evaluating).
  eval_steps = {int(steps[-1]) for tag, (steps, _) in series.items() if tag.startswith('eval')}
  title = f'{name}: generator step {step}'
  if eval_steps and eval_steps != {step}:
    title += f', last evaluation at step {max(eval_steps)}'
  figures = _title_figures(series)
  figure.suptitle(title + (f'\n{figures}' if figures else ''), fontsize='x-large')
  return figure


def sample_grid(restored: 'restore.Restored', num: int) -> np.ndarray:
  """uint8 grid of `num` images of the restored generator, noise keyed by the run's seed; a
  class-conditional generator's grid has one row per class, num // K columns (module
  docstring)."""
  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import images
  from wgan_dist.tools import sampling
  # pylint: enable=import-outside-toplevel
  config = restored.config
  num_classes = int(config.model.num_classes)
  # The sample command's inputs, so the grid is the one it draws for the run's seed.
  noise, labels, rows = sampling.sample_inputs(
      seed=config.seed, noise_dim=config.model.noise_dim, num_classes=num_classes, label=None,
      num=max(1, num // num_classes) if num_classes else num, interpolate=False)
  return images.to_grid(sampling.generate(restored.generator, noise, labels), rows=rows)


def nearest_pairs(restored: 'restore.Restored', count: int) -> tuple[np.ndarray, str]:
  """(uint8 grid of `count` rows: sample | its nearest training image, nearest pair first;
  a one-line memorisation summary) over the run's num_eval_samples evaluation samples."""
  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import images
  from wgan_dist.eval import evaluator as evaluator_lib
  from wgan_dist.tools import restore as restore_lib
  # pylint: enable=import-outside-toplevel
  config = restored.config
  evaluator = evaluator_lib.Evaluator(config, restore_lib.local_strategy(config))
  # Loaded once: the search and the picture use the same images (under data.limit, read again
  # from the source each time they are asked for).
  train_images = evaluator.train_images()
  result = evaluator.memorisation(restored.generator, train_images=train_images)
  order = np.argsort(result.generated_distances, kind='stable')[:count]
  samples = evaluator.sample_images(restored.generator, int(order.max()) + 1)[order]
  nearest = train_images[result.generated_nearest[order]]
  pairs = np.stack([samples, nearest], axis=1).reshape((-1,) + samples.shape[1:])
  text = (f'memorisation ratio {result.ratio:.3f} (median nearest-training distance of '
          f'{len(result.generated_distances)} samples / of {len(result.held_out_distances)} '
          f'held-out real images; ~1 new images, << 1 copies), copy share '
          f'{result.copy_share:.3f}; nearest pair distances '
          + ' '.join(f'{d:.3g}' for d in result.generated_distances[order]))
  return images.to_grid(pairs, rows=len(order)), text


def _no_eval_notice(workdir: str, eval_every_steps: int) -> str:
  why = ('training ran with eval_every_steps=0' if eval_every_steps == 0 else
         'evaluation was off for these data, or has not run yet')
  return (f'note: no eval/* tags in {os.path.join(workdir, "train")} ({why}): drawing the '
          'training curve and the samples; the evaluation panels say "no evaluation logged"')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _NUM.value < 1:
    raise app.UsageError(f'--num={_NUM.value}: at least 1')
  if _NEAREST.value < 0:
    raise app.UsageError(f'--nearest={_NEAREST.value}: 0 (off) or more samples')
  workdir = _WORKDIR.value
  # The missing extra and a mistyped path are reported before TensorFlow is imported, which
  # takes seconds.
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError as error:
    sys.exit('error: ' + MISSING_MATPLOTLIB.format(error))
  remote = '://' in workdir  # gs://...: checked with tf.io.gfile once TensorFlow is loaded.
  try:
    if not remote:
      check_workdir(workdir, os.path.isdir, glob.glob)
  except ReportError as error:
    sys.exit(f'error: {error}')
  # pylint: disable=import-outside-toplevel,redefined-outer-name
  import tensorflow as tf
  from wgan_dist.tools import restore
  # pylint: enable=import-outside-toplevel,redefined-outer-name
  try:
    if remote:
      check_workdir(workdir, tf.io.gfile.isdir, tf.io.gfile.glob)
    # --ema unset (None): the EMA generator when the checkpoint holds one.
    restored = restore.load_generator(workdir, ema=_EMA.value)
  except (ReportError, restore.RestoreError) as error:
    sys.exit(f'error: {error}')
  config = restored.config
  series = read_series(workdir)
  if not any(tag.startswith('eval') for tag in series):
    print(_no_eval_notice(workdir, config.eval_every_steps), file=sys.stderr)
  grid = sample_grid(restored, _NUM.value)
  figure = draw(series, grid, name=os.path.basename(os.path.normpath(workdir)),
                step=restored.step, ema=restored.ema, seed=config.seed,
                num_classes=config.model.num_classes)
  out = _OUT.value or os.path.join(workdir, 'report.png')
  if os.path.dirname(out):
    tf.io.gfile.makedirs(os.path.dirname(out))
  with tf.io.gfile.GFile(out, 'wb') as f:
    figure.savefig(f, format='png', dpi=DPI)
  print(f'{"EMA generator" if restored.ema else "Generator"} at step {restored.step}; latest '
        f'{summary(series, restored.step) or "scalars: none logged"}')
  print(f'wrote {out} ({FIGURE_INCHES[0] * DPI}x{FIGURE_INCHES[1] * DPI} pixels)')
  if _NEAREST.value:
    # pylint: disable=import-outside-toplevel
    from wgan_dist.data import images
    from wgan_dist.eval import evaluator as evaluator_lib
    # pylint: enable=import-outside-toplevel
    try:
      grid, text = nearest_pairs(restored, _NEAREST.value)
    except evaluator_lib.UnsupportedEvaluation as error:
      sys.exit(f'error: --nearest: {error}')
    nearest_out = os.path.splitext(out)[0] + '_nearest.png'
    images.write_png(nearest_out, grid)
    print(text)
    print(f'wrote {nearest_out} (left: sample, right: its nearest training image)')


if __name__ == '__main__':
  app.run(main)
