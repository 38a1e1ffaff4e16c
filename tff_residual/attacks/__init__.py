"""Attacks, one module each: data poisoning (``label_flip``, ``backdoor``),
update poisoning (``model_replacement``, ``gaussian``, ``mix_rate``) and the
omniscient model-poisoning attacks (``alie``, ``ipm``, ``sign_flip``,
``min_max``, ``min_sum``, ``adaptive_residual``; shared parts in
``omniscient``); ``attack_table`` maps attack names to them."""

from tff_residual.attacks.base import Attack, AttackSettings, UpdateContext
from tff_residual.attacks.attack_table import (ATTACKS, LABEL_FLIP_ATTACKS, TRIGGER_ATTACKS, build_attack,
                                          check_settings)
