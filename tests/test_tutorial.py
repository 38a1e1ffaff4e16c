"""docs/tutorial.ipynb: committed without outputs, and it runs top to bottom (nbclient, the
kernel of this venv), drawing its figures and printing a finite final accuracy for every
aggregator."""

from __future__ import annotations

import math
import pathlib
import re
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
AGGREGATORS = ("fedavg_no_attack", "fedavg", "residual", "candidate")


def test_the_committed_notebook_has_no_outputs():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  code = [cell for cell in notebook.cells if cell.cell_type == "code"]
  assert len(code) >= 8
  assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_the_notebook_uses_public_modules_only():
  """No import from a private module (a name starting with an underscore)."""
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
  imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, flags=re.MULTILINE)
  assert "tff_residual" in imports
  assert not [name for name in imports if any(part.startswith("_") for part in name.split("."))]
  assert "managed_tff_runtime()" in source


@pytest.mark.slow
def test_the_notebook_runs_and_draws_its_figures(tmp_path):
  copy = tmp_path / NOTEBOOK.name
  shutil.copy(NOTEBOOK, copy)
  notebook = nbformat.read(copy, as_version=4)
  NotebookClient(notebook, timeout=900, kernel_name="python3",
                 resources={"metadata": {"path": str(tmp_path)}}).execute()
  outputs = [output for cell in notebook.cells if cell.cell_type == "code"
             for output in cell.outputs]
  assert not [output for output in outputs if output.output_type == "error"]
  figures = [output for output in outputs if "image/png" in output.get("data", {})]
  assert len(figures) == 2  # the curves per round, the last round's weights
  printed = "".join(output.get("text", "") for output in outputs
                    if output.output_type == "stream")
  final = dict(re.findall(r"^final (\w+): accuracy ([-\w.]+)%", printed, flags=re.MULTILINE))
  assert sorted(final) == sorted(AGGREGATORS)
  for name, accuracy in final.items():
    assert math.isfinite(float(accuracy)) and 0.0 <= float(accuracy) <= 100.0, (name, accuracy)
  assert "clipped + residual after 2 rounds: accuracy" in printed
