"""No TFF worker process outlives a script, whatever way the script ends."""

import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import tensorflow_federated as tff
    from tff_residual.simulation.runtime import managed_tff_runtime

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


@pytest.mark.parametrize("mode,exit_code", [("ok", 0), ("raise", 1), ("hard", 3), ("atexit", 0)])
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
  from tff_residual.simulation.runtime import ManagedTffRuntime
  runtime = ManagedTffRuntime().start()
  stub = runtime._stub
  runtime.stop()
  assert stub.dispose(executor_pb2.DisposeRequest()) is None
  assert stub.dispose_executor(executor_pb2.DisposeExecutorRequest()) is None


def test_tff_worker_runs_jit_compiled_functions_without_xla():
  """BENCHMARKS.md explains the TFF path's times by this: TFF's worker ignores
  ``jit_compile=True``. A string op, which XLA rejects, runs there, while the same
  function raises when TensorFlow compiles it eagerly. If TFF's worker gains XLA,
  this fails and the TFF rows of BENCHMARKS.md need measuring again."""
  import numpy as np
  import tensorflow as tf
  import tensorflow_federated as tff
  from tff_residual.simulation.runtime import managed_tff_runtime

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
