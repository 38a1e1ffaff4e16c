"""Simulation on TFF: the owned execution runtime (more to come)."""

from tff_residual.simulation.runtime import ManagedTffRuntime, managed_tff_runtime
