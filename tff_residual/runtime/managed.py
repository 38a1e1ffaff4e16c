"""An execution context whose TFF C++ worker processes we own and always stop.

``tff.backends.native`` starts a ``worker_binary`` child process that inherits
the parent's stdout and is not reliably stopped when Python exits: the orphan
keeps a pipe open, so ``python script.py | tail`` or a CI step hangs until it
dies. ``managed_tff_runtime()`` starts the worker itself and guarantees it ends:

* the worker's stdout/stderr go to /dev/null (or a log file), never to our pipes;
* on Linux the kernel kills the worker when the process that started it dies
  (``PR_SET_PDEATHSIG``), even on SIGKILL of Python;
* leaving the ``with`` block (normally, on an exception or on Ctrl-C) and
  interpreter exit (``atexit``) stop it by PID: SIGTERM, then SIGKILL;
* a worker that dies during a run ends it with ``WorkerLostError`` naming the
  worker, instead of TFF's endless retries.

``managed_tff_runtime(num_workers=N)`` starts N such workers and splits each
round's clients across them (TFF's mergeable context, with the partial results
merged in client order: ``ordered_merge``); ``workers=["host:port", ...]`` uses
workers started elsewhere (``python -m tff_residual.runtime.worker --port P``), which
a run does not stop. TFF 0.87's ``worker_binary`` is CPU-only: no CUDA library
is linked, so TFF computations run on the CPU whatever the machine.

Usage::

    with managed_tff_runtime(num_workers=2):
      state = process.initialize()
      ...
"""

from __future__ import annotations

import atexit
import contextlib
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Sequence

import grpc
import portpicker
import tensorflow_federated as tff

from tff_residual.runtime import ordered_merge
from tff_residual.runtime.worker_process import start_worker, stop_process

_READY_TIMEOUT_SECONDS = 60.0
_LIVE_RUNTIMES: "weakref.WeakSet[ManagedTffRuntime]" = weakref.WeakSet()
DISPOSE_BATCH_SIZE = 1
"""Values the Python side disposes of per request to the worker. TFF's
``RemoteExecutor`` defaults to 20, so the worker keeps the arguments, results and
intermediates of the last few calls until 20 disposals have piled up: with a
ResNet-18-sized model and 30 clients that was 4-5 GB per call, and the worker grew
to 19-21 GB over four calls (BENCHMARKS.md, "ResNet-18 x 30"). One request per value
frees each as soon as Python drops it."""
_NATIVE_CONTEXT_ARGS = dict(  # as tff.backends.native builds its contexts
    compiler_fn=tff.backends.native.desugar_and_transform_to_native,
    transform_args=tff.tensorflow.transform_args,
    transform_result=tff.tensorflow.transform_result)


class WorkerLostError(RuntimeError):
  """A TFF worker of the runtime died or stopped answering during a run.

  Not one of TFF's retryable errors: TFF's async context would otherwise retry
  the call forever (backing off to 30 s) and the run would hang."""


_DISPOSALS = ("dispose", "dispose_executor")
_CALLS = ("get_executor", "create_value", "create_struct", "create_call", "create_selection",
          "compute") + _DISPOSALS


class _StoppableStub(tff.framework.RemoteExecutorGrpcStub):
  """TFF's stub, for one worker: clean-up calls become no-ops once the worker is
  stopped, and a worker that died ends the run with ``WorkerLostError``.

  TFF disposes remote values from ``weakref`` finalizers, which can run after
  the channel is closed (e.g. during Ctrl-C or interpreter exit) and would print
  "Cannot invoke RPC on closed channel" or "Channel closed!" tracebacks; the
  worker and everything it held are gone by then, so there is nothing left to
  dispose. ``lost`` (set by the runtime) says why the worker is gone, or None:
  an owned worker whose process exited, a remote one that has not answered for
  ``unavailable_timeout_s``.
  """

  stopped = False

  def __init__(self, channel, lost: Callable[[], str | None] = lambda: None):
    super().__init__(channel)
    self.lost = lost

  def _guarded(self, name: str, request):
    if self.stopped and name in _DISPOSALS:
      return None
    try:
      return getattr(super(), name)(request)
    except grpc.RpcError:
      # A finalizer on TFF's event-loop thread can be mid-call when the main
      # thread closes the channel (Ctrl-C): the call ends CANCELLED "Channel
      # closed!". ``stopped`` is set before the channel closes, so this only
      # silences calls the stop itself cut off.
      if self.stopped and name in _DISPOSALS:
        return None
      reason = self.lost()
      if reason is not None:
        raise WorkerLostError(reason) from None
      raise


def _guard(name: str):
  def call(self, request):
    return self._guarded(name, request)
  call.__name__ = name
  return call


for _name in _CALLS:
  setattr(_StoppableStub, _name, _guard(_name))


class _Worker:
  """One TFF worker: a ``worker_binary`` we start and own, or a remote address."""

  def __init__(self, index: int, count: int, max_calls: int, log_path: str | None,
               address: str | None = None, connect_timeout_s: float = _READY_TIMEOUT_SECONDS,
               unavailable_timeout_s: float = 30.0):
    self.index, self.count, self.address = index, count, address
    self._max_calls, self._log_path = max_calls, log_path
    self._connect_timeout_s = connect_timeout_s
    self._unavailable_timeout_s = unavailable_timeout_s
    self._unavailable_since: float | None = None
    self.process: subprocess.Popen | None = None
    self.channel = None
    self.stub: _StoppableStub | None = None

  @property
  def owned(self) -> bool:
    return self.address is None

  @property
  def name(self) -> str:
    if self.owned:
      where = f"pid {self.process.pid}, localhost:{self._port}" if self.process else "not running"
    else:
      where = self.address
    return f"TFF worker {self.index + 1} of {self.count} ({where})"

  def lost(self) -> str | None:
    """Why the worker is gone, or None while it may still answer."""
    if self.owned:
      if self.process is not None and self.process.poll() is not None:
        return f"{self.name} exited with code {self.process.returncode} during the run"
      return None
    if self.stub is not None and self.stub.is_ready:
      self._unavailable_since = None
      return None
    now = time.monotonic()
    if self._unavailable_since is None:
      self._unavailable_since = now
    if now - self._unavailable_since >= self._unavailable_timeout_s:
      return f"{self.name} has not answered for {self._unavailable_timeout_s:.0f} s"
    return None

  def start(self) -> None:
    if self.owned:
      self._port = portpicker.pick_unused_port()
      self.process = start_worker(self._port, self._max_calls, self._log_path)
      target = f"localhost:{self._port}"
    else:
      target = self.address
    self.channel = grpc.insecure_channel(target, [
        ("grpc.max_message_length", 2 * 1000 * 1000 * 1000),
        ("grpc.max_receive_message_length", 2 * 1000 * 1000 * 1000),
        ("grpc.max_send_message_length", 2 * 1000 * 1000 * 1000),
    ])
    self.stub = _StoppableStub(self.channel, self.lost)
    deadline = time.monotonic() + self._connect_timeout_s
    while not self.stub.is_ready:
      if self.owned and self.process.poll() is not None:
        code = self.process.returncode
        self.stop()
        raise RuntimeError(f"TFF worker exited with code {code} at start.")
      if time.monotonic() > deadline:
        name = self.name
        self.stop()
        if self.owned:
          raise RuntimeError(f"{name} did not become ready within "
                             f"{self._connect_timeout_s:.0f} s.")
        raise RuntimeError(f"{name} did not answer within {self._connect_timeout_s:.0f} s; is "
                           f"`python -m tff_residual.runtime.worker --port PORT` running there and "
                           "reachable?")
      time.sleep(0.05)

  def stop(self) -> None:
    process, self.process = self.process, None
    if self.stub is not None:
      self.stub.stopped = True
    if self.channel is not None:
      self.channel.close()
    self.channel, self.stub = None, None
    if process is not None:
      stop_process(process)


class ManagedTffRuntime:
  """Owns TFF C++ worker processes (or connects to remote ones) and an
  execution context using them.

  One worker: TFF's sync context over it, as ``tff.backends.native`` builds it.
  Several (``num_workers=N`` owned local workers, or ``workers=["host:port",
  ...]`` started elsewhere with ``python -m tff_residual.runtime.worker``): one async
  context per worker behind ``ordered_merge.OrderedMergeableContext``, TFF's
  mergeable context with partial results merged in client order, so that every
  per-client measurement comes back in client order under any split.
  """

  def __init__(self, default_num_clients: int = 0, max_concurrent_computation_calls: int = -1,
               log_path: str | None = None, num_workers: int = 1,
               workers: Sequence[str] | None = None,
               connect_timeout_s: float = _READY_TIMEOUT_SECONDS,
               unavailable_timeout_s: float = 30.0):
    if workers is not None and not workers:
      raise ValueError("workers= needs at least one host:port address")
    if num_workers < 1:
      raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    count = len(workers) if workers else num_workers
    self._default_num_clients = default_num_clients
    self._workers = [
        _Worker(i, count, max_concurrent_computation_calls, log_path,
                address=None if not workers else workers[i],
                connect_timeout_s=connect_timeout_s, unavailable_timeout_s=unavailable_timeout_s)
        for i in range(count)]
    self._lock = threading.Lock()
    self._context = None
    self._install = None
    _LIVE_RUNTIMES.add(self)

  @property
  def pid(self) -> int | None:
    """PID of the first owned worker process, or None when it is not running."""
    pids = self.pids
    return pids[0] if pids else None

  @property
  def pids(self) -> list[int]:
    """PIDs of the owned worker processes that are running."""
    return [w.process.pid for w in self._workers if w.process is not None]

  @property
  def num_workers(self) -> int:
    return len(self._workers)

  def _executor_factory(self, worker: _Worker):
    def stack_fn(cardinalities):
      if cardinalities.get(tff.CLIENTS) is None:
        cardinalities[tff.CLIENTS] = self._default_num_clients
      if worker.stub is None:
        raise WorkerLostError(f"{worker.name} is stopped")
      reason = worker.lost()
      if reason is not None:
        raise WorkerLostError(reason)
      executor = tff.framework.RemoteExecutor(worker.stub,
                                              dispose_batch_size=DISPOSE_BATCH_SIZE)
      executor.set_cardinalities(cardinalities)
      return executor
    return tff.framework.ResourceManagingExecutorFactory(executor_stack_fn=stack_fn)

  def start(self) -> "ManagedTffRuntime":
    """Starts the workers and installs the context (for use without ``with``)."""
    if self._context is not None:
      return self
    with self._lock:
      try:
        for worker in self._workers:
          worker.start()
      except BaseException:
        for worker in self._workers:
          worker.stop()
        raise
    if len(self._workers) == 1:
      self._context = tff.framework.SyncExecutionContext(
          executor_fn=self._executor_factory(self._workers[0]), **_NATIVE_CONTEXT_ARGS)
    else:
      self._context = ordered_merge.OrderedMergeableContext([
          tff.framework.AsyncExecutionContext(
              executor_fn=self._executor_factory(worker), **_NATIVE_CONTEXT_ARGS)
          for worker in self._workers])
    self._install = tff.framework.get_context_stack().install(self._context)
    self._install.__enter__()
    return self

  def stop(self) -> None:
    """Uninstalls the context and stops the workers (idempotent)."""
    install, self._install = self._install, None
    self._context = None
    if install is not None:
      with contextlib.suppress(Exception):
        install.__exit__(None, None, None)
    with self._lock:
      for worker in self._workers:
        worker.stop()

  def __enter__(self) -> "ManagedTffRuntime":
    return self.start()

  def __exit__(self, *exc_info) -> None:
    self.stop()

  def __del__(self):
    with contextlib.suppress(Exception):
      for worker in self._workers:
        worker.stop()


def managed_tff_runtime(**kwargs) -> ManagedTffRuntime:
  """A ``ManagedTffRuntime``, to be used as a context manager."""
  return ManagedTffRuntime(**kwargs)


@atexit.register
def _stop_all_runtimes() -> None:
  for runtime in list(_LIVE_RUNTIMES):
    with contextlib.suppress(Exception):
      runtime.stop()


class NoTffRuntimeError(RuntimeError):
  """A TFF computation was invoked where none may run (``no_tff_runtime``)."""


class _RefusingContext(tff.framework.SyncContext):
  """A context that runs nothing: invoking a computation is an error, not a worker."""

  def __init__(self, why: str):
    self.why = why

  def invoke(self, comp, arg):
    raise NoTffRuntimeError(f"a TFF computation was invoked, but {self.why}")


@contextlib.contextmanager
def no_tff_runtime(why: str = "this run executes in process, with no TFF runtime"):
  """Within the block, invoking a TFF computation raises ``NoTffRuntimeError`` instead
  of starting TFF's default ``worker_binary``: a run that promises to run in process
  (``--execution=in_process``) is held to it. Tracing computations and building TFF
  types stay allowed."""
  with tff.framework.get_context_stack().install(_RefusingContext(why)):
    yield
