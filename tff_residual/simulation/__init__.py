"""Simulation on TFF: the owned execution runtime, client training, the round
loop, evaluation and run outputs. Modules are imported on use (``runtime`` and
``client_training`` import TFF)."""
