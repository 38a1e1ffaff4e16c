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


@pytest.mark.slow
def test_a_small_table():
  out = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bench_memory.py"), "--clients",
                        "3", "--size", "1000", "--rows", "MeanFactory,gather_sum", "--calls", "1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = [line for line in out.stdout.splitlines() if line.startswith("| 3 |")]
  assert [r.split("|")[3].strip() for r in rows] == ["MeanFactory", "gather_sum"]
  assert rows[0].rstrip().endswith("| +0.0 |")
  assert all(float(r.split("|")[6]) >= 0 for r in rows)   # totals in MB
