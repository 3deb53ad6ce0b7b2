"""What of TensorFlow's own logging a user sees by default; call `quiet_by_default()` before
TensorFlow is imported (the command-line entry points do).

On a machine without a GPU, TensorFlow's C++ side opens every run with ERROR lines that are not
failures: "failed call to cuInit" (no CUDA device: the CPU is used) and grappler's "remapper
failed: INVALID_ARGUMENT" (an optional graph rewrite skipped), plus INFO banners. By default
only Python's log (absl) is shown: TF_CPP_MIN_LOG_LEVEL=3 hides C++ INFO, WARNING and ERROR
lines, and a real failure still reaches the user as a Python exception carrying the message.

TensorFlow's Python side also logs INFO lines meant for its own developers, through absl (the
checkpoint saver's "Sharding callback duration: N microseconds" at every save) and through its
`tensorflow` logger ("Collective all_reduce tensors: ..." whenever a step is traced). By default
these are hidden too: records below WARNING whose source file is inside the TensorFlow or Keras
package (`HideLibraryInfo`). Their warnings and errors, and every line of wgan_dist's own, are
kept.

A TF_CPP_MIN_LOG_LEVEL the user set is left alone, and then TensorFlow's Python INFO lines are
shown as well: `TF_CPP_MIN_LOG_LEVEL=0` shows everything. (A few INFO lines that TensorFlow
writes before its logging is set up, such as the oneDNN banner, ignore the variable.)
"""

import functools
import importlib.util
import logging
import os

DEFAULT_LEVEL = '3'
# Whose INFO lines are hidden by default (their packages' directories).
LIBRARIES = ('tensorflow', 'keras')
# The Python loggers TensorFlow's INFO lines arrive through: absl's (which wgan_dist logs
# through as well: the filter looks at each record's source file) and TensorFlow's own.
LOGGERS = ('absl', 'tensorflow')


def library_directories(names: tuple[str, ...] = LIBRARIES) -> tuple[str, ...]:
  """The installed directories of the packages `names` (without importing them), each ending
  with a path separator; packages not installed are left out."""
  found = []
  for name in names:
    spec = importlib.util.find_spec(name)
    for location in (spec.submodule_search_locations or []) if spec else []:
      found.append(os.path.join(os.path.realpath(location), ''))
  return tuple(found)


class HideLibraryInfo(logging.Filter):
  """Drops records below WARNING logged from a file under one of `directories`."""

  def __init__(self, directories: tuple[str, ...]):
    super().__init__()
    self._directories = directories

  @functools.lru_cache(maxsize=256)
  def _inside(self, pathname: str) -> bool:
    return os.path.realpath(pathname).startswith(self._directories)

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not self._inside(record.pathname)


def hide_library_info() -> HideLibraryInfo:
  """Installs `HideLibraryInfo` for TensorFlow and Keras on the loggers of LOGGERS (once)."""
  # absl's logger must be made by absl (an ABSLLogger, which names the calling file and line):
  # asked for first here, it would be a plain Logger naming absl's own file in every line.
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  del absl_logging
  for name in LOGGERS:
    for existing in logging.getLogger(name).filters:
      if isinstance(existing, HideLibraryInfo):
        return existing
  hide = HideLibraryInfo(library_directories())
  for name in LOGGERS:
    logging.getLogger(name).addFilter(hide)
  return hide


def quiet_by_default() -> None:
  """Sets TF_CPP_MIN_LOG_LEVEL to DEFAULT_LEVEL and hides TensorFlow's Python INFO lines, unless
  the user set TF_CPP_MIN_LOG_LEVEL."""
  if 'TF_CPP_MIN_LOG_LEVEL' in os.environ:
    return
  os.environ['TF_CPP_MIN_LOG_LEVEL'] = DEFAULT_LEVEL
  hide_library_info()
