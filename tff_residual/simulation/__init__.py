"""Simulation on TFF: client training, the round loop, evaluation and run outputs.
The TFF runtime it runs on is ``tff_residual.runtime``. Modules are imported on use
(``client_training`` imports TFF)."""
