"""Starting and stopping TFF's ``worker_binary`` process (no TensorFlow or TFF import).

Shared by the runtime, which owns its workers, and ``python -m
tff_residual.worker``, which serves one for runs on other machines.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_SECONDS = 5.0
"""SIGINT, then SIGKILL after this long."""


def worker_binary_path() -> str:
  """Path of TFF's C++ worker binary inside the installed package."""
  spec = importlib.util.find_spec("tensorflow_federated")
  if spec is None or not spec.submodule_search_locations:
    raise RuntimeError("tensorflow-federated is not installed (see README, `make venv`).")
  path = os.path.join(list(spec.submodule_search_locations)[0], "data", "worker_binary")
  if not os.path.isfile(path):
    raise RuntimeError(f"TFF's worker binary is missing at {path}; is "
                       "tensorflow-federated 0.87.0 installed (see README, `make venv`)?")
  return path


def prepare_worker_process() -> None:  # runs in the child between fork and exec
  """``preexec_fn`` of a worker: SIGINT at its default, and dies with its parent."""
  # We stop the worker with SIGINT. A process started as `cmd &` by a
  # non-interactive shell has SIGINT ignored, and exec keeps SIG_IGN: the
  # worker would ignore our SIGINT and every stop would wait for the SIGKILL.
  signal.signal(signal.SIGINT, signal.SIG_DFL)
  if sys.platform.startswith("linux"):  # the kernel kills the worker when we die
    try:
      libc = ctypes.CDLL("libc.so.6", use_errno=True)
      libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
      pass


def start_worker(port: int, max_concurrent_computation_calls: int = -1,
                 log_path: str | None = None) -> subprocess.Popen:
  """``worker_binary --port=PORT``, serving on ``[::]:PORT``; output to ``log_path``
  or discarded (never to our pipes, which an orphan would hold open)."""
  args = [worker_binary_path(), f"--port={port}",
          f"--max_concurrent_computation_calls={max_concurrent_computation_calls}"]
  log = open(log_path, "ab") if log_path else subprocess.DEVNULL
  try:
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            preexec_fn=prepare_worker_process, close_fds=True)
  finally:
    if log is not subprocess.DEVNULL:
      log.close()


def stop_process(process: subprocess.Popen) -> None:
  """SIGINT, then SIGKILL after ``STOP_TIMEOUT_SECONDS``; reaps the process."""
  if process.poll() is not None:
    return
  try:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=STOP_TIMEOUT_SECONDS)
  except subprocess.TimeoutExpired:
    process.kill()
    process.wait()
  except ProcessLookupError:
    pass
