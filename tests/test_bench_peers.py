"""scripts/bench_peers.py: our API and kernel columns, the peers' cells, the speed-up
against the fastest peer and the target, and a failed peer as a row, not a crash.

The real peers need torch (never a project dependency): a stand-in peer Python
here answers as the peer script does, from the same input file."""

import os
import stat
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")

FAKE_PEER = """#!{python}
# Called as: python -c PEER_SCRIPT library path f repeats rule authors_code
import json, sys
import numpy as np
library, path, rule = sys.argv[3], sys.argv[4], sys.argv[7]
if library == "ByzPy":
    sys.exit("ByzPy is broken here on purpose")
x = np.load(path)
seconds = {{"ByzFL": 2.0, "authors": 50.0}}[library]
result = np.median(x, axis=0) if rule == "median" else np.zeros(x.shape[1])
print("a line of peer chatter")
print(json.dumps({{"torch": "fake", "threads": 1, "seconds": seconds,
                  "result": result[:8].tolist()}}))
"""


def load_bench_peers():
  if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)
  import bench_peers
  return bench_peers


def rows_of(out):
  header = next(line for line in out.splitlines() if line.startswith("| N |"))
  names = [c.strip() for c in header.strip("|").split("|")]
  return [dict(zip(names, (c.strip() for c in line.strip("|").split("|"))))
          for line in out.splitlines() if line.startswith("| 3000 |")]


def test_our_columns_alone(capsys):
  bench = load_bench_peers()
  bench.main(["--peer_python=none", "--sizes=3000", "--clients=7", "--passes=1",
              "--repeats=1", "--rules=residual,centered_clipping,bulyan"])
  capsys_out = capsys.readouterr().out
  rows = rows_of(capsys_out)
  assert [r["rule"] for r in rows] == ["residual", "centered_clipping", "bulyan"]
  for row in rows:
    assert row["K"] == "7" and row["f"] == "1"
    api, kernel = float(row["ours API s"]), float(row["ours kernel s"])
    assert api > 0 and kernel > 0
    low, high = (api - 5e-5) / (kernel + 5e-5), (api + 5e-5) / max(kernel - 5e-5, 1e-9)
    assert low - 0.005 <= float(row["API / kernel"]) <= high + 0.005  # cells rounded to 0.1 ms
    assert row["same result"] == "yes"     # the API computes what the kernel computes
    assert row["ByzFL s"] == row["ByzPy s"] == row["authors s"] == "-"
    assert row["fastest peer / API"] == row["target"] == "-"
    floor = float(row["floor s"])
    assert floor > 0
    # API s is rounded to 0.1 ms, floor s to 3 significant digits, their ratio to 0.1
    low = (api - 5e-5) / (floor * (1 + 5e-3))
    high = (api + 5e-5) / (floor * (1 - 5e-3))
    assert low - 0.05 <= float(row["API / floor"]) <= high + 0.05
  assert "One simple operation per float (the floor's compute unit): K 7: " in capsys_out


@pytest.mark.parametrize("name,k,f,expected", [
    # 3 wires: Batcher's network keeps (0, 1), (0, 2), (1, 2); the median needs all 3
    # comparators (2 operations each) and the 2 adds of the even-K mean (none here).
    ("median", 3, 0, (1, 3 * 2 + 2)),
    ("residual", 10, 1, (1, 100)),
    ("krum", 10, 1, (1, 110)),               # K (K + 1) / 2 multiply-adds, 2 operations
    ("multi_krum", 10, 1, (2, 120)),
    ("arc", 30, 6, (2, 60)),
    ("geometric_median", 10, 1, (6, 60)),    # 3 Weiszfeld iterations
    ("centered_clipping", 10, 1, (2, 20)),
])
def test_floor_counts_by_hand(name, k, f, expected):
  assert load_bench_peers().floor_operations(name, k, f) == expected


def test_floor_is_the_larger_of_memory_and_compute():
  bench = load_bench_peers()
  # residual, K = 10: 1 pass of 2 ms, or 100 operations x 1e6 x 50 ps = 5 ms
  assert bench.floor_seconds("residual", 10, 1, 10**6, 0.002, 50e-12) == pytest.approx(0.005)
  # the mean, K = 10: 10 x 1e6 x 50 ps = 0.5 ms of operations, under the 2 ms pass
  assert bench.floor_seconds("bucketing", 10, 1, 10**6, 0.002, 50e-12) == pytest.approx(0.002)


def test_peer_cells_speedups_targets_and_a_failed_peer(tmp_path, capsys):
  bench = load_bench_peers()
  peer = tmp_path / "peer_python"
  peer.write_text(FAKE_PEER.format(python=sys.executable))
  peer.chmod(peer.stat().st_mode | stat.S_IEXEC)
  authors = tmp_path / "averaging.py"
  authors.write_text("# the authors' code: never read by the stand-in\n")
  bench.main([f"--peer_python={peer}", f"--authors_code={authors}", "--sizes=3000",
              "--clients=10", "--passes=2", "--repeats=1", "--rules=residual,median,bulyan"])
  out = capsys.readouterr().out
  residual, median, bulyan = rows_of(out)
  # residual: only the authors' code has it
  assert residual["authors s"] == "50.0000" and residual["ByzFL s"] == "-"
  api = float(residual["ours API s"])      # rounded to 0.1 ms: allow for it
  speedup = 50.0 / api
  assert float(residual["fastest peer / API"]) == pytest.approx(speedup, rel=0.01 + 5e-5 / api)
  assert residual["target"] == (">= 25: met" if speedup >= 25 else ">= 25: NOT met")
  assert residual["same result"] == "yes, authors: no"   # the stand-in answers zeros
  # median: ByzFL answers (the true median), ByzPy fails: its cell says so, the row stays
  assert median["ByzFL s"] == "2.0000"
  assert median["ByzPy s"].startswith("failed (ByzPy is broken here on purpose")
  assert median["same result"] == "yes, ByzFL: yes"
  api = float(median["ours API s"])
  assert float(median["fastest peer / API"]) == pytest.approx(2.0 / api, rel=0.01 + 5e-5 / api)
  assert median["target"].startswith(">= 2: ")
  assert bulyan["ByzFL s"] == bulyan["ByzPy s"] == bulyan["authors s"] == "-"
  assert "Peers on torch fake with 1 threads" in out


def test_bad_arguments_are_named(tmp_path, capsys):
  bench = load_bench_peers()
  with pytest.raises(SystemExit) as exit_info:
    bench.main(["--peer_python=none", "--rules=median,zeno"])
  assert exit_info.value.code == 2
  assert "unknown rule(s) ['zeno']" in capsys.readouterr().err
  missing = tmp_path / "missing.py"
  with pytest.raises(SystemExit) as exit_info:
    bench.main(["--peer_python=none", f"--authors_code={missing}"])
  assert exit_info.value.code == 2
  assert f"--authors_code '{missing}' is not a file" in capsys.readouterr().err
