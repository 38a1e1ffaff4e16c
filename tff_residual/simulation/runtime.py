"""An execution context whose TFF C++ worker process we own and always stop.

``tff.backends.native`` starts a ``worker_binary`` child process that inherits
the parent's stdout and is not reliably stopped when Python exits: the orphan
keeps a pipe open, so ``python script.py | tail`` or a CI step hangs until it
dies. ``managed_tff_runtime()`` starts the worker itself and guarantees it ends:

* the worker's stdout/stderr go to /dev/null (or a log file), never to our pipes;
* on Linux the kernel kills the worker when the process that started it dies
  (``PR_SET_PDEATHSIG``), even on SIGKILL of Python;
* leaving the ``with`` block (normally, on an exception or on Ctrl-C) and
  interpreter exit (``atexit``) stop it by PID: SIGINT, then SIGKILL.

Usage::

    with managed_tff_runtime():
      state = process.initialize()
      ...
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import weakref

import grpc
import portpicker
from tensorflow_federated.python.core.backends.native import compiler
from tensorflow_federated.python.core.environments.tensorflow_frontend import tensorflow_computation
from tensorflow_federated.python.core.impl.context_stack import context_stack_impl
from tensorflow_federated.python.core.impl.execution_contexts import sync_execution_context
from tensorflow_federated.python.core.impl.executor_stacks import executor_factory as tff_executor_factory
from tensorflow_federated.python.core.impl.executor_stacks import python_executor_stacks
from tensorflow_federated.python.core.impl.executors import remote_executor
from tensorflow_federated.python.core.impl.executors import remote_executor_grpc_stub
from tensorflow_federated.python.core.impl.types import placements

_PR_SET_PDEATHSIG = 1
_READY_TIMEOUT_SECONDS = 60.0
_STOP_TIMEOUT_SECONDS = 5.0
_LIVE_RUNTIMES: "weakref.WeakSet[ManagedTffRuntime]" = weakref.WeakSet()


def worker_binary_path() -> str:
  """Path of TFF's C++ worker binary inside the installed package."""
  package_dir = os.path.dirname(tff_executor_factory.__file__)
  path = os.path.normpath(os.path.join(package_dir, "..", "..", "..", "..", "data", "worker_binary"))
  if not os.path.isfile(path):
    raise RuntimeError(f"TFF's worker binary is missing at {path}; is "
                       "tensorflow-federated 0.87.0 installed (see README, `make venv`)?")
  return path


def _prepare_worker() -> None:  # runs in the child between fork and exec
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


class _StoppableStub(remote_executor_grpc_stub.RemoteExecutorGrpcStub):
  """TFF's stub whose clean-up calls become no-ops once the worker is stopped.

  TFF disposes remote values from ``weakref`` finalizers, which can run after
  the channel is closed (e.g. during Ctrl-C or interpreter exit) and would print
  "Cannot invoke RPC on closed channel" or "Channel closed!" tracebacks; the
  worker and everything it held are gone by then, so there is nothing left to
  dispose.
  """

  stopped = False

  def _unless_stopped(self, call, request):
    if self.stopped:
      return None
    try:
      return call(request)
    except grpc.RpcError:
      # A finalizer on TFF's event-loop thread can be mid-call when the main
      # thread closes the channel (Ctrl-C): the call ends CANCELLED "Channel
      # closed!". ``stopped`` is set before the channel closes, so this only
      # silences calls the stop itself cut off; any other failure is raised.
      if self.stopped:
        return None
      raise

  def dispose(self, request):
    return self._unless_stopped(super().dispose, request)

  def dispose_executor(self, request):
    return self._unless_stopped(super().dispose_executor, request)


class ManagedTffRuntime:
  """Owns one TFF C++ worker process and a sync execution context using it."""

  def __init__(self, default_num_clients: int = 0, max_concurrent_computation_calls: int = -1,
               log_path: str | None = None):
    self._default_num_clients = default_num_clients
    self._max_calls = max_concurrent_computation_calls
    self._log_path = log_path
    self._process: subprocess.Popen | None = None
    self._channel = None
    self._stub = None
    self._lock = threading.Lock()
    self._context = None
    self._install = None
    _LIVE_RUNTIMES.add(self)

  @property
  def pid(self) -> int | None:
    """PID of the worker process, or None when it is not running."""
    return None if self._process is None else self._process.pid

  def _start_worker(self) -> None:
    port = portpicker.pick_unused_port()
    args = [worker_binary_path(), f"--port={port}",
            f"--max_concurrent_computation_calls={self._max_calls}"]
    log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL
    try:
      self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       preexec_fn=_prepare_worker, close_fds=True)
    finally:
      if log is not subprocess.DEVNULL:
        log.close()
    self._channel = grpc.insecure_channel(f"localhost:{port}", [
        ("grpc.max_message_length", 2 * 1000 * 1000 * 1000),
        ("grpc.max_receive_message_length", 2 * 1000 * 1000 * 1000),
        ("grpc.max_send_message_length", 2 * 1000 * 1000 * 1000),
    ])
    self._stub = _StoppableStub(self._channel)
    deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
    while not self._stub.is_ready:
      if self._process.poll() is not None:
        raise RuntimeError(f"TFF worker exited with code {self._process.returncode} at start.")
      if time.monotonic() > deadline:
        self.stop()
        raise RuntimeError("TFF worker did not become ready within "
                           f"{_READY_TIMEOUT_SECONDS:.0f} s.")
      time.sleep(0.05)

  def _get_stub(self):
    with self._lock:
      if self._stub is None or not self._stub.is_ready:
        self._stop_worker()
        self._start_worker()
      return self._stub

  def _stop_worker(self) -> None:
    process, self._process = self._process, None
    if self._stub is not None:
      self._stub.stopped = True
    if self._channel is not None:
      self._channel.close()
    self._channel, self._stub = None, None
    if process is None or process.poll() is not None:
      return
    try:
      process.send_signal(signal.SIGINT)
      process.wait(timeout=_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()
    except ProcessLookupError:
      pass

  def start(self) -> "ManagedTffRuntime":
    """Starts the worker and installs the context (for use without ``with``)."""
    if self._context is not None:
      return self
    with self._lock:
      self._start_worker()

    def stack_fn(cardinalities):
      if cardinalities.get(placements.CLIENTS) is None:
        cardinalities[placements.CLIENTS] = self._default_num_clients
      executor = remote_executor.RemoteExecutor(self._get_stub())
      executor.set_cardinalities(cardinalities)
      return executor

    factory = python_executor_stacks.ResourceManagingExecutorFactory(executor_stack_fn=stack_fn)
    self._context = sync_execution_context.SyncExecutionContext(
        executor_fn=factory,
        compiler_fn=compiler.desugar_and_transform_to_native,
        transform_args=tensorflow_computation.transform_args,
        transform_result=tensorflow_computation.transform_result,
    )
    self._install = context_stack_impl.context_stack.install(self._context)
    self._install.__enter__()
    return self

  def stop(self) -> None:
    """Uninstalls the context and stops the worker (idempotent)."""
    install, self._install = self._install, None
    self._context = None
    if install is not None:
      with contextlib.suppress(Exception):
        install.__exit__(None, None, None)
    with self._lock:
      self._stop_worker()

  def __enter__(self) -> "ManagedTffRuntime":
    return self.start()

  def __exit__(self, *exc_info) -> None:
    self.stop()

  def __del__(self):
    with contextlib.suppress(Exception):
      self._stop_worker()


def managed_tff_runtime(**kwargs) -> ManagedTffRuntime:
  """A ``ManagedTffRuntime``, to be used as a context manager."""
  return ManagedTffRuntime(**kwargs)


@atexit.register
def _stop_all_runtimes() -> None:
  for runtime in list(_LIVE_RUNTIMES):
    with contextlib.suppress(Exception):
      runtime.stop()
