"""One client with huge but finite values against every rule: the table of what each
rule gives that client, beside what it gives a far (but ordinary) outlier.

For every rule (each method, named setting and ``nnm+NAME`` of the method table)
and every case (a dtype, a magnitude M, a sign pattern), ten honest clients
(a common centre plus N(0, 0.01) noise, a [4, 5] and a [3] tensor) and one
attacker at index 0 (the first client, where the distances' centre starts) are
aggregated with the eager API. The attacker sends M times the pattern: ``+``
every coordinate +M, ``-`` every coordinate -M, ``+-`` alternating signs, ``one``
a single coordinate +M (the rest an honest-like update of its own).
The far outlier sends the same pattern with M = 100.

A cell is ``ok`` when the aggregate is finite, every client weight is a number, and
the attacker's weight is at most the far outlier's weight + ``TOLERANCE`` (1e-6; for
coordinate-wise rules, its weight averaged over the coordinates); otherwise it says
what failed: ``nan`` (a non-finite aggregate or weight) or ``w=0.50>0.00`` (the
attacker's weight against the outlier's). The last column is the largest |aggregate|
over the row's cases: the mean and FoolsGold (and nearest-neighbour mixing around
them) pass M / K on by design; every other rule keeps the honest scale.

    .venv/bin/python scripts/extreme_values.py                 # every rule
    .venv/bin/python scripts/extreme_values.py --rules krum,geometric_median
    PYTHONPATH=/path/to/other/tree .venv/bin/python scripts/extreme_values.py   # another commit
    .venv/bin/python scripts/extreme_values.py --near_ties 100   # TFF against eager, 100 cases
"""

from __future__ import annotations

import argparse
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tff_residual  # noqa: E402
from tff_residual.kernels import method_table  # noqa: E402

NUM_HONEST = 10
ATTACKER = 0
TOLERANCE = 1e-6
"""Weights within this of the far outlier's count as no more: with ``one``, nearest-
neighbour mixing picks the attacker's neighbours by index where its distances to
them all round to the same number (or +inf), so an inner residual rule weighs the
mixed row's honest coordinates a little otherwise than the outlier's (both weights
far below 1e-6)."""
PATTERNS = ("+", "-", "+-", "one")
CASES = [(np.float32, magnitude, pattern) for magnitude in (1e20, float(np.finfo(np.float32).max))
         for pattern in PATTERNS] + [
        (np.float64, magnitude, pattern) for magnitude in (1e200, float(np.finfo(np.float64).max))
        for pattern in PATTERNS]


def rules() -> list[str]:
  names = [n for n in method_table.names() if n != "fedavg"]
  return names + [f"nnm{method_table.SEPARATOR}{n}" for n in names]


def params(rule: str, num_clients: int) -> dict:
  fields = method_table.fields_of(rule)
  return {"num_byzantine": 1} if "num_byzantine" in fields and num_clients >= 7 else {}


def clients(dtype, magnitude: float, pattern: str, seed: int = 0,
            attacker: int = ATTACKER) -> list[dict]:
  """Ten honest clients and the attacker at index ``attacker``, as {w [4, 5], b [3]}."""
  rng = np.random.default_rng(seed)
  centre = rng.normal(size=23)
  honest = centre + 0.01 * rng.normal(size=(NUM_HONEST, 23))
  signs = {"+": np.ones(23), "-": -np.ones(23), "+-": np.resize([1.0, -1.0], 23)}
  if pattern == "one":  # an honest-like update of its own, one coordinate at M
    attacker_row = centre + 0.01 * rng.normal(size=23)
    attacker_row[0] = magnitude
  else:
    attacker_row = magnitude * signs[pattern]
  rows = list(honest[1:])
  rows.insert(attacker, attacker_row)
  rows.append(honest[0])
  with np.errstate(over="ignore"):
    return [{"w": r[:20].reshape(4, 5).astype(dtype), "b": r[20:].astype(dtype)} for r in rows]


def attacker_weight(rule: str, values: list[dict],
                    attacker: int = ATTACKER) -> tuple[float, float, bool]:
  """(attacker's weight, max |aggregate|, whether aggregate and weights are all finite)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    aggregate, info = tff_residual.aggregate(values, rule, **params(rule, len(values)))
  leaves = np.concatenate([np.ravel(aggregate["w"]), np.ravel(aggregate["b"])]).astype(np.float64)
  weights = np.asarray(info["client_weights"], np.float64)
  finite = bool(np.all(np.isfinite(leaves)) and np.all(np.isfinite(weights)))
  return float(weights[attacker]), float(np.max(np.abs(leaves))), finite


def cell(rule: str, dtype, magnitude: float, pattern: str,
         attacker: int = ATTACKER) -> tuple[str, float]:
  """("ok" or what failed, max |aggregate|) of one rule and case (module docstring)."""
  weight, largest, finite = attacker_weight(
      rule, clients(dtype, magnitude, pattern, attacker=attacker), attacker)
  if not finite:
    return "nan", largest
  outlier, _, _ = attacker_weight(rule, clients(dtype, 100.0, pattern, attacker=attacker),
                                  attacker)
  if weight > outlier + TOLERANCE:
    return f"w={weight:.2f}>{outlier:.2f}", largest
  return "ok", largest


SELECTING = ("krum", "multi_krum", "bulyan", "nnm+median")
"""The rules that select clients (nearest-neighbour mixing selects each client's
neighbours), checked by ``--near_ties``."""


def near_tie_case(seed: int, outlier: bool = True) -> np.ndarray:
  """float32 [11, 23]: a centre plus N(0, 0.01) noise, two mirrored pairs centre +- e
  (tied in exact arithmetic) and, with ``outlier``, one client at +40 at a seeded index."""
  rng = np.random.default_rng(seed)
  centre = rng.normal(size=23)
  x = centre + 0.01 * rng.normal(size=(11, 23))
  for a, b in ((1, 7), (3, 9)):
    x[b] = 2 * centre - x[a]
  if outlier:
    x[rng.integers(11)] += 40.0
  return x.astype(np.float32)


def as_model(row: np.ndarray):
  """One client as TFF and the eager API both take it: w [4, 5], then b [3]."""
  import collections
  return collections.OrderedDict(w=row[:20].reshape(4, 5), b=row[20:])


def near_tie_agreement(count: int, chosen=SELECTING) -> None:
  """Prints, per selecting rule and f = 2, on ``count`` near-tie cases (a quarter without
  the outlier): the cases where TFF's factory and the eager API select the same
  clients, and where their aggregates are equal to the last bit."""
  import tensorflow_federated as tff
  from tff_residual.runtime.managed import managed_tff_runtime
  value_type = [("w", tff.TensorType(np.float32, [4, 5])), ("b", tff.TensorType(np.float32, [3]))]
  print("| rule (f = 2) | cases | same selection | same aggregate, to the last bit |")
  print("|---|---|---|---|")
  with managed_tff_runtime():
    for rule in chosen:
      process = tff_residual.RobustAggregationFactory(rule, num_byzantine=2).create(
          tff.types.to_type(value_type))
      key = "client_weights" if method_table.parse(rule)[0] else "selected"
      same_selection = same_aggregate = 0
      for seed in range(count):
        rows = near_tie_case(seed, outlier=seed % 4 != 0)
        output = process.next(process.initialize(), [as_model(r) for r in rows])
        with warnings.catch_warnings():
          warnings.simplefilter("ignore")
          want, info = tff_residual.aggregate([as_model(r) for r in rows], rule,
                                              num_byzantine=2)
        # nnm: another neighbourhood moves a client's share M'p by >= 1 / (K (K - f)).
        same_selection += bool(np.allclose(np.asarray(output.measurements[key]), info[key],
                                           rtol=0, atol=1e-6))
        same_aggregate += all(np.array_equal(np.asarray(output.result[name]), want[name])
                              for name in ("w", "b"))
      print(f"| {rule} | {count} | {same_selection} | {same_aggregate} |", flush=True)


def case_label(dtype, magnitude: float, pattern: str) -> str:
  return f"{np.dtype(dtype).name[5:]} {magnitude:.0e} {pattern}".replace("e+", "e")


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--rules", default="", help="comma-separated; default every rule")
  parser.add_argument("--near_ties", type=int, default=0,
                      help="instead: TFF against the eager API on this many near-tie cases "
                           f"for the selecting rules ({', '.join(SELECTING)})")
  args = parser.parse_args()
  if args.near_ties:
    near_tie_agreement(args.near_ties, [r for r in args.rules.split(",") if r] or SELECTING)
    return
  chosen = [r for r in args.rules.split(",") if r] or rules()
  labels = [case_label(*case) for case in CASES]
  print("| rule | " + " | ".join(labels) + " | max abs aggregate |")
  print("|---" * (len(labels) + 2) + "|")
  failing = 0
  for rule in chosen:
    results = [cell(rule, *case) for case in CASES]
    failing += any(text != "ok" for text, _ in results)
    largest = max(value for _, value in results)
    print(f"| {rule} | " + " | ".join(text for text, _ in results) + f" | {largest:.3g} |",
          flush=True)
  print(f"rules with a failing case: {failing} of {len(chosen)}")


if __name__ == "__main__":
  main()
