"""The TFF runtime this package owns: TFF's C++ workers started and stopped by us
(``managed``: ``managed_tff_runtime``, ``no_tff_runtime``), several workers' results
merged in client order (``ordered_merge``), the worker process (``worker_process``)
and its command line (``python -m tff_residual.runtime.worker``). Every private TFF
name this package uses is in ``tff_internals`` and nowhere else. Modules are
imported on use (``managed`` and ``ordered_merge`` import TFF)."""
