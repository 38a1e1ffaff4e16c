"""Every kernel module's docstring example runs and prints what it says (the
examples are hand-checked against the formulas above them)."""

import doctest
import importlib

import pytest

KERNEL_MODULES = ("mean", "coordinate_median", "trimmed_mean", "repeated_median", "krum",
                  "geometric_median", "centered_clipping", "bulyan", "nnm", "arc", "bucketing",
                  "foolsgold", "residual.reweighting")


@pytest.mark.parametrize("name", KERNEL_MODULES)
def test_the_module_example_runs(name):
  module = importlib.import_module(f"tff_residual.kernels.{name}")
  result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
  assert result.attempted >= 4, f"{name} has no example"
  assert result.failed == 0


def test_every_method_module_has_an_example():
  from tff_residual.kernels import method_table
  modules = {method.kernel.__module__.removeprefix("tff_residual.kernels.")
             for method in method_table.METHODS.values()}
  assert modules <= set(KERNEL_MODULES), sorted(modules - set(KERNEL_MODULES))
