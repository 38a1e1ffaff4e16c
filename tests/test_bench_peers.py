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
  rows = rows_of(capsys.readouterr().out)
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
