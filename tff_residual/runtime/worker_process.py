"""Starting and stopping TFF's ``worker_binary`` process (no TensorFlow or TFF import).

Shared by the runtime, which owns its workers, and ``python -m
tff_residual.runtime.worker``, which serves one for runs on other machines.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_SECONDS = 5.0
"""SIGTERM, then SIGKILL after this long."""


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


def die_with_parent() -> None:  # runs in the child between fork and exec
  """``preexec_fn`` of a worker where ``setpriv`` is missing: SIGKILL when we die."""
  try:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
  except OSError:
    pass


def start_worker(port: int, max_concurrent_computation_calls: int = -1,
                 log_path: str | None = None) -> subprocess.Popen:
  """``worker_binary --port=PORT``, serving on ``[::]:PORT``; output to ``log_path``
  or discarded (never to our pipes, which an orphan would hold open).

  On Linux the kernel kills the worker when the thread that started it dies
  (``PR_SET_PDEATHSIG``), set by util-linux's ``setpriv --pdeathsig KILL``, which
  then execs the binary (same PID). No Python code runs between fork and exec, so
  Python starts it with vfork: a ``preexec_fn`` makes Python fork instead, and a
  child forked while TensorFlow's gRPC threads are busy could crash (SIGSEGV)
  before exec. Only where ``setpriv`` is missing does a ``preexec_fn`` set the
  signal."""
  args = [worker_binary_path(), f"--port={port}",
          f"--max_concurrent_computation_calls={max_concurrent_computation_calls}"]
  preexec_fn = None
  if sys.platform.startswith("linux"):
    setpriv = shutil.which("setpriv")
    if setpriv:
      args = [setpriv, "--pdeathsig", "KILL", "--", *args]
    else:
      preexec_fn = die_with_parent
  log = open(log_path, "ab") if log_path else subprocess.DEVNULL
  try:
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            preexec_fn=preexec_fn, close_fds=True)
  finally:
    if log is not subprocess.DEVNULL:
      log.close()


def stop_process(process: subprocess.Popen) -> None:
  """SIGTERM, then SIGKILL after ``STOP_TIMEOUT_SECONDS``; reaps the process.

  SIGTERM, not SIGINT: a process started as ``cmd &`` by a non-interactive shell
  has SIGINT ignored, exec keeps SIG_IGN, and a worker started from it would
  ignore SIGINT (every stop waited for the SIGKILL)."""
  if process.poll() is not None:
    return
  try:
    process.terminate()
    process.wait(timeout=STOP_TIMEOUT_SECONDS)
  except subprocess.TimeoutExpired:
    process.kill()
    process.wait()
  except ProcessLookupError:
    pass
