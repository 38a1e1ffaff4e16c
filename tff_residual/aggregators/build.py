"""``build_factory(name, **params)``: the TFF factory of any name of the one name
table (``tff_residual.kernels.method_table``), e.g. ``build_factory("krum",
num_byzantine=2)``, ``build_factory("arc+nnm+trimmed_mean", num_byzantine=2)``,
``build_factory("fedavg")`` (TFF's ``MeanFactory``). The CLI, the experiments and
the scripts build every factory here."""

from __future__ import annotations

import importlib

from tff_residual.kernels import method_table


def factory_class(path: str):
  """The attribute "module:attribute" names (``method_table.Method.factory``)."""
  module, attribute = path.split(":")
  return getattr(importlib.import_module(module), attribute)


def factory_for(resolved: method_table.Resolved):
  """The factory of a resolved name: its row's factory with its parameters, a
  wrapper's around the factory of its inner name."""
  make = factory_class(resolved.factory)
  params = dict(resolved.params)
  if resolved.inner is not None:
    return make(factory_for(resolved.inner), **params)
  return make(**params)


def build_factory(name: str, **params):
  """The TFF aggregation factory of ``name`` with ``params`` (validated by
  ``method_table.resolve``: ValueError for an unknown name, TypeError for an unknown
  parameter)."""
  return factory_for(method_table.resolve(name, **params))
