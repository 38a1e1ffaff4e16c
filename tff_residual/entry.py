"""The experiment CLI as a program (``experiments/run.py``, the console script
``tff-residual-run`` and the scripts): TensorFlow imported quietly first, then
``tff_residual.cli``. Importing ``tff_residual.cli`` itself changes nothing in the
process (no environment variable, no redirected file descriptor)."""

from __future__ import annotations

import os


def quiet_tensorflow() -> None:
  """Imports TensorFlow with its C++ start-up logs kept off the terminal: on a machine
  without a GPU it logs CUDA plugin registration errors that TF_CPP_MIN_LOG_LEVEL=2
  (set here unless already set) keeps, so fd 2 goes to /dev/null while TensorFlow
  loads. A failed import still raises, after stderr is back."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
      import tensorflow  # noqa: F401
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def load_cli():
  """``tff_residual.cli``, after ``quiet_tensorflow``."""
  quiet_tensorflow()
  from tff_residual import cli
  return cli


def main(argv=None) -> int:
  """``tff_residual.cli.main`` after a quiet TensorFlow import; the exit code."""
  return load_cli().main(argv)
