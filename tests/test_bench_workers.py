"""scripts/bench_workers.py: the interleaving and the tables' arithmetic."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
import bench_workers  # noqa: E402


def test_worker_counts_alternate_which_goes_first():
  assert bench_workers.worker_order(3) == [1, 2, 2, 1, 1, 2]


def test_round_table_rates_are_one_over_the_median_round_against_one_worker():
  def cell(shared, residual, peak):
    return {"shared": shared, "next": {"fedavg": [0.1, 0.1, 0.1], "residual": residual},
            "peak": peak, "clients_per_round": 10}

  cells = {1: cell([1.0, 1.0, 3.0], [1.0, 0.5, 1.0], 600.4),  # rounds 2.0, 1.5, 4.0 -> 2.0
           2: cell([0.5, 0.5, 0.5], [1.0, 2.0, 0.5], 400.0)}  # rounds 1.5, 2.5, 1.0 -> 1.5
  lines = bench_workers.round_table([("t", cells)])
  one = [c.strip() for c in lines[2].strip("|").split("|")]
  two = [c.strip() for c in lines[3].strip("|").split("|")]
  assert one == ["t", "10", "1", "1.00 s", "0.100 s", "1.000 s", "2.00 s", "0.500", "1.00x",
                 "600 MiB"]
  assert two[6:9] == ["1.50 s", "0.667", "1.33x"]


def test_resnet_table_speedup_is_one_worker_over_n():
  cells = {1: {"next": {"fedavg": [7.0], "residual": [20.0, 22.0, 21.0]}, "peak": 9000.0},
           2: {"next": {"fedavg": [14.0], "residual": [84.0]}, "peak": 11000.0},
           "in process": {"next": {"fedavg": [1.0], "residual": [4.2]}, "peak": float("nan")}}
  lines = bench_workers.resnet_table(cells, 10)
  assert lines[3].split("|")[5].strip() == "0.25x" and "21.00 s" in lines[2]
  assert [c.strip() for c in lines[4].split("|")[2:7]] == [
      "in process", "1.00 s", "4.20 s", "5.00x", "(Python process)"]
