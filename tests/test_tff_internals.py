"""The private parts of TFF that tff_internals names: fail loudly, item by item,
on a TFF where they changed."""

import numpy as np
import tensorflow_federated as tff

from tff_residual.simulation import tff_internals
from tff_residual.simulation.ordered_merge import OrderedMergeableContext


def test_tff_is_the_version_the_internals_were_checked_against():
  assert tff.__version__ == tff_internals.TESTED_TFF_VERSION, (
      f"TFF {tff.__version__}: check every item of tff_residual/simulation/tff_internals.py "
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
