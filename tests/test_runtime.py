"""No TFF worker process outlives a script, whatever way the script ends."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import grpc
import pytest

SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import tensorflow_federated as tff
    from tff_residual.runtime.managed import managed_tff_runtime

    @tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS))
    def total(x):
      return tff.federated_sum(x)

    mode = sys.argv[1]
    if mode == "atexit":
      runtime = managed_tff_runtime().start()  # never stopped explicitly
      print("PID", runtime.pid, total([1.0, 2.0]), flush=True)
      sys.exit(0)
    with managed_tff_runtime() as runtime:
      print("PID", runtime.pid, total([1.0, 2.0]), flush=True)
      if mode == "raise":
        raise RuntimeError("boom")
      if mode == "hard":
        os._exit(3)
""")


def process_alive(pid: int) -> bool:
  try:
    with open(f"/proc/{pid}/stat") as stat:
      state = stat.read().rsplit(")", 1)[1].split()[0]
  except FileNotFoundError:
    return False
  return state not in ("Z", "X")  # a zombie is dead (holds no pipes); init reaps it


def assert_gone(pids, why: str, within: float = 10.0) -> None:
  """Every process of ``pids`` ends within ``within`` seconds."""
  for pid in pids:
    end = time.monotonic() + within
    while process_alive(pid) and time.monotonic() < end:
      time.sleep(0.1)
    assert not process_alive(pid), f"worker {pid} {why}"


@pytest.mark.parametrize("mode,exit_code", [("ok", 0), ("raise", 1), ("hard", 3), ("atexit", 0)])
@pytest.mark.slow
def test_worker_stopped_and_pipe_closed(tmp_path, mode, exit_code):
  script = tmp_path / "script.py"
  script.write_text(SCRIPT)
  start = time.monotonic()
  # stdout is a pipe: communicate() returns only once every holder of the
  # pipe (an orphaned worker included) has closed it.
  proc = subprocess.run([sys.executable, str(script), mode], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL, text=True, timeout=120)
  elapsed = time.monotonic() - start
  assert proc.returncode == exit_code
  pid_line = [line for line in proc.stdout.splitlines() if line.startswith("PID")][0]
  assert pid_line.endswith("3.0")
  pid = int(pid_line.split()[1])
  deadline = time.monotonic() + 10
  while process_alive(pid) and time.monotonic() < deadline:
    time.sleep(0.1)
  assert not process_alive(pid), f"worker {pid} still running after mode={mode}"
  assert elapsed < 90


def test_late_value_disposal_after_stop_is_silent():
  """TFF disposes remote values from weakref finalizers, which may run after the
  channel is closed (Ctrl-C, exit): that must not raise (nor print tracebacks)."""
  from tensorflow_federated.proto.v0 import executor_pb2
  from tff_residual.runtime.managed import ManagedTffRuntime
  runtime = ManagedTffRuntime().start()
  stub = runtime._workers[0].stub
  runtime.stop()
  assert stub.dispose(executor_pb2.DisposeRequest()) is None
  assert stub.dispose_executor(executor_pb2.DisposeExecutorRequest()) is None


class _CutOff(grpc.RpcError):
  """What grpc raises in a call whose channel closes under it: CANCELLED."""


def test_a_disposal_cut_off_by_the_stop_is_silent_and_other_failures_are_not(monkeypatch):
  """The race behind a CI failure: a finalizer on TFF's event-loop thread is mid
  dispose call when Ctrl-C closes the channel; the call ends CANCELLED ("Channel
  closed!"), which used to print a traceback. Only calls the stop cut off are
  silenced: a dispose failing while the worker runs is still raised."""
  from tensorflow_federated.proto.v0 import executor_pb2
  from tensorflow_federated.python.core.impl.executors import remote_executor_grpc_stub
  from tff_residual.runtime.managed import _StoppableStub

  stub = _StoppableStub(grpc.insecure_channel("localhost:1"))

  def stopped_mid_call(self, request):
    self.stopped = True  # what _stop_worker does on the main thread
    raise _CutOff("Channel closed!")

  monkeypatch.setattr(remote_executor_grpc_stub.RemoteExecutorGrpcStub, "dispose", stopped_mid_call)
  monkeypatch.setattr(remote_executor_grpc_stub.RemoteExecutorGrpcStub, "dispose_executor",
                      stopped_mid_call)
  assert stub.dispose(executor_pb2.DisposeRequest()) is None
  stub.stopped = False
  assert stub.dispose_executor(executor_pb2.DisposeExecutorRequest()) is None

  def fails_while_running(self, request):
    raise _CutOff("worker unavailable")

  stub.stopped = False
  monkeypatch.setattr(remote_executor_grpc_stub.RemoteExecutorGrpcStub, "dispose", fails_while_running)
  with pytest.raises(grpc.RpcError, match="worker unavailable"):
    stub.dispose(executor_pb2.DisposeRequest())


SIGINT_MASK = 1 << (signal.SIGINT - 1)  # its bit in /proc/PID/status SigIgn


def process_status(pid: int, field: str) -> str:
  with open(f"/proc/{pid}/status") as status:
    return next(line for line in status if line.startswith(field + ":")).split()[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, Linux only")
def test_worker_stops_at_once_when_python_started_with_sigint_ignored():
  """`make test &` from a script starts Python with SIGINT ignored, and exec keeps
  SIG_IGN: the worker ignores SIGINT too. It used to be stopped by SIGINT, and
  every stop waited 5 s for the SIGKILL; SIGTERM stops it at once."""
  from tff_residual.runtime.managed import ManagedTffRuntime
  previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
  try:
    runtime = ManagedTffRuntime().start()
    assert int(process_status(os.getpid(), "SigIgn"), 16) & SIGINT_MASK  # the condition
    assert int(process_status(runtime.pid, "SigIgn"), 16) & SIGINT_MASK  # inherited
    start = time.monotonic()
    runtime.stop()
    assert time.monotonic() - start < 2.5  # the SIGKILL fallback comes after 5 s
  finally:
    signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, Linux only")
@pytest.mark.skipif(shutil.which("setpriv") is None,
                    reason="util-linux's setpriv is missing: the worker is started with a "
                           "preexec_fn (worker_process.die_with_parent)")
def test_worker_is_the_binary_itself_started_without_a_fork_hook(monkeypatch):
  """The worker's PID is the binary's (``setpriv`` sets the parent-death signal and
  execs it; test_worker_stopped_and_pipe_closed[hard] checks that it dies with
  Python), and no ``preexec_fn`` runs: Python then forks instead of vfork, and a
  child forked beside busy gRPC threads once died of SIGSEGV before exec."""
  import portpicker
  from tff_residual.runtime import worker_process
  seen = {}
  original = subprocess.Popen

  def recording_popen(args, **kwargs):
    seen.update(kwargs, program=args[0])
    return original(args, **kwargs)

  monkeypatch.setattr(worker_process.subprocess, "Popen", recording_popen)
  process = worker_process.start_worker(portpicker.pick_unused_port())
  try:
    assert seen["preexec_fn"] is None and seen["program"].endswith("setpriv")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # setpriv execs the binary under the same PID
      with open(f"/proc/{process.pid}/cmdline", "rb") as cmdline:
        program = cmdline.read().split(b"\0")[0]
      if program.endswith(b"worker_binary"):
        break
      time.sleep(0.05)
    assert program.endswith(b"worker_binary")
    assert int(process_status(process.pid, "PPid")) == os.getpid()
  finally:
    worker_process.stop_process(process)
  assert process.returncode == -signal.SIGTERM


def test_tff_worker_runs_jit_compiled_functions_without_xla():
  """BENCHMARKS.md explains the TFF path's times by this: TFF's worker ignores
  ``jit_compile=True``. A string op, which XLA rejects, runs there, while the same
  function raises when TensorFlow compiles it eagerly. If TFF's worker gains XLA,
  this fails and the TFF rows of BENCHMARKS.md need measuring again."""
  import numpy as np
  import tensorflow as tf
  import tensorflow_federated as tff
  from tff_residual.runtime.managed import managed_tff_runtime

  @tf.function(jit_compile=True, autograph=False)
  def digits(x):
    return tf.strings.length(tf.strings.as_string(x))

  with pytest.raises(tf.errors.InvalidArgumentError, match="XLA_CPU_JIT"):
    digits(tf.ones([3]))
  with managed_tff_runtime():
    @tff.tensorflow.computation(tff.TensorType(np.float32, [3]))
    def in_worker(x):
      return digits(x)
    np.testing.assert_array_equal(in_worker(np.ones(3, np.float32)), [8, 8, 8])


def test_the_worker_frees_each_value_as_soon_as_python_drops_it(monkeypatch):
  """TFF's RemoteExecutor batches disposals by 20 by default, so the worker kept the
  last few calls' values (ResNet-18 x 30: 19-21 GB). Ours sends each disposal at
  once: after one call, every value it created on the worker is disposed of, one
  value per request."""
  import gc

  import numpy as np
  import tensorflow_federated as tff
  from tensorflow_federated.python.core.impl.executors import remote_executor_grpc_stub
  from tff_residual.runtime.managed import managed_tff_runtime

  requests = []
  forward = remote_executor_grpc_stub.RemoteExecutorGrpcStub.dispose

  def recorded(self, request):
    requests.append(len(request.value_ref))
    return forward(self, request)

  monkeypatch.setattr(remote_executor_grpc_stub.RemoteExecutorGrpcStub, "dispose", recorded)
  double = tff.tensorflow.computation(lambda x: x * 2.0, np.float32)
  with managed_tff_runtime():
    assert double(np.float32(3.0)) == 6.0
    gc.collect()
    assert requests and set(requests) == {1}, requests
    done = len(requests)
    assert double(np.float32(4.0)) == 8.0
    gc.collect()
    assert len(requests) > done, "the second call's values were not disposed of"
