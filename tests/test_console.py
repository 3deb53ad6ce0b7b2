"""What a user sees on the console of `python -m wgan_dist.main`: no TensorFlow INFO lines at
checkpoints (config/tf_log_level.py), and the evaluation line carries the EMA generator's
figures beside the raw generator's (training/evaluate_action.py)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from wgan_dist.training import evaluate_action


def test_the_evaluation_line_puts_the_ema_figures_beside_the_raw_ones():
  line = evaluate_action.console_line({
      'eval/fid': 12.345, 'eval_ema/fid': 10.1, 'eval/classifier_score': 8.5,
      'eval_ema/classifier_score': 8.75, 'eval/class_share_3': 0.1,
      'eval_ema/class_share_3': 0.1})
  assert line == 'eval/classifier_score 8.5 (EMA 8.75), eval/fid 12.35 (EMA 10.1)'


def test_without_an_ema_the_evaluation_line_has_the_raw_figures():
  assert (evaluate_action.console_line({'eval/fid': 12.345, 'eval/fid_std': 0.5})
          == 'eval/fid 12.35, eval/fid_std 0.5')


@pytest.mark.slow
def test_the_console_of_a_run_with_checkpoints_and_an_ema(tmp_path):
  # The user's environment: TF_CPP_MIN_LOG_LEVEL unset, so the command line's default applies.
  env = {name: value for name, value in os.environ.items() if name != 'TF_CPP_MIN_LOG_LEVEL'}
  env['CUDA_VISIBLE_DEVICES'] = ''
  result = subprocess.run(
      [sys.executable, '-m', 'wgan_dist.main', '--config=configs/mnist.py:tiny',
       f'--workdir={tmp_path}', '--config.train.num_steps=2', '--config.train.ema_decay=0.9',
       '--config.checkpoint_every_steps=1', '--config.eval_every_steps=2',
       '--config.num_eval_samples=16'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
  console = result.stdout + result.stderr
  assert result.returncode == 0, console[-3000:]
  assert console.count('Saved checkpoint at step') == 2, console[-3000:]
  assert 'Sharding callback' not in console
  assert 'INFO:tensorflow' not in console
  evaluation = [line for line in console.splitlines() if 'Evaluation: ' in line]
  assert len(evaluation) == 1 and 'eval/fid ' in evaluation[0], console[-3000:]
  assert evaluation[0].count('(EMA ') == evaluation[0].count('eval/'), evaluation[0]
