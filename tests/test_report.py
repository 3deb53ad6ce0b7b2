"""python -m wgan_dist.report through the real command line: on tiny trained workdirs with and
without evaluation, its one-line errors, and without matplotlib; and its drawing of the
Inception tags of non-MNIST runs.

The command runs as a subprocess: importing wgan_dist.report here would define its flags
(--workdir, ...) in this process next to wgan_dist.main's, which tests/test_config.py imports.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from tests import helpers
from tests.conftest import REPO_ROOT
from wgan_dist import train

# Every test here shares a training run or starts processes: the full suite only.
pytestmark = pytest.mark.slow

# report.FIGURE_INCHES x report.DPI: (15 x 100) x (8 x 100) pixels for every run.
PNG_SIZE = (1500, 800)
MISSING_EXTRA = 'pip install -e ".[report]"'


def _run(*flags: str, pythonpath: str = '') -> subprocess.CompletedProcess:
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'CUDA_VISIBLE_DEVICES': ''}
  if pythonpath:
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [pythonpath, env.get('PYTHONPATH')]))
  return subprocess.run([sys.executable, '-m', 'wgan_dist.report', *flags], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=600, check=False)


def _assert_ok(result: subprocess.CompletedProcess) -> None:
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def _assert_png(path) -> None:
  with Image.open(path) as image:
    assert image.format == 'PNG' and image.size == PNG_SIZE
    pixels = np.asarray(image.convert('L'))
  assert pixels.std() > 0  # Not a blank page.


def _train(path: str, *, num_steps: int, eval_every_steps: int, ema_decay: float) -> str:
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.train.num_steps = num_steps
  config.eval_every_steps = eval_every_steps
  config.num_eval_samples = 16  # Enough for finite figures; the report only draws them.
  config.train.ema_decay = ema_decay
  train.train_and_evaluate(config, path)
  return path


@pytest.fixture(scope='module')
def evaluated_run(tmp_path_factory):
  """4 tiny steps with an EMA, evaluated at steps 2 and 4: eval/* tags in train and train/ema."""
  return _train(str(tmp_path_factory.mktemp('evaluated')), num_steps=4, eval_every_steps=2,
                ema_decay=0.9)


@pytest.fixture(scope='module')
def unevaluated_run(tmp_path_factory):
  """2 tiny steps as configs/mnist.py:tiny has them: eval_every_steps=0, no EMA."""
  return _train(str(tmp_path_factory.mktemp('unevaluated')), num_steps=2, eval_every_steps=0,
                ema_decay=0.0)


def test_report_of_an_evaluated_run(evaluated_run, tmp_path):
  assert set(helpers.event_scalars(evaluated_run, 'eval/fid', run='train/ema')) == {2, 4}
  out = tmp_path / 'figures' / 'report.png'  # Its directory does not exist yet.
  result = _run(f'--workdir={evaluated_run}', f'--out={out}')
  _assert_ok(result)
  _assert_png(out)
  lines = result.stdout.strip().splitlines()
  assert lines[-1].startswith(f'wrote {out}'), result.stdout
  summary = lines[-2]
  assert summary.startswith('EMA generator at step 4;'), summary
  for tag in ('eval/fid', 'eval_ema/fid', 'eval/classifier_score', 'eval_ema/classifier_score',
              'train/wasserstein_estimate'):
    assert f' {tag} ' in summary, summary
  assert 'no eval/* tags' not in result.stderr


def test_report_without_evaluation_draws_the_training_curve(unevaluated_run):
  result = _run(f'--workdir={unevaluated_run}')  # Default --out: W/report.png.
  _assert_ok(result)
  _assert_png(os.path.join(unevaluated_run, 'report.png'))
  assert 'Generator at step 2; latest train/wasserstein_estimate' in result.stdout
  notices = [line for line in result.stderr.splitlines() if 'no eval/* tags' in line]
  assert len(notices) == 1 and 'eval_every_steps=0' in notices[0], result.stderr[-3000:]
  assert 'Traceback' not in result.stderr


def _one_line_error(result: subprocess.CompletedProcess) -> str:
  """The error line, which must be all of stderr: the checks run before TensorFlow loads."""
  assert result.returncode == 1, result.stdout + result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr[-3000:]
  return lines[0]


@pytest.mark.parametrize('case', ['missing', 'empty', 'no_checkpoint'])
def test_unusable_workdir_fails_in_one_line(case, unevaluated_run, tmp_path):
  workdir = tmp_path / 'run'
  if case == 'empty':
    workdir.mkdir()
  elif case == 'no_checkpoint':  # Events and config, as when killed before the first save.
    shutil.copytree(unevaluated_run, workdir, ignore=shutil.ignore_patterns('checkpoints'))
  line = _one_line_error(_run(f'--workdir={workdir}', f'--out={tmp_path / "report.png"}'))
  expected = {'missing': f'{workdir} is not a directory',
              'empty': f'no TensorBoard event files (events.*) in {workdir}/train',
              'no_checkpoint': f'no checkpoint in {workdir}/checkpoints'}[case]
  assert expected in line, line
  assert not (tmp_path / 'report.png').exists()


def test_without_matplotlib_one_line_names_the_extra(unevaluated_run, tmp_path):
  # A matplotlib package that fails to import, ahead of the real one on the path.
  blocker = tmp_path / 'blocker' / 'matplotlib'
  blocker.mkdir(parents=True)
  (blocker / '__init__.py').write_text("raise ImportError('matplotlib blocked by the test')\n")
  line = _one_line_error(_run(f'--workdir={unevaluated_run}', f'--out={tmp_path / "r.png"}',
                              pythonpath=str(blocker.parent)))
  assert line.startswith('error: wgan_dist.report needs matplotlib'), line
  assert line.endswith(MISSING_EXTRA), line
  assert not (tmp_path / 'r.png').exists()


def test_inception_tags_get_their_own_panel_and_no_mnist_references(tmp_path):
  # Curves as a live CIFAR-10 run with Inception weights logs them (no InceptionV3 weights here
  # to train one), its latest checkpoint from before its last evaluation; drawn by the report's
  # own function in a fresh interpreter.
  script = textwrap.dedent(f"""
      import json
      import numpy as np
      from wgan_dist import report
      steps = np.array([100, 200, 300])
      series = {{'eval/fid': (steps, np.array([90.0, 60.0, 45.0])),
                'eval/inception_score': (steps, np.array([3.0, 4.5, 5.25])),
                'train/wasserstein_estimate': (steps, np.array([3.0, 2.0, 1.5]))}}
      grid = np.full((66, 66, 3), 128, np.uint8)
      figure = report.draw(series, grid, name='cifar10', step=200, ema=False, seed=0)
      figure.savefig({str(tmp_path / 'r.png')!r}, dpi=report.DPI)
      print(json.dumps({{'suptitle': figure.get_suptitle(),
                        'panels': [(axes.get_title(), len(axes.lines),
                                    [text.get_text() for text in axes.texts])
                                   for axes in figure.axes]}}))
      """)
  result = subprocess.run([sys.executable, '-c', script], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
  _assert_ok(result)
  _assert_png(tmp_path / 'r.png')
  drawn = json.loads(result.stdout.strip().splitlines()[-1])
  assert drawn['suptitle'] == ('cifar10: generator step 200, last evaluation at step 300\n'
                               'FID 45  ·  Inception score 5.25  ·  W estimate 1.5')
  # One curve each and no dashed MNIST reference line; a panel without class shares says so.
  assert [title for title, _, _ in drawn['panels']] == [
      'FID (log scale)', 'Inception score', 'smallest class share',
      'Wasserstein estimate (training)',
      'samples of the generator at step 200\n(noise from the run\'s seed 0: not selected)']
  assert [lines for _, lines, _ in drawn['panels'][:4]] == [1, 1, 0, 1]
  assert drawn['panels'][2][2] == ['no eval/min_class_share logged']



def test_conditional_runs_get_intra_fid_beside_fid_and_a_grid_of_one_class_per_row(tmp_path):
  # Curves as a class-conditional MNIST run with an EMA logs them, and the grid of a stand-in
  # conditional generator whose every pixel is its label / 10, so each cell shows
  # which label it was generated for; drawn by the report's own functions in a fresh
  # interpreter (conditional models are built elsewhere).
  script = textwrap.dedent(f"""
      import json
      import keras
      import numpy as np
      from configs import mnist
      from wgan_dist import report
      from wgan_dist.tools import restore
      config = mnist.get_config('tiny')
      config.model.num_classes = 10
      z = keras.Input((config.model.noise_dim,), name='z')
      label = keras.Input((), dtype='int32', name='label')
      image = keras.layers.Lambda(lambda inputs: 0.0 * inputs[0][:, :1, None, None]
          + keras.ops.cast(inputs[1], 'float32')[:, None, None, None] / 10
          + keras.ops.zeros((1, 28, 28, 1)))([z, label])
      restored = restore.Restored(config, keras.Model([z, label], image), 4, 'ckpt-4', True)
      grid = report.sample_grid(restored, 16)
      steps = np.array([2, 4])
      series = {{}}
      for prefix in ('eval/', 'eval_ema/'):
        for tag, values in (('fid', [300.0, 200.0]), ('intra_fid', [400.0, 250.0]),
                            ('classifier_score', [2.0, 3.0]), ('min_class_share', [0.0, 0.02]),
                            ('conditional_accuracy', [0.1, 0.3])):
          series[prefix + tag] = (steps, np.array(values))
      series['train/wasserstein_estimate'] = (steps, np.array([3.0, 2.0]))
      figure = report.draw(series, grid, name='cond', step=4, ema=True, seed=0, num_classes=10)
      figure.savefig({str(tmp_path / 'r.png')!r}, dpi=report.DPI)
      # The cell value of each grid cell: 28-pixel images, 2-pixel padding.
      cells = grid[2::30, 2::30, 0][:10, :1]
      print(json.dumps({{'suptitle': figure.get_suptitle(), 'cells': cells.tolist(),
                        'shape': list(grid.shape),
                        'panels': [(axes.get_title(), len(axes.lines)) for axes in figure.axes]}}))
      """)
  result = subprocess.run([sys.executable, '-c', script], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
  _assert_ok(result)
  _assert_png(tmp_path / 'r.png')
  drawn = json.loads(result.stdout.strip().splitlines()[-1])
  assert drawn['suptitle'] == (
      'cond: generator step 4\nFID 200 (EMA 200)  ·  intra-FID 250 (EMA 250)  ·  '
      'classifier score 3 (EMA 3)\nsmallest class share 0.02 (EMA 0.02)  ·  '
      'conditional accuracy 0.3 (EMA 0.3)  ·  W estimate 2')
  # Each evaluation panel: the generator, the EMA generator and the dashed MNIST reference.
  assert drawn['panels'] == [
      ['FID (log scale)', 3], ['intra-FID (log scale)', 3], ['classifier score', 3],
      ['smallest class share', 3], ['conditional accuracy', 3],
      ['Wasserstein estimate (training)', 1],
      ['samples of the EMA generator at step 4\n(noise from the run\'s seed 0: not selected; '
       'row k: class k)', 0]]
  # 16 samples for 10 classes: one column of one noise vector, one row per class; row k holds
  # label k (pixel (k / 10 + 1) * 127.5, up to rounding).
  assert drawn['shape'] == [10 * 30 + 2, 1 * 30 + 2, 1]
  cells = np.array(drawn['cells'])[:, 0]
  np.testing.assert_allclose(cells, (np.arange(10) / 10 + 1) * 127.5, atol=1)
