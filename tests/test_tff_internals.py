"""The private parts of TFF that tff_internals names: fail loudly, item by item,
on a TFF where they changed; and no other module reaches into TFF's private parts."""

import ast
import inspect
import pathlib

import numpy as np
import tensorflow_federated as tff

import tff_residual

from tff_residual.runtime import tff_internals
from tff_residual.runtime.ordered_merge import OrderedMergeableContext


def test_tff_is_the_version_the_internals_were_checked_against():
  assert tff.__version__ == tff_internals.TESTED_TFF_VERSION, (
      f"TFF {tff.__version__}: check every item of tff_residual/runtime/tff_internals.py "
      f"(written against {tff_internals.TESTED_TFF_VERSION}), then update TESTED_TFF_VERSION")


def test_results_repackage_block_by_block_in_order():
  result_type = tff.FederatedType(np.float32, tff.CLIENTS)
  assert list(tff_internals.repackage_partitioned_values([[0.0, 1.0], [2.0], [3.0]],
                                                         result_type)) == [0.0, 1.0, 2.0, 3.0]


def test_the_mergeable_context_sets_the_attributes_ordered_merge_reads():
  class Context(tff.framework.AsyncContext):
    async def invoke(self, comp, arg):
      raise AssertionError("not called")

  context = OrderedMergeableContext([Context(), Context()])
  for name in tff_internals.MERGEABLE_CONTEXT_ATTRIBUTES:
    assert hasattr(context, name), f"MergeableCompExecutionContext no longer sets {name}"
  assert context._num_subrounds == 2 and len(context._async_execution_contexts) == 2
  assert context._compiler_pipeline is not None


def _bound_names(module) -> set[str]:
  """The names a package's ``__init__.py`` binds itself (imports, definitions,
  assignments): its public API. A submodule that is only an attribute because some
  other module imported it is not among them."""
  tree = ast.parse(pathlib.Path(module.__file__).read_text())
  names = set()
  for node in tree.body:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
      names.add(node.name)
    elif isinstance(node, (ast.Assign, ast.AnnAssign)):
      targets = node.targets if isinstance(node, ast.Assign) else [node.target]
      names.update(t.id for t in targets if isinstance(t, ast.Name))
  return names


def _tff_chains(tree) -> set[tuple[str, ...]]:
  """Every maximal ``tff.a.b...`` attribute chain in a module's syntax tree."""
  chains = set()
  for node in ast.walk(tree):
    parts = []
    while isinstance(node, ast.Attribute):
      parts.append(node.attr)
      node = node.value
    if isinstance(node, ast.Name) and node.id == "tff" and parts:
      chains.add(tuple(reversed(parts)))
  return chains


PACKAGE_ROOT = pathlib.Path(tff_residual.__file__).parent
PACKAGE_MODULES = sorted(PACKAGE_ROOT.rglob("*.py"))


def test_only_tff_internals_imports_tff_private_modules():
  importers = []
  for path in PACKAGE_MODULES:
    for node in ast.walk(ast.parse(path.read_text())):
      names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
               [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      if any(name.startswith("tensorflow_federated.") for name in names):
        importers.append(path.relative_to(PACKAGE_ROOT).as_posix())
  assert sorted(set(importers)) == ["runtime/tff_internals.py"]


def test_every_tff_attribute_the_package_uses_is_exported():
  """Each ``tff.x.y`` reached from a module of TFF's public API is a name that module's
  ``__init__`` binds, so a submodule TFF does not export (``tff.types.type_transformations``)
  fails here, named."""
  private = []
  for path in PACKAGE_MODULES:
    for chain in _tff_chains(ast.parse(path.read_text())):
      owner = tff
      for depth, name in enumerate(chain):
        if not inspect.ismodule(owner):
          break
        if name not in _bound_names(owner):
          private.append(f"{path.name}: tff.{'.'.join(chain[:depth + 1])}")
          break
        owner = getattr(owner, name)
  assert private == []


def test_the_checks_above_catch_a_private_reach():
  tree = ast.parse("x = tff.types.type_transformations.transform_type_postorder\n"
                   "y = tff.types.TensorType\n")
  chains = _tff_chains(tree)
  assert ("types", "type_transformations", "transform_type_postorder") in chains
  assert "type_transformations" not in _bound_names(tff.types)
  assert "TensorType" in _bound_names(tff.types)
