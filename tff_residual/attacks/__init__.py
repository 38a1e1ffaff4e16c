"""Attacks, one module each: data poisoning (``label_flip``, ``backdoor``) and
update poisoning (``model_replacement``, ``gaussian``, ``mix_rate``);
``registry`` maps attack names to them."""

from tff_residual.attacks.base import Attack, UpdateContext
from tff_residual.attacks.registry import ATTACKS, build_attack
