"""scripts/bench_execution.py: the three trainings of each round timed side by side, their
updates compared, and the table."""

import os
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")


def load_bench_execution():
  if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)  # as when it runs as a script: it imports main_job
  import bench_execution
  return bench_execution


@pytest.mark.slow
def test_every_round_is_timed_for_each_training_and_the_updates_compared(capsys):
  bench = load_bench_execution()
  assert bench.main(["--tasks=loan_backdoor", "--presets=smoke", "--warmup_rounds=1",
                     "--timed_rounds=2"]) == 0
  out = capsys.readouterr().out
  progress = [line for line in out.splitlines() if line.startswith("loan_backdoor smoke")]
  assert len(progress) == 1
  for execution in bench.VARIANTS:  # 2 timed rounds each
    assert f"{execution} [" in progress[0]
    assert progress[0].split(f"{execution} [")[1].split("]")[0].count(",") == 1
  first_round = progress[0].split("max |in_process - tff|: ")[1].split("; ")[0].split(", ")
  assert len(first_round) == 5 and all(float(d) <= 1e-5 for d in first_round)  # 5 clients
  # rounding alone: a last-bit change of the initial weights moves every client's update,
  # and a small model does not amplify it
  ulp_apart = [float(d) for d in progress[0].split("1 ulp apart: ")[1].split(", ")]
  assert len(ulp_apart) == 5 and all(0 < d < 1e-4 for d in ulp_apart), ulp_apart
  rows = [line for line in out.splitlines() if line.startswith("| loan_backdoor |")]
  assert len(rows) == 1
  cells = [c.strip() for c in rows[0].strip("|").split("|")]
  assert cells[:4] == ["loan_backdoor", "smoke", "loannet", "5"]
  tff_seconds, at_once, one_at_a_time = (float(c) for c in cells[4:7])
  assert min(tff_seconds, at_once, one_at_a_time) > 0
  # the ratio of the unrounded medians; the cells are rounded to 0.01 s
  assert float(cells[7].rstrip("x")) == pytest.approx(tff_seconds / at_once, rel=0.1)
  assert float(cells[8]) <= 1e-5
  assert float(cells[9]) == pytest.approx(max(ulp_apart), rel=0.05)


def test_bad_round_counts_are_an_error(capsys):
  bench = load_bench_execution()
  with pytest.raises(SystemExit):
    bench.main(["--timed_rounds=0"])
  assert "--timed_rounds at least 1" in capsys.readouterr().err
