"""TFF's mergeable execution context, with partial results merged in client order.

``tff.backends.native.create_mergeable_comp_execution_context`` splits a
round's clients into contiguous blocks, one subround per block (block i holds
clients ``[start_i, start_i + n_i)``, ``n_i = ceil(remaining / subrounds left)``),
runs ``up_to_merge`` of each block on one of its async contexts, and folds the
partial results with ``merge`` **in the order the subrounds finish**. A merge
that concatenates (our ``gather``: client values stacked for a robust rule) then
returns the clients in completion order, and every per-client measurement
(``client_weights``, Krum scores, ...) is attributed to the wrong client: with 9
clients on 2 workers, an outlier at index 6 came back at index 1.

``OrderedMergeableContext`` is that context with one change: it waits for every
subround's ``up_to_merge`` and merges them left to right in subround order,
``merge(merge(p_0, p_1), p_2) ...``; ``after_merge`` results are reassembled in
subround order too. Each worker folds its own block client by client, in order
(``accumulate`` only), so the merged accumulator holds the clients in their
global order whatever the split and whichever worker finishes first. The
subrounds still run in parallel, one per context at a time; only the merges
wait (they are cheap: concatenations of accumulators).

The module uses private parts of TFF 0.87's mergeable context (its argument
partitioning and result repackaging), pinned by ``tests/test_multi_worker.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from tensorflow_federated.python.common_libs import structure
from tensorflow_federated.python.core.backends.native import mergeable_comp_compiler
from tensorflow_federated.python.core.impl.computation import computation_base
from tensorflow_federated.python.core.impl.execution_contexts import (
    mergeable_comp_execution_context as tff_mergeable)
from tensorflow_federated.python.core.impl.types import computation_types
from tensorflow_federated.python.core.impl.types import type_analysis
from tensorflow_federated.python.core.impl.types import type_conversions


async def map_in_order(task: Callable[[object, object], Awaitable], args: Sequence,
                       contexts: Sequence) -> list:
  """``[await task(args[i], contexts[i % C])]`` in argument order: each context
  runs its arguments one after another, the contexts in parallel. If one task
  fails, the others are cancelled and its exception is raised."""

  async def run_on(slot: int):
    return [(i, await task(args[i], contexts[slot])) for i in range(slot, len(args), len(contexts))]

  tasks = [asyncio.ensure_future(run_on(slot)) for slot in range(min(len(contexts), len(args)))]
  try:
    done = await asyncio.gather(*tasks)
  except BaseException:
    for pending in tasks:
      pending.cancel()
    raise
  results = [None] * len(args)
  for pairs in done:
    for i, result in pairs:
      results[i] = result
  return results


async def merge_in_order(comp: tff_mergeable.MergeableCompForm, args: Sequence,
                         contexts: Sequence):
  """``up_to_merge`` of every subround, folded by ``merge`` left to right."""
  partials = await map_in_order(lambda arg, context: context.invoke(comp.up_to_merge, arg),
                                args, contexts)
  merged = partials[0]
  for partial in partials[1:]:
    merged = await contexts[0].invoke(comp.merge, structure.Struct.unnamed(merged, partial))
  return merged


async def _after_merge(comp, arg, merged, context):
  return await context.invoke(comp.after_merge,
                              merged if arg is None else structure.Struct.unnamed(arg, merged))


async def invoke_in_order(comp: tff_mergeable.MergeableCompForm, arg, contexts: Sequence):
  """The whole mergeable computation; ``arg`` as TFF's context partitions it."""
  args = arg.value() if arg is not None else [None] * len(contexts)
  merged = await merge_in_order(comp, args, contexts)
  result_type = comp.after_merge.type_signature.result

  def server_or_unplaced(type_spec: computation_types.Type) -> bool:
    return not isinstance(type_spec, computation_types.FederatedType) or type_spec.all_equal

  if type_analysis.contains_only(result_type, server_or_unplaced):  # one call is enough
    return await _after_merge(comp, args[0], merged, contexts[0])
  results = await map_in_order(lambda a, context: _after_merge(comp, a, merged, context),
                               args, contexts)
  return tff_mergeable._repackage_partitioned_values(results, result_type_spec=result_type)


class OrderedMergeableContext(tff_mergeable.MergeableCompExecutionContext):
  """``MergeableCompExecutionContext`` whose merges follow the clients' order."""

  def __init__(self, async_contexts: Sequence):
    super().__init__(async_contexts=async_contexts,
                     compiler_fn=mergeable_comp_compiler.compile_to_mergeable_comp_form)

  def invoke(self, comp, arg=None):
    if isinstance(comp, computation_base.Computation):
      comp = self._compiler_pipeline.compile(comp)
    if not isinstance(comp, tff_mergeable.MergeableCompForm):
      raise TypeError(f"expected a computation in mergeable form, got {type(comp)}")
    if arg is not None:
      arg = tff_mergeable.MergeableCompExecutionContextValue(
          arg, comp.up_to_merge.type_signature.parameter, self._num_subrounds)
    result = self._async_runner.run_coro_and_return_result(
        invoke_in_order(comp, arg, self._async_execution_contexts))
    return type_conversions.type_to_py_container(result, comp.after_merge.type_signature.result)
