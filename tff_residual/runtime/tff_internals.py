"""The private parts of TFF that this package uses, in one place.

Everything else comes from TFF's public API (``tff.framework``,
``tff.backends.native``, ``tff.types``, ``tff.structure``). What is here has no
public equivalent in TFF 0.87.0 and may change in any other version;
``tests/test_tff_internals.py`` pins each item and fails, naming it, when the
installed TFF differs:

* how TFF's mergeable context puts the blocks' results back together
  (``_repackage_partitioned_values``; the split into blocks is ours,
  ``ordered_merge.split_into_blocks``, as TFF's has a defect);
* four attributes that ``MergeableCompExecutionContext.__init__`` sets and
  ``ordered_merge.OrderedMergeableContext.invoke`` reads: ``_compiler_pipeline``,
  ``_async_runner``, ``_num_subrounds``, ``_async_execution_contexts``;
* ``transform_type_postorder`` (``tff.types`` does not export its module
  ``type_transformations``), with which ``aggregators/gather.py`` gives every
  tensor type of a value a leading client axis.

No other module of this package imports ``tensorflow_federated.python`` or reaches
a module that ``tff`` does not export (``tests/test_tff_internals.py`` checks the
source of every module).
"""

from __future__ import annotations

from tensorflow_federated.python.core.impl.execution_contexts import (
    mergeable_comp_execution_context as _mergeable)
from tensorflow_federated.python.core.impl.types import type_transformations as _type_transformations

TESTED_TFF_VERSION = "0.87.0"
MERGEABLE_CONTEXT_ATTRIBUTES = ("_compiler_pipeline", "_async_runner", "_num_subrounds",
                                "_async_execution_contexts")

repackage_partitioned_values = _mergeable._repackage_partitioned_values
"""``(per-block results, result type)`` -> one result, blocks concatenated in order."""

transform_type_postorder = _type_transformations.transform_type_postorder
"""``(type, fn)`` -> (the type with ``fn`` applied to each part, bottom up; whether it changed)."""
