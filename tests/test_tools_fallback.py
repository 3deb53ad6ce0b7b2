"""The tools restore as training does: a broken newest checkpoint is skipped with a warning that
names it, and the newest readable one is used. Also: their default console carries none of
TensorFlow's C++ start-up noise."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from wgan_dist.tools import restore
from wgan_dist import train

# TensorFlow's C++ lines that read like failures on a CPU machine (tf_log_level.py).
_NOISE = ('failed call to cuInit', 'remapper failed')


@pytest.fixture(scope='module')
def broken_newest(tmp_path_factory):
  """The tiny config trained to step 4 (checkpoints at 2 and 4), ckpt-4's data file truncated."""
  from configs import mnist  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path_factory.mktemp('broken_newest'))
  train.train_and_evaluate(mnist.get_config('tiny'), workdir)
  data_file = os.path.join(workdir, 'checkpoints', 'ckpt-4.data-00000-of-00001')
  with open(data_file, 'r+b') as f:  # What a save killed midway can leave.
    f.truncate(os.path.getsize(data_file) // 3)
  return workdir


def _run_tool(module: str, *flags: str) -> subprocess.CompletedProcess:
  # The user's environment: TF_CPP_MIN_LOG_LEVEL unset, so the tool's default applies.
  env = {name: value for name, value in os.environ.items() if name != 'TF_CPP_MIN_LOG_LEVEL'}
  env['CUDA_VISIBLE_DEVICES'] = ''
  return subprocess.run([sys.executable, '-m', module, *flags], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


def _assert_fell_back(result: subprocess.CompletedProcess) -> None:
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  warning = next(line for line in result.stderr.splitlines() if 'Skipping checkpoint' in line)
  assert 'ckpt-4' in warning and 'cannot be read' in warning
  assert 'at step 2 (' in result.stdout and 'ckpt-2' in result.stdout, result.stdout
  assert 'Traceback' not in result.stderr
  for noise in _NOISE:
    assert noise not in result.stderr


def test_load_generator_uses_the_newest_readable_checkpoint(broken_newest, caplog):
  caplog.set_level('WARNING')
  restored = restore.load_generator(broken_newest)
  assert restored.step == 2 and restored.checkpoint.endswith('ckpt-2')
  assert any('Skipping checkpoint' in record.getMessage() and 'ckpt-4' in record.getMessage()
             for record in caplog.records)


@pytest.mark.slow
def test_sample_falls_back_with_a_warning(broken_newest, tmp_path):
  out = str(tmp_path / 'grid.png')
  result = _run_tool('wgan_dist.sample', f'--workdir={broken_newest}', '--num=4', f'--out={out}')
  _assert_fell_back(result)
  assert os.path.getsize(out) > 0


@pytest.mark.slow
def test_evaluate_falls_back_with_a_warning(broken_newest):
  _assert_fell_back(_run_tool('wgan_dist.evaluate', f'--workdir={broken_newest}', '--num=16'))


def test_no_readable_checkpoint_is_a_restore_error(tmp_path, broken_newest):
  workdir = str(tmp_path / 'run')
  shutil.copytree(broken_newest, workdir)
  data_file = os.path.join(workdir, 'checkpoints', 'ckpt-2.data-00000-of-00001')
  with open(data_file, 'r+b') as f:
    f.truncate(os.path.getsize(data_file) // 3)
  with pytest.raises(restore.RestoreError, match='none of the 2 checkpoints'):
    restore.load_generator(workdir)
