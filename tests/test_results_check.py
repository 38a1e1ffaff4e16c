"""``scripts/results.py --check``: every archived table in results/ is rebuilt from its
summaries and equals the committed README.md; a changed number is caught and named."""

import json
import os
import shutil

from test_experiments_cli import load_results_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_archived_table_rebuilds_from_its_summaries(capsys, monkeypatch):
  monkeypatch.chdir(ROOT)
  results = load_results_script()
  assert results.main(["--check"]) == 0, capsys.readouterr().out
  out = capsys.readouterr().out
  archived = sum(os.path.exists(os.path.join(ROOT, "results", d, "README.md"))
                 for d in os.listdir(os.path.join(ROOT, "results"))
                 if d in results.EXPERIMENTS)   # not the grids' and calibration's READMEs
  assert archived >= 17
  assert f"--check: {archived} archived experiment(s) in results/ rebuilt" in out


def test_check_names_a_table_whose_number_changed(tmp_path, capsys):
  results = load_results_script()
  name = "table3_mnist_backdoor"
  shutil.copytree(os.path.join(ROOT, "results", name), tmp_path / name)
  summary = tmp_path / name / "naive_backdoor" / "seed1" / "summary.json"
  data = json.loads(summary.read_text())
  data["results"]["residual"]["window_accuracy"] += 0.01   # one seed, one point
  summary.write_text(json.dumps(data))
  assert results.main(["--check", str(tmp_path), "--only", name]) == 1
  out = capsys.readouterr().out
  assert "1 differ: table3_mnist_backdoor" in out
  # the residual row's naive-backdoor mean moves by a third of a point: 79.06 -> 79.39
  assert "-| residual | 79.06 ± 2.51" in out and "+| residual | 79.39" in out
  # a run missing from the archive is named under the rebuilt table
  os.remove(tmp_path / name / "model_replacement" / "seed2" / "summary.json")
  assert results.main(["--check", str(tmp_path), "--only", name]) == 1
  assert "+Not run yet (their cells average the other seeds): model replacement seed 2." in (
      capsys.readouterr().out)


def test_check_catches_a_changed_number_in_results_md_matrix(tmp_path, capsys, monkeypatch):
  """RESULTS.md's matrix is --matrix's output: a hand-edited cell fails --check; the
  Fashion-MNIST backdoor row is the archived mean ± sd (ddof 1) of residual's excess."""
  monkeypatch.chdir(ROOT)
  results = load_results_script()
  rebuilt = results.matrix("results")
  assert ("| naive backdoor, 1 of 10 | Fashion-MNIST | residual: +0.13 ± 0.52 (drop -2.26) | "
          "+0.13 ± 0.52 (drop -2.26) | +95.39 ± 2.02 (drop +1.06) |") in rebuilt
  text = open(os.path.join(ROOT, "RESULTS.md")).read()
  changed = tmp_path / "RESULTS.md"
  changed.write_text(text.replace("+0.13 ± 0.52 (drop -2.26)", "+0.12 ± 0.52 (drop -2.26)", 1))
  assert results.check_matrix("results", str(changed)) is False
  assert "+| naive backdoor, 1 of 10 | Fashion-MNIST | residual: +0.13" in capsys.readouterr().out
  assert results.check_matrix("results") is True
