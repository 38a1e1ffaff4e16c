"""Several TFF workers: per-client measurements in client order, the same results
as one worker, and faults (a dead worker, a remote one that does not answer)."""

import asyncio
import collections
import functools
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_federated as tff

import tff_residual
from test_byzantine_methods import honest_and_outliers, split
from test_experiments_cli import read_metrics, start_long_run, worker_children
from tff_residual.simulation.outputs import largest_metric_difference
from test_runtime import assert_gone, process_alive
from tff_residual.runtime import ordered_merge
from tff_residual.simulation.compared_aggregators import AggregatorSettings
from tff_residual.runtime.managed import ManagedTffRuntime, WorkerLostError

NUM_CLIENTS = 7  # divisible by neither 2 nor 3 workers: blocks of 4 + 3 and 3 + 2 + 2
OUTLIER = 4
VALUE_TYPE = collections.OrderedDict(w=tff.TensorType(np.float32, [5, 6]),
                                     b=tff.TensorType(np.float32, [10]))


# ------------------------------------------------------------- the ordered merge, alone
class FakeContext:
  """An async context whose calls finish in reverse order of their argument:
  TFF's stock context would merge them last-first."""

  def __init__(self, log):
    self.log, self.busy = log, False

  async def invoke(self, comp, arg):
    assert not self.busy, "two calls at once on one context"
    self.busy = True
    try:
      if comp == "merge":
        first, second = arg
        return first + second
      await asyncio.sleep(0.01 * (10 - arg))  # the later the client block, the sooner done
      self.log.append(arg)
      return [arg]
    finally:
      self.busy = False


class FakeComp:
  up_to_merge, merge = "up_to_merge", "merge"


@pytest.mark.parametrize("num_contexts", [1, 2, 3, 7, 9])
def test_merge_in_order_follows_the_blocks_not_the_completion_order(num_contexts):
  log = []
  contexts = [FakeContext(log) for _ in range(num_contexts)]
  merged = asyncio.run(ordered_merge.merge_in_order(FakeComp(), list(range(7)), contexts))
  assert merged == list(range(7))
  if num_contexts > 1:
    assert log != sorted(log)  # they did finish out of order


def test_map_in_order_cancels_the_rest_and_raises_the_first_failure():
  started, cancelled = [], []

  async def task(arg, context):
    started.append(arg)
    if arg == 1:
      raise WorkerLostError("worker 2 of 2 exited")
    try:
      await asyncio.sleep(5)
    except asyncio.CancelledError:
      cancelled.append(arg)
      raise

  start = time.monotonic()
  with pytest.raises(WorkerLostError, match="worker 2 of 2"):
    asyncio.run(ordered_merge.map_in_order(task, [0, 1], ["a", "b"]))
  assert time.monotonic() - start < 2 and cancelled == [0]


ARG_TYPE = tff.types.StructType([tff.FederatedType(np.float32, tff.CLIENTS),
                                 tff.FederatedType(np.int32, tff.SERVER)])


def test_blocks_are_contiguous_and_sized_as_tff_sizes_them():
  assert ordered_merge.block_sizes(7, 3) == [3, 2, 2]
  assert ordered_merge.block_sizes(7, 2) == [4, 3]
  assert ordered_merge.block_sizes(2, 3) == [1, 1]
  blocks = ordered_merge.split_into_blocks([[float(i) for i in range(7)], 5], ARG_TYPE, 3)
  # A struct whose last element is at SERVER: TFF 0.87's own split gave every
  # block the first block's clients here.
  assert [list(b[0]) for b in blocks] == [[0.0, 1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
  assert [b[1] for b in blocks] == [5, 5, 5]
  assert ordered_merge.split_into_blocks([[], 5], ARG_TYPE, 3) == [[[], 5]]
  server_only = tff.FederatedType(np.int32, tff.SERVER)
  assert ordered_merge.split_into_blocks(4, server_only, 2) == [4, 4]


def test_clients_parts_of_different_lengths_are_a_clear_error():
  two_client_parts = tff.types.StructType([tff.FederatedType(np.float32, tff.CLIENTS)] * 2)
  with pytest.raises(ValueError, match=r"different numbers of clients: \[2, 3\]"):
    ordered_merge.split_into_blocks([[1.0, 2.0], [1.0, 2.0, 3.0]], two_client_parts, 2)


@pytest.mark.slow
def test_an_argument_ending_at_server_is_split_right_on_workers(workers_runtime):
  @tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS),
                             tff.FederatedType(np.float32, tff.SERVER))
  def total(x, y):
    return tff.federated_sum(x)

  assert total([1.0, 2.0, 3.0, 4.0, 5.0], 0.0) == 15.0  # TFF 0.87's own context: 12.0


# ------------------------------------------------------- every factory, on 2 and 3 workers
def method_names():
  """One name of each kind of server step: model-level weights (residual, FoolsGold, whose
  feature is one tensor), coordinatewise (median), selecting (Krum, Bulyan), iterative
  (geometric median), stateful (centered clipping), TFF's own (fedavg) and each wrapper
  (NNM and ARC in ``arc+nnm+median``, bucketing). The
  merge of partial gathers is the same code for every name (``gather``); every name's
  kernel equals the eager API in TFF elsewhere (test_aggregators, test_byzantine_methods,
  test_baselines_at_their_best)."""
  return ["fedavg", "residual", "median", "krum", "bulyan", "geometric_median",
          "centered_clipping", "foolsgold", "arc+nnm+median", "bucketing+median"]


@pytest.fixture(scope="module", params=[2, 3], ids=lambda n: f"{n}_workers")
def workers_runtime(request):
  with ManagedTffRuntime(num_workers=request.param) as runtime:
    assert len(runtime.pids) == request.param
    yield runtime


SETTINGS = AggregatorSettings(params={}, num_attackers=1, participants_per_round=NUM_CLIENTS)
"""A run's aggregator settings: no flags set, f = 1."""


def two_rounds(name):
  """The factory of ``name`` (f = 1 where it takes one), two rounds (the second
  sees the first's state) on the installed runtime: [(result, measurements)]."""
  from tff_residual.simulation import compared_aggregators as table
  x = honest_and_outliers(num_clients=NUM_CLIENTS, outliers=(OUTLIER,)).astype(np.float32)
  weights = list(np.arange(1, NUM_CLIENTS + 1, dtype=np.float32))  # the weighted rules use them
  process = table.build_factory(name, SETTINGS).create(tff.types.to_type(VALUE_TYPE),
                                                        tff.TensorType(np.float32))
  state, outputs = process.initialize(), []
  for step in range(2):
    output = process.next(state, [collections.OrderedDict(v) for v in split(x + step)], weights)
    state = output.state
    outputs.append((output.result, output.measurements))
  return outputs


@functools.lru_cache(maxsize=None)
def one_worker_rounds(name):
  """``two_rounds`` on one worker (no merge at all), once per name for both splits."""
  with ManagedTffRuntime():
    return two_rounds(name)


THREE_WORKER_NAMES = ("residual", "centered_clipping", "bucketing+median")
"""Three workers (blocks 3 + 2 + 2, two merges) with a model-level, the stateful and a
wrapped rule; two workers (one merge) with every name of ``method_names``."""


@pytest.mark.parametrize("workers_runtime,name",
                         [(2, n) for n in method_names()] + [(3, n) for n in THREE_WORKER_NAMES],
                         indirect=["workers_runtime"],
                         ids=[f"2_workers-{n}" for n in method_names()]
                         + [f"3_workers-{n}" for n in THREE_WORKER_NAMES])
@pytest.mark.slow
def test_per_client_measurements_come_back_in_client_order(workers_runtime, name):
  """An outlier at index 4 among 7 clients (blocks of 4 + 3, or 3 + 2 + 2): the
  aggregate and every measurement equal one worker's, client by client."""
  split_outputs = two_rounds(name)
  single_outputs = one_worker_rounds(name)
  for (result, measurements), (want, want_measurements) in zip(split_outputs, single_outputs):
    for key in ("w", "b"):
      np.testing.assert_allclose(result[key], want[key], rtol=1e-6, atol=1e-6)
    assert list(measurements) == list(want_measurements)
    for key, value in want_measurements.items():
      np.testing.assert_allclose(measurements[key], value, rtol=1e-6, atol=1e-6, err_msg=key)
  if "client_weights" in measurements:  # TFF's MeanFactory reports none
    client_weights = np.asarray(measurements["client_weights"])
    assert client_weights.shape == (NUM_CLIENTS,)
    if name != "foolsgold":  # FoolsGold weighs by similarity of histories, not outliers
      assert client_weights[OUTLIER] == client_weights.min()


# ------------------------------------------------------------------------ whole runs
SMOKE = ["--task=fmnist_backdoor", "--preset=smoke", "--seed=3", "--no_progress",
         "--aggregator=fedavg,residual,centered_clipping"]
"""TFF's own, the model-level and the stateful rule over rounds (Krum's selection on two
workers and in process: test_per_client_measurements_come_back_in_client_order and
test_in_process.test_in_process_equals_the_factory_in_tff)."""


@pytest.mark.usefixtures("fashion_mnist")
@pytest.mark.slow
def test_two_workers_write_the_metrics_of_one(tmp_path):
  from tff_residual import cli
  for workers in ("1", "2"):
    assert cli.main([*SMOKE, f"--workers={workers}", f"--output_dir={tmp_path / workers}"]) == 0
  assert_same_metrics(tmp_path / "1", tmp_path / "2")


def assert_same_metrics(first_dir, second_dir, tolerance=1e-6):
  """metrics.csv of two runs equal row by row, to ``tolerance``, but the timings."""
  first, second = read_metrics(str(first_dir)), read_metrics(str(second_dir))
  assert len(first) > 0
  difference, where = largest_metric_difference(first, second)
  assert difference <= tolerance, where


def test_bad_workers_flag_is_a_one_line_error():
  from tff_residual import cli
  with pytest.raises(SystemExit) as exit_info:
    cli.main([*SMOKE, "--workers=0"])
  assert exit_info.value.code == 2
  assert cli.parse_workers("localhost:8000,other:9") == (2, ["localhost:8000", "other:9"])
  with pytest.raises(ValueError, match="neither a number of workers nor host:port"):
    cli.parse_workers("localhost")


@pytest.mark.slow
def test_a_worker_killed_mid_run_stops_the_run_with_one_line_naming_it(tmp_path):
  out = tmp_path / "killed"
  proc, workers = start_long_run(out, num_workers=2)
  victim = sorted(workers)[1]
  os.kill(victim, signal.SIGKILL)
  killed_at = time.monotonic()
  try:
    _, stderr = proc.communicate(timeout=60)
  except subprocess.TimeoutExpired:
    proc.kill()
    _, stderr = proc.communicate()
    pytest.fail(f"the run did not stop within 60 s of its worker's death; stderr: {stderr[-2000:]}")
  assert time.monotonic() - killed_at < 60
  assert proc.returncode == 1, stderr[-2000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  error_lines = [line for line in stderr.splitlines() if line.startswith("run.py: error")]
  assert len(error_lines) == 1, stderr[-2000:]
  assert f"pid {victim}" in error_lines[0] and "exited with code -9" in error_lines[0]
  assert "metrics.csv" in error_lines[0]
  assert_gone(workers, "outlived the run")
  rows = read_metrics(str(out))
  assert len(rows) >= 2


def unused_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_a_remote_address_that_does_not_answer_is_a_clear_error_in_time():
  port = unused_port()
  start = time.monotonic()
  with pytest.raises(RuntimeError, match=rf"localhost:{port}\) did not answer within 2 s"):
    ManagedTffRuntime(workers=[f"localhost:{port}"], connect_timeout_s=2).start()
  assert time.monotonic() - start < 10


def test_a_worker_that_never_answers_ends_the_cli_with_one_line(tmp_path, monkeypatch, capsys):
  from tff_residual import cli
  port = unused_port()
  monkeypatch.setattr(ManagedTffRuntime, "__init__", _with_connect_timeout(2.0))
  assert cli.main([*SMOKE, f"--workers=localhost:{port}", f"--output_dir={tmp_path}"]) == 1
  error = capsys.readouterr().err.strip().splitlines()[-1]
  assert error == (f"run.py: error: TFF worker 1 of 1 (localhost:{port}) did not answer within "
                   "2 s; is `python -m tff_residual.runtime.worker --port PORT` running there and "
                   "reachable?")  # no rounds ran: no word of metrics.csv


def _with_connect_timeout(seconds):
  original = ManagedTffRuntime.__init__

  def init(self, *args, **kwargs):
    original(self, *args, **{**kwargs, "connect_timeout_s": seconds})
  return init


def test_remote_workers_run_computations_and_stop_on_sigterm():
  """Two ``python -m tff_residual.runtime.worker`` processes, used by address; SIGTERM
  stops each and its worker binary, exit code 0."""
  ports = [unused_port(), unused_port()]
  servers = [subprocess.Popen([sys.executable, "-m", "tff_residual.runtime.worker", f"--port={p}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for p in ports]
  try:
    @tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS))
    def total(x):
      return tff.federated_sum(x)

    with ManagedTffRuntime(workers=[f"localhost:{p}" for p in ports]) as runtime:
      assert runtime.pids == []  # nothing of ours to stop
      assert total([1.0, 2.0, 3.0, 4.0, 5.0]) == 15.0
      factory = tff_residual.CoordinateMedianFactory()
      process = factory.create(tff.TensorType(np.float32, [3]))
      values = [np.full(3, v, np.float32) for v in (1, 2, 50, 3, 4)]
      output = process.next(process.initialize(), values)
      np.testing.assert_allclose(output.result, [3, 3, 3])
    binaries = [worker_children(server.pid) for server in servers]
    assert all(len(b) == 1 for b in binaries), binaries
    for server in servers:
      server.send_signal(signal.SIGTERM)
    for server, binary in zip(servers, binaries):
      _, stderr = server.communicate(timeout=20)
      assert server.returncode == 0, stderr
      assert "stopped by SIGTERM" in stderr
      assert not process_alive(binary[0])
  finally:
    for server in servers:
      if server.poll() is None:
        server.kill()
        server.wait()
