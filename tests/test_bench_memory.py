"""scripts/bench_memory.py: every way of gathering computes the same sum of the client
vectors it measures, and a small table runs end to end."""

import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
sys.path.insert(0, SCRIPTS)
import bench_memory  # noqa: E402


@pytest.mark.parametrize("row", ["federated_sum", "aggregate_concat", "gather_sum"])
def test_each_gathering_row_sums_the_clients(tff_runtime, row):
  values = [np.arange(5, dtype=np.float32) * (i + 1) for i in range(3)]
  result = bench_memory._computation(row, 5)(values)
  np.testing.assert_allclose(result, np.sum(values, axis=0))


@pytest.mark.parametrize("row", ["MeanFactory", "factory:mean"])
def test_each_factory_row_is_the_mean(tff_runtime, row):
  values = [np.arange(5, dtype=np.float32) * (i + 1) for i in range(3)]
  np.testing.assert_allclose(bench_memory._computation(row, 5)(values),
                             np.mean(values, axis=0), rtol=1e-6)


@pytest.mark.parametrize("row", ["MeanFactory", "factory:mean"])
def test_a_structured_value_as_a_model_aggregator_gets_it(tff_runtime, row, monkeypatch):
  """--size resnet18 sends each client's 62 tensors as a structure; here two small ones."""
  monkeypatch.setattr(bench_memory, "shapes_of", lambda size: [3, 2])
  values = bench_memory.client_values(3, "resnet18")
  assert [[v.shape for v in value] for value in values] == [[(3,), (2,)]] * 3
  result = bench_memory._computation(row, "resnet18")(values)
  for position in range(2):
    np.testing.assert_allclose(result[position], np.mean([v[position] for v in values], 0),
                               rtol=1e-6)


def test_resnet18_is_its_62_tensors_and_refuses_one_vector_rows():
  shapes = bench_memory.shapes_of("resnet18")
  assert len(shapes) == 62 and sum(shapes) > 11_000_000
  with pytest.raises(ValueError, match="gather_sum takes one vector per client"):
    bench_memory._computation("gather_sum", "resnet18")


@pytest.mark.slow
def test_a_small_table():
  out = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bench_memory.py"), "--clients",
                        "3", "--size", "1000", "--rows", "MeanFactory,gather_sum", "--calls", "1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = [line for line in out.stdout.splitlines() if line.startswith("| 3 |")]
  assert [r.split("|")[3].strip() for r in rows] == ["MeanFactory", "gather_sum"]
  assert rows[0].split("|")[7].strip() == "+0.0"
  assert all(float(r.split("|")[6]) >= 0 for r in rows)   # totals in MB
  assert all(float(r.split("|")[8]) > 0 for r in rows)    # seconds per call
  # absolute: both processes from their start, at least TF's own import (> 0.2 GB)
  assert all(float(r.split("|")[9]) > 0.2 for r in rows)


def test_a_row_that_fails_is_a_row_that_says_why(capsys, monkeypatch):
  """A worker killed for memory ends its row with the reason; the table goes on."""
  import types

  def fake_run(command, **kwargs):
    row = command[command.index("--row") + 1]
    if row == "factory:residual":
      return types.SimpleNamespace(returncode=1, stdout="", stderr=(
          "Traceback ...\ntff_residual.runtime.managed.WorkerLostError: TFF worker 1 of 1 "
          "(pid 7, localhost:1) exited with code -9 during the run\n"))
    return types.SimpleNamespace(returncode=0, stderr="", stdout=(
        '{"python": 10.0, "worker": 20.0, "seconds": 0.5, "absolute": 3072.0}\n'))

  monkeypatch.setattr(bench_memory.subprocess, "run", fake_run)
  assert bench_memory.main(["--clients", "2", "--size", "1000",
                            "--rows", "MeanFactory,factory:residual,factory:median"]) == 0
  rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 2 |")]
  assert rows[0].startswith("| 2 | 0 | MeanFactory | 10 | 20 | 30 | +0.0 | 0.500 | 3.0 |")
  assert rows[1].startswith("| 2 | 0 | factory:residual | failed: tff_residual.runtime.managed."
                            "WorkerLostError: TFF worker 1 of 1 (pid 7, localhost:1) exited "
                            "with code -9")
  assert rows[2].startswith("| 2 | 0 | factory:median | 10 | 20 | 30 | +0.0 | 0.500 | 3.0 |")


@pytest.mark.parametrize("row", ["federated_sum", "MeanFactory", "factory:median"])
def test_values_made_in_the_worker_are_the_seeded_ones(tff_runtime, row, monkeypatch):
  """--values worker: client k's value is make_client_value(k) computed in TFF's worker;
  the rows then compute their rule over exactly those values (here two small tensors)."""
  monkeypatch.setattr(bench_memory, "shapes_of", lambda size: [3, 2])
  expected = [[np.asarray(v) for v in bench_memory.make_client_value(k, "resnet18")]
              for k in range(3)]
  assert np.std(expected[0][0]) > 0 and not np.allclose(expected[0][0], expected[1][0])
  result = bench_memory._computation(row, "resnet18", "worker")([np.int32(k) for k in range(3)])
  rule = {"federated_sum": np.sum, "MeanFactory": np.mean, "factory:median": np.median}[row]
  for position in range(2):
    np.testing.assert_allclose(result[position], rule([v[position] for v in expected], 0),
                               rtol=1e-6)


def test_values_at_is_checked():
  with pytest.raises(ValueError, match="values_at must be one of"):
    bench_memory._computation("MeanFactory", 5, "disk")
