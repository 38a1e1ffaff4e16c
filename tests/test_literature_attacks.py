"""The strongest attacks of the literature: ALIE and IPM tuned against the defence in
use (ByzFL's ``Optimal_*``), Fang et al.'s attacks on Krum and on the trimmed mean, and
Karimireddy et al.'s Mimic. Oracles: ByzFL's published examples, Fang et al.'s formulas
in NumPy, hand-made honest updates whose answer is known; and one run in which each
aggregator is attacked with its own tuning."""

import csv
import math
import os

import numpy as np
import pytest

from tff_residual.attacks import omniscient
from tff_residual.attacks.base import UpdateContext
from tff_residual.attacks.fang_krum import FangKrum, lambda_upper_bound
from tff_residual.attacks.fang_trimmed_mean import FangTrimmedMean, intervals
from tff_residual.attacks.mimic import Mimic
from tff_residual.attacks.optimal_alie import OptimalALIE
from tff_residual.attacks.optimal_ipm import OptimalIPM
from tff_residual.attacks.attack_table import ATTACKS
from tff_residual.simulation.compared_aggregators import AggregatorSettings, server_rule_for_run

BYZFL_EXAMPLE = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])


def byzfl_pipeline(vectors, f=1, clip=2.0):
  """ByzFL's docstring example rule in NumPy: NNM(f), then Clipping(c = 2), then TrMean(f)."""
  squared = ((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
  neighbours = np.argsort(squared, axis=1, kind="stable")[:, :len(vectors) - f]
  mixed = np.stack([vectors[row].mean(axis=0) for row in neighbours])
  norms = np.linalg.norm(mixed, axis=1, keepdims=True)
  clipped = np.where(norms > clip, mixed * clip / norms, mixed)
  return np.sort(clipped, axis=0)[f:len(clipped) - f].mean(axis=0)


def context(honest, rule=None, round_index=0, num_attackers=1, ids=(), seed=0):
  updates = [[np.asarray(row, np.float64)] for row in honest]
  return UpdateContext(round_index, [], updates, np.random.default_rng(seed),
                       num_clients=len(honest) + num_attackers, num_attackers=num_attackers,
                       honest_clients=list(ids), server_rule=rule)


def crafted(attack, honest, **kwargs):
  return attack.poison_update([np.zeros(np.shape(honest)[1])], context(honest, **kwargs))[0]


def test_the_new_attacks_are_in_the_attack_table():
  assert {"fang_krum", "fang_trimmed_mean", "optimal_alie", "optimal_ipm", "mimic"} <= set(ATTACKS)


def test_optimal_ipm_and_alie_reproduce_byzfls_published_examples():
  # byzfl/attacks/attacks.py docstrings: TrMean(f=1) after [NNM(f=1), Clipping()], f = 1
  ipm = OptimalIPM()
  np.testing.assert_allclose(crafted(ipm, BYZFL_EXAMPLE, rule=byzfl_pipeline),
                             [-2.74877907, -3.43597384, -4.1231686], rtol=1e-8)
  assert ipm.last_scale == pytest.approx(0.6871947673600004)
  np.testing.assert_allclose(crafted(OptimalALIE(), BYZFL_EXAMPLE, rule=byzfl_pipeline),
                             [12.91985116, 13.91985116, 14.91985116], rtol=1e-8)


def test_line_search_against_the_mean_expands_for_its_whole_budget():
  # The mean's harm grows with tau without bound: 19 doublings from 0 with first step 10.
  attack = OptimalIPM()
  crafted(attack, BYZFL_EXAMPLE, rule=lambda v: v.mean(axis=0))
  assert attack.last_scale == 10 * (2 ** 19 - 1)
  # A peak at 3: 10 loses (delta -> 8); contraction tries 8, 6.4, then 5.12 beats 0, and
  # every later step (best + 4.096, + 3.28, ...) overshoots; ByzFL's search only moves up.
  best = omniscient.maximize_along_line(lambda tau: -abs(tau - 3.0))
  assert best == pytest.approx(10 * 0.8 ** 3)
  with pytest.raises(ValueError, match="ratio"):
    omniscient.maximize_along_line(lambda tau: 0.0, ratio=0.5)


def test_tuned_attacks_refuse_a_round_without_the_servers_rule():
  with pytest.raises(ValueError, match="optimal_alie searches against the run's aggregator"):
    crafted(OptimalALIE(), BYZFL_EXAMPLE)


def test_the_server_rule_is_the_runs_aggregator_with_its_parameters():
  settings = AggregatorSettings(params={"beta": 0.2}, num_attackers=1, participants_per_round=5)
  values = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0], [100.0, -50.0]])
  np.testing.assert_allclose(server_rule_for_run("trimmed_mean", settings)(values), [2.0, 2.0])
  np.testing.assert_allclose(server_rule_for_run("median", settings)(values), [2.0, 2.0])
  np.testing.assert_allclose(server_rule_for_run("fedavg", settings)(values),
                             values.mean(axis=0), rtol=1e-6)


def numpy_krum_choice(vectors, f):
  squared = ((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
  scores = np.sort(squared, axis=1)[:, 1:len(vectors) - f - 1].sum(axis=1)
  return int(np.argmin(scores))


def test_fang_krum_upper_bound_by_hand():
  honest = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [0.0, 1.0]])
  # K = 5, f = 1: each row's K - f - 2 = 2 nearest honest distances; K - 2f - 1 = 2.
  # row 0: 1 (row 3), 5 (row 1) -> 6; row 1: 5, 4.243 -> 9.243; row 2: 5, 9.220; row 3: 1, 4.243
  spread = (1.0 + math.sqrt(18.0)) / (2 * math.sqrt(2.0))
  assert lambda_upper_bound(honest, 1) == pytest.approx(spread + 10.0 / math.sqrt(2.0))
  with pytest.raises(ValueError, match=r"Krum, which needs K >= 2f \+ 3 clients; got K = 6, f = 3"):
    lambda_upper_bound(honest[:3], 3)


@pytest.mark.parametrize("mean, selectable", [(0.05, True), (2.0, False)])
def test_fang_krum_sends_the_largest_halving_that_krum_selects(mean, selectable):
  # mean 0.05 (spread 1 in 20 coordinates): Krum takes -lambda s at some halving;
  # mean 2: the honest updates sit far from the origin and Krum never takes it, so
  # lambda is halved below Fang et al.'s threshold (1e-5) and that lambda is sent.
  honest = np.random.default_rng(3).normal(mean, 1.0, size=(8, 20))
  f = 2
  attack = FangKrum()
  update = crafted(attack, honest, num_attackers=f)
  direction = np.sign(honest.mean(axis=0))
  np.testing.assert_allclose(update, -attack.last_scale * direction)
  selected = lambda scale: numpy_krum_choice(
      np.concatenate([honest, np.repeat(-scale * direction[None, :], f, 0)]), f) >= len(honest)
  upper = lambda_upper_bound(honest, f)
  k = round(math.log2(upper / attack.last_scale))
  assert attack.last_scale == pytest.approx(upper / 2 ** k)
  assert not any(selected(upper / 2 ** j) for j in range(k))  # no larger halving is taken
  assert selected(attack.last_scale) == selectable
  assert (attack.last_scale >= 1e-5) == selectable


def test_fang_trimmed_mean_intervals_and_draws():
  honest = np.array([[1.0, -2.0, 0.5, -1.0], [3.0, -4.0, -0.5, 2.0], [2.0, -1.0, 0.1, 1.5]])
  # means: 2 (up), -2.33 (down), 0.033 (up), 0.833 (up)
  low, high = intervals(honest)
  np.testing.assert_allclose(low, [0.5, -1.0, -1.0, -2.0])   # up: below the honest minimum
  np.testing.assert_allclose(high, [1.0, -0.5, -0.5, -1.0])  # down: above the maximum (-1)
  attack = FangTrimmedMean()
  first = crafted(attack, honest, seed=1)
  second = crafted(attack, honest, seed=2)
  assert np.all((low <= first) & (first <= high)) and np.all((low <= second) & (second <= high))
  assert not np.allclose(first, second)  # each attacker its own draw
  np.testing.assert_array_equal(first, crafted(FangTrimmedMean(), honest, seed=1))


def test_mimic_copies_the_client_farthest_along_the_spread_and_keeps_it():
  base = np.array([1.0, 1.0, 1.0])
  spread = np.array([[0.0, 0.0, 3.0], [0.0, 0.0, -1.0], [0.0, 0.0, -2.0], [0.0, 0.0, 0.5]])
  honest = base + spread  # the spread lies along the third axis; client 12 is farthest (+)
  ids = [10, 11, 12, 13]
  attack = Mimic(warmup=1)
  first = crafted(attack, honest, ids=ids)
  # z = +-e3 (sign from the seeded start); the chosen client has the largest <x_i, z>
  z = attack.z
  np.testing.assert_allclose(np.abs(z), [0.0, 0.0, 1.0], atol=1e-12)
  chosen = int(np.argmax(honest @ z))
  np.testing.assert_array_equal(first, honest[chosen])
  # after the warm-up the same client is copied, wherever it stands in the round
  later = honest[::-1] * np.array([1.0, 1.0, -1.0])
  second = crafted(attack, later, round_index=1, ids=ids[::-1])
  np.testing.assert_array_equal(second, later[ids[::-1].index(ids[chosen])])
  # that client absent: pick again by the last z
  absent = [i for i in ids if i != ids[chosen]]
  rows = honest[[ids.index(i) for i in absent]]
  third = crafted(attack, rows, round_index=2, ids=absent)
  np.testing.assert_array_equal(third, rows[int(np.argmax(rows @ z))])
  attack.reset()
  assert attack.rounds_seen == 0 and attack.target is None
  with pytest.raises(ValueError, match="--mimic_warmup"):
    Mimic(warmup=0)


def test_reset_forgets_the_cached_round():
  attack = omniscient.SharedMaliciousUpdate()
  attack.craft = lambda honest, context: honest.sum(axis=0)
  first = crafted(attack, BYZFL_EXAMPLE)
  assert crafted(attack, 2 * BYZFL_EXAMPLE)[0] == first[0]  # same round: the cached update
  attack.reset()
  assert crafted(attack, 2 * BYZFL_EXAMPLE)[0] == 2 * first[0]


@pytest.mark.usefixtures("fashion_mnist")
@pytest.mark.slow
def test_each_aggregator_of_a_run_is_attacked_with_its_own_tuning(tmp_path):
  # One round, every client in it, two aggregators: without a reset between runs the
  # second would send the first one's cached update (tau 5110 here, tuned against the
  # median); against the mean the search runs to its last step.
  from test_experiments_cli import run_cli
  code, out = run_cli(tmp_path, "--task=fmnist_optimal_ipm", "--preset=smoke", "--rounds=1",
                      "--clients_per_round=0", "--aggregator=median,mean",
                      "--clean_baseline=false")
  assert code == 0
  rows = {r["aggregator"]: r for r in csv.DictReader(open(os.path.join(out, "metrics.csv")))}
  assert float(rows["mean"]["attack_scale"]) == 10 * (2 ** 19 - 1)
  assert 0 <= float(rows["median"]["attack_scale"]) < 10 * (2 ** 19 - 1)
