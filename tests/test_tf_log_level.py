"""The command lines' default console: TensorFlow's Python INFO lines (the checkpoint saver's
"Sharding callback duration" at every save) are hidden, its warnings and wgan_dist's own lines
are kept (config/tf_log_level.py)."""

import logging
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import logging as absl_logging

from wgan_dist.config import tf_log_level

_SHARDING = 'Sharding callback duration'


@pytest.fixture
def hidden():
  """HideLibraryInfo installed as the command lines install it; removed after the test."""
  hide = tf_log_level.hide_library_info()
  yield hide
  for name in tf_log_level.LOGGERS:
    logging.getLogger(name).removeFilter(hide)


def _save(directory) -> None:
  tf.train.Checkpoint(v=tf.Variable(1.0)).save(os.path.join(directory, 'ckpt'))


def _messages(caplog) -> str:
  return '\n'.join(record.getMessage() for record in caplog.records)


def test_a_save_logs_the_sharding_line_without_the_filter(tmp_path, caplog):
  """The line the filter is for exists (else the next test would pass for nothing)."""
  caplog.set_level(logging.INFO)
  _save(tmp_path)
  assert _SHARDING in _messages(caplog)


def test_a_save_logs_no_tensorflow_info_with_the_filter(hidden, tmp_path, caplog):
  del hidden
  caplog.set_level(logging.INFO)
  _save(tmp_path)
  absl_logging.info('Saved checkpoint at step 3')  # wgan_dist's own INFO lines stay.
  assert _SHARDING not in _messages(caplog)
  assert 'Saved checkpoint at step 3' in _messages(caplog)


@pytest.mark.parametrize('level, kept', [(logging.DEBUG, False), (logging.INFO, False),
                                         (logging.WARNING, True), (logging.ERROR, True)])
@pytest.mark.parametrize('library', tf_log_level.LIBRARIES)
def test_the_filter_keeps_warnings_and_errors_of_the_libraries(hidden, level, kept, library):
  directory = tf_log_level.library_directories((library,))[0]
  record = logging.LogRecord('absl', level, os.path.join(directory, 'python', 'module.py'), 1,
                             'message', None, None)
  assert hidden.filter(record) is kept


def test_the_filter_keeps_every_line_of_wgan_dist(hidden):
  record = logging.LogRecord('absl', logging.INFO, tf_log_level.__file__, 1, 'message', None,
                             None)
  assert hidden.filter(record)


def test_installing_twice_adds_one_filter(hidden):
  assert tf_log_level.hide_library_info() is hidden
  assert logging.getLogger('absl').filters.count(hidden) == 1


def test_a_user_setting_leaves_everything_shown(monkeypatch):
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '0')
  before = list(logging.getLogger('absl').filters)
  tf_log_level.quiet_by_default()
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '0'
  assert logging.getLogger('absl').filters == before


def test_log_lines_still_name_their_caller_after_quiet_by_default():
  """Installed before absl is imported (as the command lines do), the filter leaves absl's logger
  absl's own: each line names the file and line that logged it, not absl's."""
  env = {name: value for name, value in os.environ.items() if name != 'TF_CPP_MIN_LOG_LEVEL'}
  program = ('from wgan_dist.config import tf_log_level\n'
             'tf_log_level.quiet_by_default()\n'
             'from absl import logging\n'
             'logging.use_absl_handler()\n'
             'logging.warning("from the caller")\n')
  result = subprocess.run([sys.executable, '-c', program], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
  line = next(line for line in result.stderr.splitlines() if 'from the caller' in line)
  assert '<string>:5] from the caller' in line, line
