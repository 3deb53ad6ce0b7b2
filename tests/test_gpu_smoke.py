"""launch/gpu_smoke.sh on a machine without GPUs: it says "no GPU" and exits 0 (the mode CI
runs), and its checks themselves work when rehearsed on CPU devices; a child that does not
finish in time is a failed check. On a GPU node, with
WGAN_DIST_TEST_GPUS=1, the last test runs it on the GPUs."""

# pylint: disable=protected-access

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.conftest import TEST_GPUS
from tests.conftest import gpu_env
from wgan_dist import gpu_smoke


def _smoke(*args: str, env=None, timeout: int = 600) -> subprocess.CompletedProcess:
  env = dict(env if env is not None else os.environ)
  # The script runs `python`: this interpreter's.
  env['PATH'] = f'{os.path.dirname(sys.executable)}:{env["PATH"]}'
  env['TF_CPP_MIN_LOG_LEVEL'] = '3'
  return subprocess.run(['launch/gpu_smoke.sh', *args], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)


def test_without_a_gpu_it_says_so_and_exits_0():
  result = _smoke(env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 1, lines
  assert lines[0].startswith('gpu_smoke: no GPU: TensorFlow ') and lines[0].endswith(
      'nothing checked'), lines


@pytest.mark.slow
def test_the_checks_pass_when_rehearsed_on_cpu_devices():
  # Without the exact-resume check: the suite checks resuming on CPUs itself (test_robustness).
  result = _smoke('--rehearse_on_cpu', '--skip_resume',
                  env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
  lines = result.stdout.strip().splitlines()
  assert result.returncode == 0, result.stdout + result.stderr[-2000:]
  checks = [line for line in lines if line.startswith(('ok', 'FAIL'))]
  assert all(line.startswith('ok  ') for line in checks), checks
  assert any(line.startswith('ok   1 CPU vs 2 logical CPUs agree: 3 steps') for line in checks)
  assert 'skip exact resume: --skip_resume' in lines
  assert lines[-1].startswith('gpu_smoke: 0 of the checks failed')


def test_a_child_that_does_not_finish_in_time_is_a_failed_check_naming_it():
  # A timeout of 0 s: no process finishes before it, whatever the machine's load.
  results = gpu_smoke._run_child(['--child=train', '--devices=1', '--cpu'], {}, '1 CPU', 0)
  assert results == [{'error': '1 CPU: the child process did not finish within 0 s '
                               '(--child_timeout_secs); killed'}]


def _history(*losses):
  return {'history': [{name: value for name in gpu_smoke.AGREEMENT_METRICS} for value in losses]}


def test_agreement_fails_beyond_the_bounds_naming_the_loss():
  reference = _history(0.5, 0.25)
  assert gpu_smoke._agreement(reference, _history(0.5, 0.25 + 1e-5))[0]
  ok, detail = gpu_smoke._agreement(reference, _history(0.5, 0.26))
  assert not ok and detail.startswith('critic_loss 0.26 vs 0.25'), detail


@pytest.mark.skipif(not TEST_GPUS, reason='runs on the GPUs only with WGAN_DIST_TEST_GPUS=1')
def test_on_the_gpus_every_check_passes():
  result = _smoke(env=gpu_env(), timeout=900)
  assert result.returncode == 0, result.stdout + result.stderr[-2000:]
  assert 'FAIL' not in result.stdout
