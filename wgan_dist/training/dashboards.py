"""Where each figure of a run lands in TensorBoard: its run directory and tag, the first section
of the Scalars tab, the Custom Scalars layout and the HParams experiment.

How TensorBoard (2.21) orders what it shows, which the names below are chosen for: the Scalars
and Time Series tabs sort every tag in natural order ('/' and digits before letters, numbers by
value) and make a section of each first path component, in the order of that sort; a section
shows 12 charts a page. One chart is one tag, with a line per run. So:

- `core/<tag>`, first ('core' sorts before 'eval', 'perf', 'samples' and 'train'): copies of
  the figures a user checks first (CORE_TAGS): FID, the classifier or Inception score and the
  smallest class share (core/eval/*, first), then both losses and the Wasserstein estimate
  (core/train/*): six charts, the first screen at two charts a row. The other evaluation
  figures (the class-conditional ones, any the evaluation gains) are in `eval`, next.
- The EMA generator's figures are written under the same tags as the trained generator's, in a
  run of their own, `train/ema` (EMA_RUN), so one chart holds both curves (runs `<run>/train`
  and `<run>/train/ema`). Inside the training loop they are named eval_ema/<name>.
- Class shares (eval/class_share_<k> inside the training loop) are written as
  `eval_class_share/<k>`: a section of their own after `eval`, and one chart with a line per
  class in the Custom Scalars tab.
- HParams: the session is the `train` run, so each row is named as TensorBoard names that run
  (the work directory relative to --logdir, then `/train`), and a metric of the EMA generator
  is looked up in the `ema` group (the `train/ema` run). Every run describes the same columns
  (EVAL_METRIC_TAGS, raw and EMA, and the Wasserstein estimate), whichever run TensorBoard
  reads the experiment from; a run fills the ones it logs. TensorBoard shows the first five
  metric columns (and the first five hyperparameters, alphabetically) until more are ticked.
"""

import re

from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import api as hparams_api

from wgan_dist.eval import evaluator as evaluator_lib

TRAIN_RUN = 'train'  # Under the work directory: every figure of the trained generator.
EMA_RUN = f'{TRAIN_RUN}/ema'  # The EMA generator's eval/* figures.
CORE_SECTION = 'core'
CLASS_SHARE_SECTION = 'eval_class_share'
EMA_PREFIX = 'eval_ema/'  # How the training loop names the EMA generator's figures.

WASSERSTEIN_TAG = 'train/wasserstein_estimate'
LOSS_TAGS = ('train/critic_loss', 'train/generator_loss')
# Every headline figure an evaluation can log (MNIST classifier, class-conditional, Inception),
# in the evaluator's order: the HParams columns of every run.
EVAL_METRIC_TAGS = tuple(dict.fromkeys(
    evaluator_lib.SCALAR_TAGS + evaluator_lib.CONDITIONAL_SCALAR_TAGS +
    evaluator_lib.INCEPTION_SCALAR_TAGS + ('eval/critic_overfit',)))
# Copied into the first section (core/<tag>), of the trained and of the EMA generator.
CORE_TAGS = ('eval/fid', 'eval/classifier_score', 'eval/inception_score',
             'eval/min_class_share', WASSERSTEIN_TAG) + LOSS_TAGS

_CLASS_SHARE = re.compile(r'eval/class_share_(\d+)')


def placements(name: str) -> list[tuple[str, str]]:
  """[(run directory under the work directory, tag), ...]: where the scalar the training loop
  names `name` is written (e.g. 'eval_ema/fid' -> [('train/ema', 'eval/fid'),
  ('train/ema', 'core/eval/fid')])."""
  run = TRAIN_RUN
  if name.startswith(EMA_PREFIX):
    run, name = EMA_RUN, 'eval/' + name[len(EMA_PREFIX):]
  share = _CLASS_SHARE.fullmatch(name)
  if share:
    return [(run, f'{CLASS_SHARE_SECTION}/{share[1]}')]
  places = [(run, name)]
  if name in CORE_TAGS:
    places.append((run, f'{CORE_SECTION}/{name}'))
  return places


def hparams_metrics(metric_tags: list[str]) -> list[hparams_api.Metric]:
  """The HParams columns, the same for every run: the figures of the first Scalars section that
  every MNIST run logs first (TensorBoard's table shows the first five: FID of the generator and
  of the EMA generator, classifier score, smallest class share, Wasserstein estimate), then the
  rest of EVAL_METRIC_TAGS and their EMA versions (named eval_ema/<name>), then any of
  `metric_tags` (the training loop's names) not among them."""
  names = ['eval/fid', 'eval_ema/fid', 'eval/classifier_score', 'eval/min_class_share',
           WASSERSTEIN_TAG]
  names += [name for tag in EVAL_METRIC_TAGS for name in (tag, tag.replace('eval/', EMA_PREFIX))
            if name not in names]
  names += [tag for tag in metric_tags if tag not in names]
  metrics = []
  for name in names:
    run, tag = placements(name)[0]
    # The run relative to the session's (TensorBoard looks the value up in <session>/<group>).
    group = run[len(TRAIN_RUN) + 1:] if run != TRAIN_RUN else ''
    metrics.append(hparams_api.Metric(tag, group=group, display_name=name))
  return metrics


def _chart(title: str, *patterns: str) -> layout_pb2.Chart:
  return layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(
      tag=list(patterns)))


def layout(metric_tags: list[str]) -> layout_pb2.Layout:
  """The Custom Scalars tab: 'Quality and losses' (FID, the score, the smallest class share,
  each other headline figure of `metric_tags`, the critic-overfitting gauge and the adaptive
  augmentation's p, the Wasserstein estimate, both losses in one chart) and, when the evaluation logs class shares, 'Class shares' (one line per class).

  Each chart matches tags of the trained generator's run and of the EMA run alike, so raw and
  EMA curves share it. TensorBoard merges the layouts of all runs (equal charts once).
  """
  logged = [tag for tag in metric_tags if not tag.startswith(EMA_PREFIX)]
  charts = []
  if 'eval/fid' in logged:
    charts.append(_chart('FID (lower is better; runs .../train and .../train/ema)',
                         r'^eval/fid$'))
  titles = {'eval/classifier_score': 'Classifier score (1 to 10)',
            'eval/inception_score': 'Inception score',
            'eval/min_class_share': 'Smallest class share (mode coverage)',
            'eval/conditional_accuracy': 'Conditional accuracy (classified as the label asked)',
            'eval/intra_fid': 'Intra-FID (FID per class, mean over classes)',
            'eval/critic_overfit': ('Critic overfitting r_v (0: held-out images scored like '
                                    'training images; 1: like fakes)'),
            'train/augment_p': 'Augmentation probability p (adaptive)'}
  # In this order; any headline figure the evaluation gains gets a chart titled by its tag.
  # The gauges of memorising (and the p they steer) last, beside the Wasserstein estimate.
  late = ('eval/critic_overfit', 'train/augment_p')
  order = ([tag for tag in titles if tag not in late] +
           [tag for tag in logged if tag not in titles and tag != 'eval/fid'] + list(late))
  charts += [_chart(titles.get(tag, tag), f'^{re.escape(tag)}$') for tag in order
             if tag in logged]
  charts.append(_chart('Wasserstein estimate (mean D(x) - mean D(G(z)))',
                       f'^{re.escape(WASSERSTEIN_TAG)}$'))
  charts.append(_chart('Critic and generator losses', r'^train/(critic|generator)_loss$'))
  categories = [layout_pb2.Category(title='Quality and losses', chart=charts)]
  if 'eval/min_class_share' in logged:
    categories.append(layout_pb2.Category(title='Class shares', chart=[_chart(
        'Share of samples classified as each class (a line per class; uniform = 1/classes)',
        f'^{CLASS_SHARE_SECTION}/')]))
  return layout_pb2.Layout(category=categories)
