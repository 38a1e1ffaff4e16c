"""Side by side: our defences through the public API and as bare kernels, against
the authors' PyTorch code, ByzFL 0.0.11 and ByzPy 0.1.4, on the same input.

For each (N coordinates, K clients) cell, one float32 [K, N] matrix (NumPy,
seeded) is written to a temporary file. This process times, per rule:

* ``ours API``: ``tff_residual.aggregate(clients, method, ...)`` on a list of K
  dicts of NumPy arrays (a weight matrix of N - 1000 and a bias of 1000
  coordinates), what a user calls: checks, stacking and the copy back included;
* ``ours kernel``: the compiled kernel called directly on the [K, N] tensor;

and a second Python, in a virtual environment with torch, ByzFL and ByzPy
(``--peer_python``), times each peer on the same file: ByzFL on the [K, N] tensor,
ByzPy on the list of K row tensors (its API), the authors' code on K state dicts.
A side's time is the median of --repeats calls after one warm-up call, each peer
call on a fresh copy of the input made before its clock starts (ByzFL's ARC clips
its input in place: timed on one tensor, its later calls had nothing left to clip);
a cell is
the median over --passes passes that interleave the sides rule by rule (this
shared machine has slow spells). f = (K - 3) // 4 for every rule that takes it.

Matched settings, so that every side computes the same function:
  residual: ours defaults (reference variant, lambda 2, delta 0.1); the authors'
    IRLS_aggregation_split_restricted(w_locals, 2.0, 0.1) from averaging.py.
  median; trimmed_mean (ours beta = f / K; ByzFL TrMean(f), ByzPy trimmed mean(f)).
  krum; multi_krum (m = K - f; ByzFL scores over K - f - 1 neighbours, Blanchard
    et al. over K - f - 2: same cost).
  geometric_median: 3 Weiszfeld iterations (ours max_iter=3, nu=0.1,
    tolerance=0; ByzFL GeometricMedian(nu=0.1, T=3), its defaults; ByzPy
    GeometricMedian(max_iter=3, init="mean"), tol 1e-12 so that it runs all 3).
  centered_clipping: one iteration around a zero centre, tau = 100 (ByzFL's
    defaults; ByzPy c_tau=100, M=1, init="zero"; ours given center=0).
  nnm, arc, bucketing (bucket size 2): the pre-aggregation, then the mean
    (bucketing then equals the mean, whatever permutation each side draws).
  bulyan: neither peer has it; ours alone.

Set up the peers once, outside the project's dependencies (this machine's pip
serves torch 2.13.0+cpu from its wheel directory):

    python3.11 -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install torch==2.13.0+cpu scipy scikit-learn
    /tmp/peers-venv/bin/pip install --no-deps byzfl==0.0.11 byzpy==0.1.4
    git clone https://github.com/fushuhao6/Attack-Resistant-Federated-Learning /tmp/authors
    .venv/bin/python scripts/bench_peers.py --peer_python /tmp/peers-venv/bin/python \\
        --authors_code /tmp/authors/FedAvg/averaging.py

ByzFL's package ``__init__`` imports torchvision; the peer side loads
``byzfl.aggregators`` under a stub ``byzfl`` package module instead. The authors'
code names ``torch.cuda.FloatTensor``; the peer side aliases it to the CPU type.
``--peer_python none`` times our two columns only.

The floor (``floor s``, ``API / floor``): what each rule's arithmetic alone would take on
this machine, measured in the same run, as max(memory, compute):

* memory: the passes over the K x N input the rule needs at the least
  (``FLOOR_OPERATIONS``), times the time of one, ``tf.reduce_mean`` of the [K, N] tensor;
* compute: the simple operations per coordinate it needs at the least (a min, max,
  add or multiply-add of two floats), times N, times the time of one, measured as an
  XLA-fused chain of min/max on a [K, 16384] tile held in cache (``op_seconds``).

Counts per coordinate (f as above, T iterations): mean K; median and trimmed mean, the
comparators of the pruned selection network for the kept positions (2 per comparator:
``sorting_networks.selection_comparators``) plus K adds; residual K^2 (the repeated
median over sorted ranks: the issue's count); Krum, Multi-Krum, NNM and Bulyan the Gram,
K (K + 1) / 2 multiply-adds, plus K for the mean they end in (Bulyan: its selection
network over K - 2f rows); geometric median and centered clipping 2 K per iteration
(distances, then the weighted sum), ARC 2 K (norms, scaled sum), bucketing K. Passes:
1 for one-pass rules, 2 where a second pass needs the first's result (Multi-Krum, NNM,
ARC, Bulyan), 2 T for the geometric median, 2 per centered-clipping iteration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

RULES = ("residual", "median", "trimmed_mean", "krum", "multi_krum", "geometric_median",
         "centered_clipping", "nnm", "arc", "bucketing", "bulyan")
PEERS = ("ByzFL", "ByzPy", "authors")
# The speed-up over the fastest peer each rule must reach (issue "Performance"):
# residual against the authors' code by K; every other rule against ByzFL and ByzPy.
RESIDUAL_TARGETS = {10: 25.0, 30: 60.0}
PEER_TARGET = 2.0
BIAS_SIZE = 1000

PEER_SCRIPT = r"""
import copy, importlib.util, json, os, statistics, sys, time, types
import numpy as np, torch
library, path, f, repeats, name, authors_path = sys.argv[1:7]
f, repeats = int(f), int(repeats)
x = torch.from_numpy(np.load(path))
k = x.shape[0]

def byzfl_rules():
    root = os.path.dirname(importlib.util.find_spec("byzfl").origin)
    stub = types.ModuleType("byzfl"); stub.__path__ = [root]; sys.modules["byzfl"] = stub
    from byzfl.aggregators import aggregators as agg, preaggregators as pre
    mean = agg.Average()
    return {
        "median": lambda v: agg.Median()(v),
        "trimmed_mean": lambda v: agg.TrMean(f=f)(v),
        "krum": lambda v: agg.Krum(f=f)(v),
        "multi_krum": lambda v: agg.MultiKrum(f=f)(v),
        "geometric_median": lambda v: agg.GeometricMedian(nu=0.1, T=3)(v),
        "centered_clipping": lambda v: agg.CenteredClipping(L=1, tau=100.0)(v),  # centre 0
        "nnm": lambda v: mean(pre.NNM(f=f)(v)),
        "arc": lambda v: mean(pre.ARC(f=f)(v)),  # clips its input in place
        "bucketing": lambda v: mean(pre.Bucketing(s=2)(v)),
    }

def byzpy_rules():
    from byzpy.aggregators.coordinate_wise import CoordinateWiseMedian, CoordinateWiseTrimmedMean
    from byzpy.aggregators.geometric_wise import GeometricMedian, Krum, MultiKrum
    from byzpy.aggregators.norm_wise import CenteredClipping
    from byzpy.pre_aggregators import ARC, Bucketing, NearestNeighborMixing
    rows = lambda v: v  # a list of K row tensors already (see fresh_input)
    mean = lambda xs: torch.stack(list(xs)).mean(dim=0)
    return {
        "median": lambda v: CoordinateWiseMedian().aggregate(rows(v)),
        "trimmed_mean": lambda v: CoordinateWiseTrimmedMean(f=f).aggregate(rows(v)),
        "krum": lambda v: Krum(f=f).aggregate(rows(v)),
        "multi_krum": lambda v: MultiKrum(f=f, q=k - f).aggregate(rows(v)),
        "geometric_median": lambda v: GeometricMedian(max_iter=3, tol=1e-12, init="mean").aggregate(rows(v)),
        "centered_clipping": lambda v: CenteredClipping(c_tau=100.0, M=1, init="zero").aggregate(rows(v)),
        "nnm": lambda v: mean(NearestNeighborMixing(f=f).pre_aggregate(rows(v))),
        "arc": lambda v: mean(ARC(f=f).pre_aggregate(rows(v))),
        "bucketing": lambda v: mean(Bucketing(bucket_size=2).pre_aggregate(rows(v))),
    }

def authors_rules():
    torch.cuda.FloatTensor = torch.FloatTensor  # the code names CUDA types; CPU here
    spec = importlib.util.spec_from_file_location("averaging", authors_path)
    averaging = importlib.util.module_from_spec(spec); spec.loader.exec_module(averaging)
    models = [{"w": x[i]} for i in range(k)]
    # IRLS corrects extreme values in its input in place: every call gets fresh copies
    # (made before the clock starts, see below).
    return {"residual": (lambda: [{"w": m["w"].clone()} for m in models],
                         lambda w: averaging.IRLS_aggregation_split_restricted(w, 2.0, 0.1)[0]["w"])}

rules = {"ByzFL": byzfl_rules, "ByzPy": byzpy_rules, "authors": authors_rules}[library]()
rule = rules[name]
# Every call gets a fresh copy of the input, made before the clock starts: ByzFL's ARC
# clips the largest vectors of its input in place, so from the second call on it would
# time an input that needs no clipping (and every rule would see what the last one left).
# ByzPy's rules take a list of K row tensors: the list is made there too, off the clock.
fresh_input = (lambda: list(x.clone())) if library == "ByzPy" else (lambda: x.clone())
prepare, call = rule if isinstance(rule, tuple) else (fresh_input, rule)
result = call(prepare())
times = []
for _ in range(repeats):
    argument = prepare()
    start = time.perf_counter(); call(argument); times.append(time.perf_counter() - start)
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                  "seconds": statistics.median(times),
                  "result": np.asarray(result, dtype=np.float64).reshape(-1)[:8].tolist()}))
"""


def peer_has(library: str, name: str) -> bool:
  if library == "authors":
    return name == "residual"
  return name not in ("residual", "bulyan")


def our_method(name: str, f: int, k: int) -> tuple[str, dict]:
  """(method, params) of ``tff_residual.aggregate`` matching the peers' settings."""
  return {
      "residual": ("residual", {}),
      "median": ("median", {}),
      "trimmed_mean": ("trimmed_mean", {"beta": f / k}),
      "krum": ("krum", {"num_byzantine": f}),
      "multi_krum": ("multi_krum", {"num_byzantine": f}),
      "geometric_median": ("geometric_median", {"max_iter": 3, "nu": 0.1, "tolerance": 0.0}),
      "centered_clipping": ("centered_clipping", {"tau": 100.0, "num_iters": 1}),
      "nnm": ("nnm+mean", {"num_byzantine": f}),
      "arc": ("arc+mean", {"num_byzantine": f}),
      "bucketing": ("bucketing+mean", {"bucket_size": 2}),
      "bulyan": ("bulyan", {"num_byzantine": f}),
  }[name]


def floor_operations(name: str, k: int, f: int) -> tuple[int, int]:
  """(passes over the [K, N] input, simple operations per coordinate) the rule needs at
  the least, as the module docstring counts them (the settings of ``our_method``)."""
  from tff_residual.kernels.residual import sorting_networks

  def selection(wires: int, positions) -> int:
    return 2 * len(sorting_networks.selection_comparators(wires, tuple(positions)))

  gram = k * (k + 1) // 2 * 2          # K (K + 1) / 2 multiply-adds, 2 operations each
  iterations = {"geometric_median": 3, "centered_clipping": 1}
  return {
      "mean": (1, k),
      "median": (1, selection(k, sorted({(k - 1) // 2, k // 2})) + 2),
      "trimmed_mean": (1, selection(k, range(f, k - f)) + k),
      "residual": (1, k * k),
      "krum": (1, gram),
      "multi_krum": (2, gram + k),
      "nnm": (2, gram + k * k + k),   # the Gram, the [K, K] mixing, the mean
      "arc": (2, 2 * k),
      "bucketing": (1, k),
      "geometric_median": (2 * iterations["geometric_median"],
                           2 * k * iterations["geometric_median"]),
      "centered_clipping": (2 * iterations["centered_clipping"],
                            2 * k * iterations["centered_clipping"]),
      "bulyan": (2, gram + selection(k - 2 * f, range(f, k - 3 * f)) + k),
  }[name]


def op_seconds(k: int, repeats: int) -> float:
  """Seconds per simple operation per float on this machine: an XLA-fused chain of
  ``tf.minimum`` / ``tf.maximum`` over a [K, 16384] float32 tile (in cache), the
  median of ``repeats`` calls after a warm-up."""
  import tensorflow as tf
  width, rounds = 16384, 64

  @tf.function(jit_compile=True)
  def chain(a, b):
    for _ in range(rounds):
      a, b = tf.minimum(a, b), tf.maximum(a, b) * 0.5   # 3 operations per element
    return a + b

  a = tf.random.stateless_normal([k, width], [0, 1])
  b = tf.random.stateless_normal([k, width], [0, 2])
  seconds, _ = timed(lambda: chain(a, b).numpy(), repeats)
  return seconds / (3 * rounds * k * width)


def floor_seconds(name: str, k: int, f: int, n: int, pass_seconds: float,
                  operation_seconds: float) -> float:
  """max(passes x one pass, operations per coordinate x N x one operation)."""
  passes, operations = floor_operations(name, k, f)
  return max(passes * pass_seconds, operations * n * operation_seconds)


def as_clients(x: np.ndarray) -> list[dict]:
  """The K rows of ``x`` as client models: a weight matrix and a bias, NumPy."""
  cut = x.shape[1] - BIAS_SIZE
  return [{"kernel": row[:cut].reshape(-1, 1), "bias": row[cut:]} for row in x]


def timed(call, repeats: int) -> tuple[float, np.ndarray]:
  """(median seconds of ``repeats`` calls after a warm-up call, its first 8 outputs)."""
  result = call()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return statistics.median(times), np.asarray(result, np.float64).reshape(-1)[:8]


def ours(name: str, x: np.ndarray, f: int, repeats: int) -> dict[str, tuple[float, np.ndarray]]:
  """Our two columns for rule ``name`` (or the tf.reduce_mean / no-op floors)."""
  import tensorflow as tf

  import tff_residual
  from tff_residual.kernels import method_table
  matrix = tf.constant(x)
  if name == "tf.reduce_mean":
    mean = tf.function(lambda v: tf.reduce_mean(v, axis=0))
    return {"kernel": timed(lambda: mean(matrix).numpy(), repeats)}
  if name == "tf.function no-op":  # calling a compiled function from Python at all
    first = tf.function(lambda v: v[0, :1])
    return {"kernel": timed(lambda: first(matrix).numpy(), repeats)}
  method, params = our_method(name, f, x.shape[0])
  kernel = method_table.eager_kernel(method_table.resolve(method, **params))  # the API's own
  state = {}
  api_extra = {}
  if name == "centered_clipping":
    state = {"center": [tf.zeros([x.shape[1]], tf.float32)], "has_center": tf.constant(True)}
    api_extra = {"center": as_clients(np.zeros((1, x.shape[1]), np.float32))[0]}
  clients = as_clients(x)

  def api():
    aggregate, _ = tff_residual.aggregate(clients, method, **params, **api_extra)
    return aggregate["kernel"][:8, 0]

  return {"kernel": timed(lambda: kernel([matrix], None, **state).aggregate[0].numpy(), repeats),
          "api": timed(api, repeats)}


def peer_time(args, library: str, path: str, f: int, name: str, info: dict) -> dict:
  """The peer's timing of rule ``name`` on the matrix at ``path``, in a fresh process."""
  proc = subprocess.run([args.peer_python, "-c", PEER_SCRIPT, library, path, str(f),
                         str(args.repeats), name, args.authors_code or ""],
                        capture_output=True, text=True)
  if proc.returncode != 0:
    lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
    return {"failed": lines[-1][:60]}
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  info.update(torch=out["torch"], threads=out["threads"])
  return out


def peers_of(args, name: str) -> list[str]:
  if args.peer_python == "none":
    return []
  return [p for p in PEERS if peer_has(p, name) and (p != "authors" or args.authors_code)]


def cell_text(runs: list[dict] | None) -> tuple[str, float | None]:
  if not runs:
    return "-", None
  failed = [r["failed"] for r in runs if "failed" in r]
  if failed:
    return f"failed ({failed[0]})", None
  seconds = statistics.median(r["seconds"] for r in runs)
  return f"{seconds:.4f}", seconds


def target_text(name: str, k: int, speedup: float | None) -> str:
  goal = RESIDUAL_TARGETS.get(k) if name == "residual" else PEER_TARGET
  if speedup is None or goal is None:
    return "-"
  return f">= {goal:g}: {'met' if speedup >= goal else 'NOT met'}"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--peer_python", required=True,
                      help="python of a venv with torch, byzfl 0.0.11 and byzpy 0.1.4 (see "
                           "above); 'none': our columns only")
  parser.add_argument("--authors_code", default="",
                      help="path of the authors' FedAvg/averaging.py (residual's peer)")
  parser.add_argument("--sizes", default="1000000")
  parser.add_argument("--clients", default="10,30")
  parser.add_argument("--rules", default=",".join(RULES))
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--passes", type=int, default=3,
                      help="interleaved passes per cell; a cell is the median over passes")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  rules = args.rules.split(",")
  unknown = [m for m in rules if m not in RULES]
  if unknown:
    parser.error(f"unknown rule(s) {unknown}; expected some of {RULES}")
  if args.authors_code and not os.path.isfile(args.authors_code):
    parser.error(f"--authors_code {args.authors_code!r} is not a file")
  import tensorflow as tf
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, "
        f"float32 [K, N]; a side's time is the median over {args.passes} passes of the median "
        f"of {args.repeats} calls after 1 warm-up call, every side on the same input, "
        "interleaved rule by rule")
  columns = ["N", "K", "f", "rule", "ours API s", "ours kernel s", "API / kernel",
             *[f"{p} s" for p in PEERS], "fastest peer / API", "target", "floor s",
             "API / floor", "same result"]
  print("| " + " | ".join(columns) + " |")
  print("|" + "|".join("---" for _ in columns) + "|")
  floors, means, operation_seconds = [], {}, {}
  info = {}
  with tempfile.TemporaryDirectory() as directory:
    for n in (int(float(s)) for s in args.sizes.split(",")):
      for k in (int(c) for c in args.clients.split(",")):
        f = (k - 3) // 4
        x = np.random.default_rng([args.seed, n, k]).standard_normal((k, n), np.float32)
        path = os.path.join(directory, "x.npy")
        np.save(path, x)
        our_runs, peer_runs, mean_runs, op_runs = {}, {}, [], []
        for _ in range(args.passes):  # interleaved: a slow spell hits every side
          mean_runs.append(ours("tf.reduce_mean", x, f, args.repeats)["kernel"][0])
          op_runs.append(op_seconds(k, args.repeats))
          floors.append(ours("tf.function no-op", x, f, args.repeats)["kernel"][0])
          for name in rules:
            for library in peers_of(args, name):
              peer_runs.setdefault((name, library), []).append(
                  peer_time(args, library, path, f, name, info))
            our_runs.setdefault(name, []).append(ours(name, x, f, args.repeats))
        means[(n, k)] = statistics.median(mean_runs)
        operation_seconds[(n, k)] = statistics.median(op_runs)
        for name in rules:
          floor = floor_seconds(name, k, f, n, means[(n, k)], operation_seconds[(n, k)])
          api = statistics.median(run["api"][0] for run in our_runs[name])
          kernel = statistics.median(run["kernel"][0] for run in our_runs[name])
          reference = our_runs[name][0]["kernel"][1]
          same = ["yes" if np.allclose(our_runs[name][0]["api"][1], reference, rtol=1e-6,
                                       atol=1e-7) else "no (API)"]
          texts, fastest = [], None
          for library in PEERS:
            runs = peer_runs.get((name, library))
            text, seconds = cell_text(runs)
            texts.append(text)
            if seconds is not None:
              fastest = seconds if fastest is None else min(fastest, seconds)
              agrees = np.allclose(reference, runs[0]["result"], atol=1e-4, rtol=1e-4)
              same.append(f"{library}: {'yes' if agrees else 'no'}")
          speedup = None if fastest is None else fastest / api
          print(f"| {n} | {k} | {f} | {name} | {api:.4f} | {kernel:.4f} | {api / kernel:.2f} | "
                + " | ".join(texts)
                + f" | {'-' if speedup is None else f'{speedup:.2f}'} | "
                f"{target_text(name, k, speedup)} | {floor:.3g} | {api / floor:.1f} | "
                f"{', '.join(same)} |", flush=True)
  print("tf.reduce_mean of the [K, N] tensor: "
        + ", ".join(f"N {n} K {k}: {s:.4f} s" for (n, k), s in means.items())
        + f". A tf.function returning one value takes {1e3 * min(floors):.2f}-"
        f"{1e3 * max(floors):.2f} ms a call from Python here (every 'ours' includes it). "
        "One simple operation per float (the floor's compute unit): "
        + ", ".join(f"K {k}: {1e12 * s:.0f} ps" for (n, k), s in operation_seconds.items())
        + "; one pass is the tf.reduce_mean time (the floor's memory unit).")
  if info:
    print(f"Peers on torch {info.get('torch')} with {info.get('threads')} threads. 'same result': "
          "the first 8 coordinates agree with our kernel's to 1e-4 (the API's to 1e-6; "
          "krum/multi_krum can differ where ByzFL's K - f - 1 neighbours pick another client; "
          "ByzPy's median of an even K is the lower middle value, ours and ByzFL's the mean "
          "of the two).")


if __name__ == "__main__":
  main()
