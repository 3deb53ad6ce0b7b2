"""What of TensorFlow's C++ logging a user sees by default; call `quiet_by_default()` before
TensorFlow is imported (the command-line entry points do).

On a machine without a GPU, TensorFlow's C++ side opens every run with ERROR lines that are not
failures: "failed call to cuInit" (no CUDA device: the CPU is used) and grappler's "remapper
failed: INVALID_ARGUMENT" (an optional graph rewrite skipped), plus INFO banners. By default
only Python's log (absl) is shown: TF_CPP_MIN_LOG_LEVEL=3 hides C++ INFO, WARNING and ERROR
lines, and a real failure still reaches the user as a Python exception carrying the message.
A TF_CPP_MIN_LOG_LEVEL the user set is left alone: `TF_CPP_MIN_LOG_LEVEL=0` shows everything.
(A few INFO lines that TensorFlow writes before its logging is set up, such as the oneDNN
banner, ignore the variable.)
"""

import os

DEFAULT_LEVEL = '3'


def quiet_by_default() -> None:
  """Sets TF_CPP_MIN_LOG_LEVEL to DEFAULT_LEVEL unless the user set it."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', DEFAULT_LEVEL)
