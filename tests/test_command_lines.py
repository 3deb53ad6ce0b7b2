"""Every command-line tool starts, parses its flags and stops on bad input with one line naming
the value, before any work: in the fast tier, so that each tool's module runs at least once
there. (The tools define their absl flags at import, several with the same names, so they run
as the user runs them, `python -m`, one process each; their work is tested in-process through
wgan_dist/tools/ and in the full suite's end-to-end runs.)"""

import os

import pytest

from tests import helpers


@pytest.mark.parametrize('tool, flags', [
    ('wgan_dist.evaluate', ()), ('wgan_dist.sample', ()), ('wgan_dist.export', ('--out={tmp}/x',)),
])
def test_a_tool_given_a_directory_that_is_no_work_directory_says_so(tool, flags, tmp_path):
  result = helpers.run_module(tool, f'--workdir={tmp_path}',
                              *(flag.format(tmp=tmp_path) for flag in flags))
  assert helpers.assert_one_line_error(result) == (
      f'error: {tmp_path}/config.json not found: {tmp_path} is not a wgan_dist work directory '
      '(training writes config.json there)')


def test_prepare_names_a_missing_source_and_what_is_allowed(tmp_path):
  result = helpers.run_module('wgan_dist.prepare', f'--source={tmp_path}/nope',
                              f'--out={tmp_path}/out', '--image_size=28')
  last_line = helpers.assert_one_line_error(result)
  assert last_line.startswith(f"error: --source='{tmp_path}/nope' does not exist; allowed: ")
  assert not os.path.exists(tmp_path / 'out')


def test_bench_names_a_bad_config_field_in_one_line():
  result = helpers.run_module('wgan_dist.bench', '--config=configs/mnist.py:tiny',
                              '--config.train.n_critic=0')
  assert helpers.assert_one_line_error(result) == (
      'error: train.n_critic=0 is not allowed; allowed: an integer >= 1')


def test_train_classifier_names_the_allowed_sources():
  result = helpers.run_module('wgan_dist.eval.train_classifier', '--source=nope', '--epochs=1')
  assert result.returncode == 1, result.stderr[-3000:]
  assert "flag --source=nope: value should be one of <auto|embedded_mnist|mnist>" in result.stderr
