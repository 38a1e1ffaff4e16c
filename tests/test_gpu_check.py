"""scripts/gpu_check.py: its no-GPU exit, and its table with a stand-in device."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
import gpu_check  # noqa: E402

import tff_residual  # noqa: E402
from tff_residual.kernels import method_table  # noqa: E402


def test_without_a_gpu_it_says_so_and_exits_0(capsys, monkeypatch):
  real = tf.config.list_logical_devices
  monkeypatch.setattr(tf.config, "list_logical_devices",
                      lambda kind=None: [] if kind == "GPU" else real(kind))
  assert gpu_check.main(["--size=100"]) == 0
  assert "no GPU found" in capsys.readouterr().out


def test_run_on_returns_the_eager_api_result():
  x = gpu_check.client_values(10, 50, seed=1)
  kernel = method_table.build_kernel("residual")
  aggregate, weights, seconds = gpu_check.run_on("/CPU:0", kernel, x, repeats=2)
  want, info = tff_residual.aggregate(list(x), "residual")
  np.testing.assert_allclose(aggregate, want, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(weights, info["client_weights"], rtol=1e-6, atol=1e-6)
  assert seconds > 0 and weights[-1] < 0.01  # the shifted client weighs ~nothing


def test_max_difference_is_relative_above_one_absolute_below():
  assert gpu_check.max_difference([1.0, 200.0], [1.0, 100.0]) == 1.0
  assert abs(gpu_check.max_difference([0.5], [0.25]) - 0.25) < 1e-12


@pytest.mark.slow
def test_the_table_with_the_cpu_standing_in_for_a_gpu(capsys, monkeypatch):
  """Every kernel runs twice on the CPU: the table covers every method, all agree."""
  real = tf.config.list_logical_devices
  monkeypatch.setattr(tf.config, "list_logical_devices",
                      lambda kind=None: real("CPU") if kind == "GPU" else real(kind))
  assert gpu_check.main(["--size=2000", "--repeats=1", "--rounds=0"]) == 0
  rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
  names = [row.split("|")[1].strip() for row in rows[1:]]
  assert names == gpu_check.kernel_names() and len(names) >= 15
  assert all(row.rstrip().endswith("| yes |") for row in rows[1:])


@pytest.mark.slow
def test_rounds_in_process_on_the_stand_in_device_agree(capsys, monkeypatch):
  """The rounds' table: two in-process runs of a task, one per device, compared."""
  real = tf.config.list_logical_devices
  monkeypatch.setattr(tf.config, "list_logical_devices",
                      lambda kind=None: real("CPU") if kind == "GPU" else real(kind))
  assert gpu_check.main(["--kernels=median", "--size=100", "--repeats=1", "--task=loan_backdoor",
                         "--rounds=2"]) == 0
  out = capsys.readouterr().out
  assert "2 rounds of loan_backdoor" in out
  row = [line for line in out.splitlines() if line.startswith("| loan_backdoor |")]
  assert len(row) == 1 and row[0].rstrip().endswith("| 0.0e+00 | yes |"), row



def test_a_disagreement_exits_1_naming_the_kernel(capsys, monkeypatch):
  real = tf.config.list_logical_devices
  monkeypatch.setattr(tf.config, "list_logical_devices",
                      lambda kind=None: real("CPU") if kind == "GPU" else real(kind))

  def run_on(device, kernel, x, repeats):  # the "GPU" is off by 1e-3
    shift = 0.0 if device == "/CPU:0" else 1e-3
    return np.ones(3) + shift, np.full(3, 1 / 3), 0.01

  monkeypatch.setattr(gpu_check, "run_on", run_on)
  assert gpu_check.main(["--size=10", "--kernels=median", "--rounds=0"]) == 1
  captured = capsys.readouterr()
  assert "| median |" in captured.out and "| NO |" in captured.out
  assert "disagree beyond 1e-05 (kernels) or 0.001 (rounds) for ['median']" in captured.err
