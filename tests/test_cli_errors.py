"""Bad input through the real command line: a non-zero exit and a message naming the culprit,
before any work is done and without touching what the workdir already holds."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def _run_main(*flags: str) -> subprocess.CompletedProcess:
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'CUDA_VISIBLE_DEVICES': ''}
  return subprocess.run(
      [sys.executable, '-m', 'wgan_dist.main', '--config=configs/mnist.py:tiny', *flags],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def _assert_fails_naming(result: subprocess.CompletedProcess, *expected: str) -> None:
  assert result.returncode != 0, result.stdout + result.stderr
  last_line = result.stderr.strip().splitlines()[-1]
  for text in expected:
    assert text in last_line, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr, result.stderr[-2000:]


def test_unknown_config_field(tmp_path):
  result = _run_main(f'--workdir={tmp_path}', '--config.train.n_critc=3')
  _assert_fails_naming(result, 'config.train.n_critc', 'n_critic')
  assert not os.listdir(tmp_path)  # Nothing was started.


def test_batch_not_divisible_by_replicas(tmp_path):
  result = _run_main(f'--workdir={tmp_path}', '--config.distribution.cpu_replicas=3',
                     '--config.train.global_batch_size=8')
  _assert_fails_naming(result, 'train.global_batch_size=8', '3 replicas')


def test_batch_norm_in_critic_is_refused(tmp_path):
  result = _run_main(f'--workdir={tmp_path}', '--config.model.critic_norm=batch')
  _assert_fails_naming(result, "model.critic_norm='batch'", 'per example')


@pytest.mark.parametrize('make_empty', [False, True], ids=['missing', 'empty'])
def test_folder_source_missing_or_empty(tmp_path, make_empty):
  folder = tmp_path / 'images'
  if make_empty:
    folder.mkdir()
    (folder / 'notes.txt').write_text('not an image')
  workdir = tmp_path / 'run'
  result = _run_main(f'--workdir={workdir}', '--config.data.source=folder',
                     f'--config.data.path={folder}')
  _assert_fails_naming(result, f'data.path={str(folder)!r}',
                       'no image files' if make_empty else 'not an existing directory')
  assert not workdir.exists()


def test_bad_input_leaves_existing_checkpoints_alone(tmp_path):
  checkpoints = tmp_path / 'checkpoints'
  checkpoints.mkdir()
  (checkpoints / 'checkpoint').write_text('model_checkpoint_path: "ckpt-7"\n')
  result = _run_main(f'--workdir={tmp_path}', '--config.train.n_critic=0')
  _assert_fails_naming(result, 'train.n_critic=0', '>= 1')
  assert (checkpoints / 'checkpoint').read_text() == 'model_checkpoint_path: "ckpt-7"\n'
