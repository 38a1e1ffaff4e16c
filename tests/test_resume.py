"""--resume=DIR: a run stopped between rounds continues from its checkpoint, and its
metrics.csv and summary.json end equal to an uninterrupted run's (timings aside), in
both execution modes; the checkpoint's attack memory and aggregator state matter."""

import json
import math
import os

import numpy as np
import pytest

from test_experiments_cli import read_metrics
from test_multi_worker import assert_same_metrics
from tff_residual import cli
from tff_residual.simulation import checkpoint
from tff_residual.simulation.outputs import RunOutputs

RUN = ["--task=loan_mimic", "--preset=smoke", "--rounds=5", "--clean_baseline=true",
       "--mimic_warmup=3", "--clients_per_round=0",
       "--aggregator=fedavg,centered_clipping,foolsgold", "--no_progress"]
"""Mimic keeps its running mean, direction and target across rounds (the attack's memory;
a 3-round warm-up and every client in every round, so the stop falls inside it), centered
clipping and FoolsGold keep aggregator state, and the clean twin has its own model and state."""
STOP_AFTER_ROWS = 7
"""The stop comes while centered clipping (rows 6-10) is in its second round; the 7th row
is written before the stop and is not in the checkpoint, so the resume drops and reruns it."""
SUMMARY_TIMINGS = {"wall_seconds", "mean_aggregation_seconds", "mean_round_seconds"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  out = tmp_path_factory.mktemp("uninterrupted") / "run"
  assert cli.main([*RUN, f"--output_dir={out}"]) == 0
  return out


def stop_after(monkeypatch, rows: int):
  """The next run stops (as at Ctrl-C) right after writing its ``rows``-th metrics row."""
  real = RunOutputs.add_round
  written = []

  def add_round(self, row):
    real(self, row)
    written.append(row)
    if len(written) == rows:
      raise KeyboardInterrupt

  monkeypatch.setattr(RunOutputs, "add_round", add_round)


def assert_same_run(first, second, tolerance=0.0):
  """metrics.csv (``assert_same_metrics``) and summary.json equal, timings aside."""
  assert len(read_metrics(str(first))) == 15
  assert_same_metrics(first, second, tolerance)
  with open(os.path.join(first, "summary.json")) as f:
    summary_a = json.load(f)
  with open(os.path.join(second, "summary.json")) as f:
    summary_b = json.load(f)
  assert {k: v for k, v in summary_a.items() if k != "results"} == {
      k: v for k, v in summary_b.items() if k != "results"}
  for name, result in summary_a["results"].items():
    for key, value in result.items():
      if key in SUMMARY_TIMINGS:
        continue
      other = summary_b["results"][name][key]
      if isinstance(value, float) and tolerance:
        assert other == pytest.approx(value, abs=tolerance, nan_ok=True), (name, key)
      else:
        assert other == value, (name, key)


@pytest.mark.slow
@pytest.mark.parametrize("execution", ["tff", "in_process"])
def test_a_stopped_run_resumes_to_the_uninterrupted_run(uninterrupted, tmp_path, monkeypatch,
                                                        capsys, execution):
  out = tmp_path / "stopped"
  with monkeypatch.context() as patch:
    stop_after(patch, STOP_AFTER_ROWS)
    assert cli.main([*RUN, f"--execution={execution}", f"--output_dir={out}"]) == 130
  assert f"continue with --resume={out}" in capsys.readouterr().err
  assert len(read_metrics(str(out))) == STOP_AFTER_ROWS
  saved = checkpoint.load_meta(str(out))
  assert [r["aggregator"] for r in saved["finished"]] == ["fedavg"]
  assert (saved["aggregator"], len(saved["rows"])) == ("centered_clipping", STOP_AFTER_ROWS - 1)
  assert json.loads((out / "config.json").read_text())["runs_on"] == {
      "execution": execution, "aggregation": execution}
  if execution == "in_process":  # the resume continues in process: no TFF worker starts
    from tff_residual.runtime import managed

    def no_worker(**options):
      raise AssertionError("the resume of an in-process run started a TFF runtime")
    monkeypatch.setattr(managed, "managed_tff_runtime", no_worker)
  assert cli.main(["--resume", str(out), "--no_progress"]) == 0
  said = capsys.readouterr().out
  assert "1 of 3 aggregators done, centered_clipping after round 1" in said
  assert not os.path.exists(out / checkpoint.FILE)  # the finished run keeps no checkpoint
  # In process, training sums may differ from TFF's worker in the last bits (1e-5:
  # tests/test_in_process_execution.py).
  assert_same_run(uninterrupted, out, tolerance=0.0 if execution == "tff" else 1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("forget", ["attack_memory", "aggregator_state"])
def test_a_resume_without_the_saved_memory_would_differ(uninterrupted, tmp_path, monkeypatch,
                                                        forget):
  """What the checkpoint keeps is needed: dropping Mimic's memory, or restarting the
  aggregators' state, changes the resumed run (so the test above can fail)."""
  out = tmp_path / "stopped"
  with monkeypatch.context() as patch:
    stop_after(patch, STOP_AFTER_ROWS)
    assert cli.main([*RUN, f"--output_dir={out}"]) == 130
  if forget == "attack_memory":
    monkeypatch.setattr(checkpoint, "restore_attack_memory", lambda poisoning, memory: None)
  else:
    real_load = checkpoint.load

    def load_with_fresh_state(directory, initial_state):
      progress = real_load(directory, initial_state)
      progress.attacked.state = initial_state
      return progress

    monkeypatch.setattr(checkpoint, "load", load_with_fresh_state)
  assert cli.main(["--resume", str(out), "--no_progress"]) == 0
  with pytest.raises(AssertionError):
    assert_same_run(uninterrupted, out)


def test_the_checkpoint_round_trips_state_weights_and_memory(tmp_path):
  import collections
  state = collections.OrderedDict(center=[np.arange(3, dtype=np.float32)],
                                  has_center=np.bool_(True), count=np.int64(4))
  track = checkpoint.Track(state, [np.ones((2, 2), np.float32), np.zeros(3, np.float64)],
                                [0.25, np.float32(0.5)], [float("nan")], [(1.0, 0.5)])
  progress = checkpoint.Progress(
      finished=[{"aggregator": "fedavg", "final_accuracy": 0.5, "detection_auc": float("nan")}],
      rows=[{"aggregator": "fedavg", "round": 0, "accuracy": np.float32(0.125)}],
      aggregator="centered_clipping", attacked=track, clean=None,
      attack_memory={"rounds_seen": 2, "mean": np.full(3, 0.5)}, wall_seconds=1.5)
  checkpoint.save(str(tmp_path), progress)
  template = collections.OrderedDict(center=[np.zeros(3, np.float32)], has_center=np.bool_(False),
                                     count=np.int64(0))
  loaded = checkpoint.load(str(tmp_path), template)
  assert loaded.aggregator == "centered_clipping" and len(loaded.rows_of("fedavg")) == 1
  assert loaded.clean is None and loaded.wall_seconds == 1.5
  np.testing.assert_array_equal(loaded.attacked.state["center"][0], [0, 1, 2])
  assert bool(loaded.attacked.state["has_center"]) and int(loaded.attacked.state["count"]) == 4
  assert [w.dtype for w in loaded.attacked.weights] == [np.float32, np.float64]
  assert loaded.attacked.shares == [0.25, 0.5] and math.isnan(loaded.attacked.aucs[0])
  assert loaded.attacked.clip_factors == [(1.0, 0.5)]
  assert loaded.rows[0]["accuracy"] == 0.125 and math.isnan(loaded.finished[0]["detection_auc"])
  np.testing.assert_array_equal(loaded.attack_memory["mean"], [0.5, 0.5, 0.5])
  assert sorted(os.listdir(tmp_path)) == [checkpoint.FILE]  # no temporary file left
  with pytest.raises(ValueError, match="holds 3 aggregator state tensors; the aggregator's "
                                       "state has 1"):
    checkpoint.load(str(tmp_path), [np.zeros(1)])


@pytest.mark.parametrize("args,message", [
    (["--resume={tmp}/nothing"], "no run to continue there (no config.json)"),
    (["--resume={tmp}/run", "--rounds=3"], "takes the run's settings from"),
    (["--resume={tmp}/run", "--task=loan_none"], "drop --task"),
])
def test_resume_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
  (tmp_path / "run").mkdir()
  args = [a.replace("{tmp}", str(tmp_path)) for a in args]
  assert cli.main(args) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("run.py: error: --resume") and message in err[0], err


@pytest.mark.slow
def test_a_resume_elsewhere_than_the_run_ran_is_refused(tmp_path, monkeypatch, capsys):
  """A run stopped in process is not silently continued on TFF's worker (nor the reverse):
  the rounds would change execution in the middle of the run."""
  out = tmp_path / "stopped"
  with monkeypatch.context() as patch:
    stop_after(patch, 2)
    assert cli.main([*RUN, "--execution=in_process", f"--output_dir={out}"]) == 130
  capsys.readouterr()
  for flags in (["--execution=tff"], ["--execution=tff", "--aggregation=in_process"]):
    assert cli.main(["--resume", str(out), *flags, "--no_progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"run.py: error: --resume={out}: the stopped run ran with "
                   "--execution=in_process --aggregation=in_process (its config.json); a "
                   "resume continues it there: drop --execution and --aggregation"], err
  assert cli.main(["--resume", str(out), "--execution=in_process", "--no_progress"]) == 0


@pytest.mark.slow
def test_resume_refuses_a_finished_run_and_changed_data(uninterrupted, tmp_path, capsys):
  assert cli.main(["--resume", str(uninterrupted), "--no_progress"]) == 2
  assert "that run has finished (summary.json); nothing to continue" in capsys.readouterr().err
  changed = tmp_path / "changed"
  changed.mkdir()
  config = json.loads((uninterrupted / "config.json").read_text())
  config["client_train_examples"][0] += 1  # as if the data file had changed
  (changed / "config.json").write_text(json.dumps(config))
  assert cli.main(["--resume", str(changed), "--no_progress"]) == 2
  err = capsys.readouterr().err
  assert "this run's client_train_examples differ(s) from the stopped run's config.json" in err
