"""What TensorBoard shows of a run, read back with TensorBoard's own readers and plugins: the
tags (the contract tags, the first Scalars section, the EMA generator's run, class shares), both
learning rates, the Custom Scalars layout, and the HParams dashboard (rows named by run, the
same metric columns in every run)."""

import json
import os
import re

import pytest
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalar_metadata
from tensorboard.plugins.hparams import hparams_plugin
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util
from werkzeug import test as werkzeug_test
from werkzeug import wrappers

from tests import helpers
from wgan_dist import train
from wgan_dist.training import dashboards
from wgan_dist.training import monitoring

# Every test here shares a training run or starts processes: the full suite only.
pytestmark = pytest.mark.slow

LEARNING_RATE = 1e-4
GENERATOR_LEARNING_RATE = 3e-4
# Tags other tools read: they stay where they are (train run), whatever else is added.
CONTRACT_TAGS = ('train/critic_loss', 'train/generator_loss', 'train/gradient_penalty',
                 'train/wasserstein_estimate', 'train/critic_grad_norm',
                 'train/generator_grad_norm', 'perf/steps_per_sec', 'perf/images_per_sec',
                 'train/learning_rate', 'train/generator_learning_rate', 'eval/fid',
                 'eval/classifier_score', 'eval/min_class_share')
EVAL_NAMES = ('fid', 'classifier_score', 'min_class_share')
# Evaluation figures outside the first section (`core`): in `eval` and the custom layout only.
MORE_EVAL_NAMES = ('kid', 'precision', 'recall', 'density', 'coverage')


@pytest.fixture(scope='module')
def logdir(tmp_path_factory):
  """A --logdir holding `trained`: the tiny config, 4 steps, both rates decaying linearly to 0,
  an EMA generator, evaluated at step 4."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.train.learning_rate = LEARNING_RATE
  config.train.generator_learning_rate = GENERATOR_LEARNING_RATE
  config.train.lr_decay = 'linear'
  config.train.ema_decay = 0.9
  config.eval_every_steps = 4
  config.num_eval_samples = 16
  path = tmp_path_factory.mktemp('tensorboard')
  train.train_and_evaluate(config, str(path / 'trained'))
  return path


@pytest.fixture(scope='module')
def workdir(logdir):
  return str(logdir / 'trained')


def _events(workdir: str, run: str) -> event_accumulator.EventAccumulator:
  return event_accumulator.EventAccumulator(
      os.path.join(workdir, run), size_guidance={event_accumulator.TENSORS: 0}).Reload()


def _tags(workdir: str, run: str) -> set[str]:
  return set(_events(workdir, run).Tags()['tensors'])


def _scalar_tags(workdir: str, run: str) -> set[str]:
  """The tags of `run` TensorBoard's Scalars tab shows (the scalars plugin's)."""
  events = _events(workdir, run)
  return {tag for tag in events.Tags()['tensors']
          if events.SummaryMetadata(tag).plugin_data.plugin_name == 'scalars'}


def _compare_tag_names(a: str, b: str) -> int:
  """TensorBoard's tag order (vz_sorting's compareTagNames, which its Scalars and Time Series
  tabs sort by): runs of digits compared as numbers, '/' and digits before any other
  character."""
  i = j = 0
  while True:
    if i == len(a):
      return 0 if j == len(b) else -1
    if j == len(b):
      return 1
    if a[i].isdigit() and b[j].isdigit():
      end_i = re.match(r'\d+', a[i:]).end() + i
      end_j = re.match(r'\d+', b[j:]).end() + j
      x, y = int(a[i:end_i]), int(b[j:end_j])
      if x != y:
        return -1 if x < y else 1
      i, j = end_i, end_j
      continue
    a_break, b_break = a[i] == '/' or a[i].isdigit(), b[j] == '/' or b[j].isdigit()
    if a_break != b_break:
      return -1 if a_break else 1
    if a[i] != b[j]:
      return -1 if a[i] < b[j] else 1
    i += 1
    j += 1


def _sections(tags: set[str]) -> list[tuple[str, list[str]]]:
  """[(section, its tags in order)] as the Scalars tab lays them out."""
  import functools  # pylint: disable=import-outside-toplevel
  sections: dict[str, list[str]] = {}
  for tag in sorted(tags, key=functools.cmp_to_key(_compare_tag_names)):
    sections.setdefault(tag.split('/', 1)[0], []).append(tag)
  return list(sections.items())


def test_tag_order_is_tensorboards():
  for earlier, later in (('a', 'a/b'), ('a/b', 'a_b'), ('a1', 'a2'), ('a2', 'a10'), ('a1', 'ab'),
                         ('a/2', 'a/10'), ('eval/fid', 'eval_class_share/0'),
                         ('core/x', 'eval/a'), ('eval_class_share/2', 'eval_class_share/10')):
    assert _compare_tag_names(earlier, later) == -1, (earlier, later)
    assert _compare_tag_names(later, earlier) == 1, (earlier, later)
  assert _compare_tag_names('eval/fid', 'eval/fid') == 0


def test_learning_rates_are_logged(workdir):
  # Logged after steps 2 and 4 of 4: the rate the next update uses, lr * (1 - s/4).
  critic = helpers.event_scalars(workdir, 'train/learning_rate')
  generator = helpers.event_scalars(workdir, 'train/generator_learning_rate')
  assert critic == pytest.approx({2: LEARNING_RATE / 2, 4: 0.0})
  assert generator == pytest.approx({2: GENERATOR_LEARNING_RATE / 2, 4: 0.0})


def test_first_scalars_section_holds_the_headline_figures(workdir):
  tags = _scalar_tags(workdir, 'train') | _scalar_tags(workdir, 'train/ema')
  sections = _sections(tags)
  assert [name for name, _ in sections] == ['core', 'eval', 'eval_class_share', 'perf', 'train']
  first = sections[0][1]
  assert first == ['core/eval/classifier_score', 'core/eval/fid', 'core/eval/min_class_share',
                   'core/train/critic_loss', 'core/train/generator_loss',
                   'core/train/wasserstein_estimate']
  assert len(first) <= 12  # One page of a section.
  # The copies carry the same values as the tags they copy.
  for tag in ('eval/fid', 'train/critic_loss', 'train/wasserstein_estimate'):
    assert helpers.event_scalars(workdir, f'core/{tag}') == helpers.event_scalars(workdir, tag)
  assert set(helpers.event_scalars(workdir, 'core/eval/fid')) == {4}
  assert (helpers.event_scalars(workdir, 'core/eval/fid', run='train/ema')
          == helpers.event_scalars(workdir, 'eval/fid', run='train/ema'))


def test_contract_tags_stay_in_the_train_run(workdir):
  assert set(CONTRACT_TAGS) <= _scalar_tags(workdir, 'train')
  assert 'samples' in _tags(workdir, 'train')


def test_ema_figures_share_the_raw_figures_charts(workdir):
  # The EMA generator's figures: the same tags, in the run train/ema, so one chart (one tag)
  # shows both; no eval_ema/* tag and no eval_ema section.
  ema = _scalar_tags(workdir, 'train/ema')
  assert ema == ({f'eval/{name}' for name in EVAL_NAMES + MORE_EVAL_NAMES}
                 | {f'core/eval/{name}' for name in EVAL_NAMES}
                 | {f'eval_class_share/{k}' for k in range(10)})
  for name in EVAL_NAMES:
    raw = helpers.event_scalars(workdir, f'eval/{name}')
    averaged = helpers.event_scalars(workdir, f'eval/{name}', run='train/ema')
    assert set(raw) == set(averaged) == {4}
  # The EMA generator (decay 0.9 over 4 steps) is not the trained one.
  assert (helpers.event_scalars(workdir, 'eval/fid', run='train/ema')
          != helpers.event_scalars(workdir, 'eval/fid'))
  assert not any(tag.startswith('eval_ema') for tag in _tags(workdir, 'train') | ema)


def test_class_shares_have_their_own_section(workdir):
  train_tags = _scalar_tags(workdir, 'train')
  assert not any('class_share_' in tag for tag in train_tags)
  for run in ('train', 'train/ema'):
    shares = [helpers.event_scalars(workdir, f'eval_class_share/{k}', run=run)[4]
              for k in range(10)]
    assert sum(shares) == pytest.approx(1.0)
    assert min(shares) == pytest.approx(
        helpers.event_scalars(workdir, 'eval/min_class_share', run=run)[4])


def _layouts(workdir: str, run: str) -> list[layout_pb2.Layout]:
  events = _events(workdir, run)
  if custom_scalar_metadata.CONFIG_SUMMARY_TAG not in events.Tags()['tensors']:
    return []
  return [layout_pb2.Layout.FromString(tensor_util.make_ndarray(event.tensor_proto).item())
          for event in events.Tensors(custom_scalar_metadata.CONFIG_SUMMARY_TAG)]


def test_custom_scalars_layout(workdir):
  layouts = _layouts(workdir, 'train')
  assert len(layouts) == 1  # Written once.
  assert _layouts(workdir, 'train/ema') == []
  layout = layouts[0]
  assert [category.title for category in layout.category] == ['Quality and losses',
                                                               'Class shares']
  quality, shares = layout.category
  tags = {run: _scalar_tags(workdir, run) for run in ('train', 'train/ema')}

  def matched(chart, run):
    return {tag for tag in tags[run] for pattern in chart.multiline.tag
            if re.search(pattern, tag)}

  # Every chart draws something; FID, score and smallest share draw the trained generator's
  # and the EMA generator's curve.
  expected = [({'eval/fid'}, True), ({'eval/classifier_score'}, True),
              ({'eval/min_class_share'}, True), ({'eval/kid'}, True), ({'eval/precision'}, True),
              ({'eval/recall'}, True), ({'eval/density'}, True), ({'eval/coverage'}, True),
              ({'eval/critic_overfit'}, False),
              ({'train/wasserstein_estimate'}, False),
              ({'train/critic_loss', 'train/generator_loss'}, False)]
  assert len(quality.chart) == len(expected)
  for chart, (want, with_ema) in zip(quality.chart, expected):
    assert matched(chart, 'train') == want, chart
    assert matched(chart, 'train/ema') == (want if with_ema else set()), chart
  (class_chart,) = shares.chart
  assert matched(class_chart, 'train') == {f'eval_class_share/{k}' for k in range(10)}


def test_layout_of_other_evaluations():
  # Inception data (no class shares) and a class-conditional run (each extra figure its own
  # chart, as any headline figure the evaluation gains); no evaluation: training charts only.
  inception = dashboards.layout(['eval/fid', 'eval/inception_score', 'eval_ema/fid',
                                 'eval_ema/inception_score'])
  assert [c.title for c in inception.category] == ['Quality and losses']
  assert [c.multiline.tag[0] for c in inception.category[0].chart][:2] == [
      '^eval/fid$', '^eval/inception_score$']
  conditional = dashboards.layout(['eval/fid', 'eval/classifier_score', 'eval/min_class_share',
                                   'eval/conditional_accuracy', 'eval/intra_fid', 'eval/kid'])
  assert [c.multiline.tag[0] for c in conditional.category[0].chart][3:6] == [
      '^eval/conditional_accuracy$', '^eval/intra_fid$', '^eval/kid$']
  assert conditional.category[0].chart[5].title == 'eval/kid'
  assert len(dashboards.layout([]).category[0].chart) == 2


def _plugin_route(logdir: str, route: str, request: dict) -> dict:
  """POSTs `request` to a route of TensorBoard's own HParams plugin over `logdir`."""
  multiplexer = plugin_event_multiplexer.EventMultiplexer()
  multiplexer.AddRunsFromDirectory(logdir)
  multiplexer.Reload()
  context = base_plugin.TBContext(
      logdir=logdir, multiplexer=multiplexer,
      data_provider=data_provider.MultiplexerDataProvider(multiplexer, logdir))
  app = hparams_plugin.HParamsPlugin(context).get_plugin_apps()[route]
  response = werkzeug_test.Client(app, wrappers.Response).post(
      route, data=json.dumps(request), content_type='application/json')
  assert response.status_code == 200, response.get_data(as_text=True)
  return json.loads(response.get_data(as_text=True))


def _experiment_metrics(workdir: str) -> list[tuple[str, str, str]]:
  """(group, tag, display name) of the HParams experiment's metrics written in workdir/train."""
  from tensorboard.plugins.hparams import plugin_data_pb2  # pylint: disable=import-outside-toplevel
  events = _events(workdir, 'train')
  # The experiment is in the summary's metadata, not in its (empty) tensor.
  content = events.SummaryMetadata(hparams_metadata.EXPERIMENT_TAG).plugin_data.content
  experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
  return [(info.name.group, info.name.tag, info.display_name) for info in experiment.metric_infos]


def test_hparams_rows_are_named_by_run_with_the_same_columns(logdir, workdir):
  # A second run beside the trained one: a class-conditional evaluation and no EMA generator,
  # written through the Monitor as training writes it.
  from configs import mnist  # pylint: disable=import-outside-toplevel
  other = monitoring.Monitor(str(logdir / 'other'), total_steps=2, images_per_step=1)
  other.write_hparams(mnist.get_config('tiny'), ['eval/fid', 'eval/classifier_score',
                                                 'eval/min_class_share',
                                                 'eval/conditional_accuracy', 'eval/intra_fid'])
  other.write_scalars(2, {'eval/fid': 123.0, 'eval/intra_fid': 456.0})
  other.close()

  # Whichever run TensorBoard reads the experiment from, the columns are the same.
  columns = _experiment_metrics(workdir)
  assert columns == _experiment_metrics(str(logdir / 'other'))
  # The five TensorBoard shows until more are ticked: the first section's figures.
  assert columns[:5] == [('', 'eval/fid', 'eval/fid'), ('ema', 'eval/fid', 'eval_ema/fid'),
                         ('', 'eval/classifier_score', 'eval/classifier_score'),
                         ('', 'eval/min_class_share', 'eval/min_class_share'),
                         ('', 'train/wasserstein_estimate', 'train/wasserstein_estimate')]
  assert len(columns) == len(set(columns)) == 2 * len(dashboards.EVAL_METRIC_TAGS) + 1
  assert {(group, tag) for group, tag, _ in columns} >= {
      ('', 'eval/inception_score'), ('', 'eval/intra_fid'), ('ema', 'eval/conditional_accuracy')}

  experiment = _plugin_route(str(logdir), '/experiment', {'experimentName': ''})
  assert [(m['name'].get('group', ''), m['name']['tag']) for m in experiment['metricInfos']] == [
      (group, tag) for group, tag, _ in columns]
  groups = _plugin_route(str(logdir), '/session_groups', {
      'experimentName': '', 'allowedStatuses': ['STATUS_UNKNOWN'], 'colParams': [],
      'startIndex': 0, 'sliceSize': 100})['sessionGroups']
  # Rows named as TensorBoard names the runs (relative to --logdir), not by a training-time path.
  rows = {group['name']: group for group in groups}
  assert set(rows) == {'trained/train', 'other/train'}
  assert rows['trained/train']['hparams']['train.lr_decay'] == 'linear'

  def value(row, group, tag):
    found = [m['value'] for m in rows[row]['metricValues']
             if (m['name'].get('group', ''), m['name']['tag']) == (group, tag)]
    return found[0] if found else None

  assert value('trained/train', '', 'eval/fid') == pytest.approx(
      helpers.event_scalars(workdir, 'eval/fid')[4])
  assert value('trained/train', 'ema', 'eval/fid') == pytest.approx(
      helpers.event_scalars(workdir, 'eval/fid', run='train/ema')[4])
  assert value('other/train', '', 'eval/intra_fid') == 456.0
  assert value('other/train', 'ema', 'eval/fid') is None
