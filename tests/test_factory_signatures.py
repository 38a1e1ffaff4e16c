"""Each factory's constructor: its config's fields, with their defaults, visible to
``help()`` and ``inspect``, and each one described in the factory's docstring."""

import dataclasses
import inspect
import pydoc
import re

import pytest

import tff_residual
from tff_residual.aggregators.robust_factory import RobustAggregationFactory
from tff_residual.kernels import method_table

FACTORIES = sorted(
    (name for name in dir(tff_residual) if name.endswith("Factory")
     and issubclass(getattr(tff_residual, name), RobustAggregationFactory)
     and getattr(tff_residual, name).METHOD is not None))


def test_every_method_has_an_exported_factory():
  methods = {getattr(tff_residual, name).METHOD for name in FACTORIES}
  assert methods == set(method_table.METHODS)


@pytest.mark.parametrize("name", FACTORIES)
def test_the_constructor_is_the_config(name):
  factory = getattr(tff_residual, name)
  config = method_table.METHODS[factory.METHOD].config
  parameters = inspect.signature(factory).parameters
  fields = {field.name: field for field in dataclasses.fields(config)}
  assert list(parameters) == list(fields)
  for parameter in parameters.values():
    field = fields[parameter.name]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    want = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
    assert parameter.default == want, parameter.name
  # help() shows the signature, not (**params).
  assert f"{name}(*, " in pydoc.render_doc(factory, renderer=pydoc.plaintext)


@pytest.mark.parametrize("name", FACTORIES)
def test_the_docstring_describes_every_argument(name):
  factory = getattr(tff_residual, name)
  doc = inspect.getdoc(factory)
  args = doc[doc.index("Args:"):]
  described = set(re.findall(r"^  ([a-z_]+)(?::|,)", args, flags=re.M))
  described |= set(re.findall(r"^  [a-z_]+, ([a-z_]+):", args, flags=re.M))
  missing = set(inspect.signature(factory).parameters) - described
  assert not missing, f"{name}'s docstring does not describe {sorted(missing)}"
  assert "State:" in doc, f"{name}'s docstring does not state its state"
  assert "Measurements" in doc, f"{name}'s docstring does not name its measurements"
