"""Side-by-side benchmark of the model-level defences against ByzFL 0.0.11 (PyTorch).

For each (N coordinates, K clients) cell, one float32 [K, N] matrix (NumPy,
seeded) is written to a temporary file; this process times our eager kernels on
it and ``tf.reduce_mean``, and a second Python, in a virtual environment with
``torch`` and ``byzfl`` (``--byzfl_python``), times ByzFL's rules on the same
file as a torch tensor. Median wall seconds of --repeats calls after one warm-up
call, then the median over --passes passes that interleave the two sides rule by
rule (this shared machine has slow spells); f = (K - 3) // 4 for every rule that
takes it (the largest Bulyan allows).

Matched settings, so that both sides compute the same function:
  krum, multi_krum (m = K - f): ByzFL Krum(f), MultiKrum(f) (ByzFL scores over
    K - f - 1 neighbours, Blanchard et al. over K - f - 2: same cost).
  geometric_median: ours max_iter=3, nu=0.1, tolerance=0; ByzFL GeometricMedian
    (nu=0.1, T=3), its defaults.
  centered_clipping: one iteration around a zero centre, tau = 100 (ByzFL's
    defaults; ours given center=0).
  nnm: ours nnm+mean; ByzFL NNM(f) then Average.
  bulyan: ByzFL 0.0.11 has none; ours alone.

Set up the peer once, outside the project's dependencies:

    python3.11 -m venv /tmp/byzfl-venv
    /tmp/byzfl-venv/bin/pip install torch==2.13.0+cpu scipy
    /tmp/byzfl-venv/bin/pip install --no-deps byzfl==0.0.11
    .venv/bin/python scripts/bench_peers.py --byzfl_python /tmp/byzfl-venv/bin/python

ByzFL's package ``__init__`` imports torchvision; the peer side loads
``byzfl.aggregators`` under a stub ``byzfl`` package module instead.
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

METHODS = ("krum", "multi_krum", "geometric_median", "centered_clipping", "nnm", "bulyan")

PEER_SCRIPT = r"""
import importlib.util, json, os, statistics, sys, time, types
import numpy as np, torch
spec = importlib.util.find_spec("byzfl")
root = os.path.dirname(spec.origin)
stub = types.ModuleType("byzfl"); stub.__path__ = [root]; sys.modules["byzfl"] = stub
from byzfl.aggregators import aggregators as agg, preaggregators as pre
path, f, repeats, methods = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
x = torch.from_numpy(np.load(path))
rules = {"krum": agg.Krum(f=f), "multi_krum": agg.MultiKrum(f=f),
         "geometric_median": agg.GeometricMedian(nu=0.1, T=3),
         "centered_clipping": None, "nnm": None}
def call(name):
    if name == "centered_clipping":
        return agg.CenteredClipping(L=1, tau=100.0)(x)  # a fresh rule: centre 0
    if name == "nnm":
        return agg.Average()(pre.NNM(f=f)(x))
    return rules[name](x)
out = {}
for name in methods:
    result = call(name)
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); call(name); times.append(time.perf_counter() - start)
    out[name] = {"seconds": statistics.median(times),
                 "result": np.asarray(result, dtype=np.float64)[:8].tolist()}
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), **out}))
"""


def our_kernel(name: str, f: int, k: int, n: int):
  import tensorflow as tf

  from tff_residual.kernels import registry
  if name == "tf.function no-op":  # the floor: calling a compiled function from Python
    first = tf.function(lambda x: x[0, :1])
    return lambda x: first(x)
  if name == "tf.reduce_mean":
    mean = tf.function(lambda x: tf.reduce_mean(x, axis=0))
    return lambda x: mean(x)
  params = {"krum": {"num_byzantine": f}, "multi_krum": {"num_byzantine": f},
            "geometric_median": {"max_iter": 3, "nu": 0.1, "tolerance": 0.0},
            "centered_clipping": {"tau": 100.0, "num_iters": 1},
            "nnm": {"num_byzantine": f}, "bulyan": {"num_byzantine": f}}[name]
  kernel = registry.build_kernel("nnm+mean" if name == "nnm" else name, **params)
  if name == "centered_clipping":
    zero = [tf.zeros([n], tf.float32)]
    return lambda x: kernel([x], None, center=zero).aggregate[0]
  return lambda x: kernel([x], None).aggregate[0]


def time_ours(name, x, f, repeats):
  import tensorflow as tf
  matrix = tf.constant(x)
  call = our_kernel(name, f, *x.shape)
  result = call(matrix).numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    call(matrix).numpy()
    times.append(time.perf_counter() - start)
  return statistics.median(times), result


def peer_time(args, path: str, f: int, name: str, info: dict) -> dict:
  """ByzFL's timing of rule ``name`` on the matrix at ``path``, in a fresh process."""
  proc = subprocess.run([args.byzfl_python, "-c", PEER_SCRIPT, path, str(f), str(args.repeats),
                         name], capture_output=True, text=True)
  if proc.returncode != 0:
    lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
    return {"failed": lines[-1][:60]}
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  info.update(torch=out["torch"], threads=out["threads"])
  return out[name]


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--byzfl_python", required=True,
                      help="python of a venv with torch and byzfl 0.0.11 (see above)")
  parser.add_argument("--sizes", default="100000,1000000")
  parser.add_argument("--clients", default="10,30,100")
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--passes", type=int, default=3,
                      help="interleaved passes per cell; a cell is the median over passes")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  methods = args.methods.split(",")
  unknown = [m for m in methods if m not in METHODS]
  if unknown:
    parser.error(f"unknown method(s) {unknown}; expected some of {METHODS}")
  import tensorflow as tf
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, "
        f"float32 [K, N]; a side's time is the median over {args.passes} passes of the median "
        f"of {args.repeats} calls after 1 warm-up call; both sides on the same input, "
        "interleaved rule by rule; 'per pass': the range of the passes' ratios")
  header = (f"| {'N':>8} | {'K':>4} | {'f':>3} | {'method':<18} | {'ours s':>8} | "
            f"{'ByzFL s':>8} | {'ByzFL / ours':>12} | {'per pass':>11} | {'ours x mean':>11} | "
            f"{'same result':>11} |")
  print(header)
  print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
  floors = []
  peer = {}
  with tempfile.TemporaryDirectory() as directory:
    for n in (int(float(s)) for s in args.sizes.split(",")):
      for k in (int(c) for c in args.clients.split(",")):
        f = (k - 3) // 4
        x = np.random.default_rng([args.seed, n, k]).standard_normal((k, n), np.float32)
        path = os.path.join(directory, "x.npy")
        np.save(path, x)
        ours, theirs, means = {}, {}, []
        # Passes interleave the two sides rule by rule, so that a slow spell of
        # this shared machine hits both.
        for _ in range(args.passes):
          means.append(time_ours("tf.reduce_mean", x, f, args.repeats)[0])
          floors.append(time_ours("tf.function no-op", x, f, args.repeats)[0])
          for name in methods:
            if name != "bulyan":  # one process per rule: a failure costs its row only
              theirs.setdefault(name, []).append(peer_time(args, path, f, name, peer))
            ours.setdefault(name, []).append(time_ours(name, x, f, args.repeats))
        mean_seconds = statistics.median(means)
        for name in methods:
          seconds = statistics.median(t for t, _ in ours[name])
          result = ours[name][0][1]
          runs = theirs.get(name)
          if runs is None:
            peer_text, ratio, spread, same = "-", "-", "-", "-"
          elif any("failed" in r for r in runs):
            failure = next(r["failed"] for r in runs if "failed" in r)
            peer_text, ratio, spread, same = "failed", "-", "-", f"({failure})"
          else:
            peer_seconds = statistics.median(r["seconds"] for r in runs)
            ratios = [r["seconds"] / t for r, (t, _) in zip(runs, ours[name])]
            peer_text = f"{peer_seconds:.4f}"
            ratio = f"{peer_seconds / seconds:.2f}"
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
            same = "yes" if np.allclose(result[:8], runs[0]["result"], atol=1e-4,
                                        rtol=1e-4) else "no"
          print(f"| {n:>8} | {k:>4} | {f:>3} | {name:<18} | {seconds:>8.4f} | "
                f"{peer_text:>8} | {ratio:>12} | {spread:>11} | {seconds / mean_seconds:>11.0f} | "
                f"{same:>11} |", flush=True)
  print(f"tf.reduce_mean as the 'x mean' baseline; ByzFL on torch {peer.get('torch')} with "
        f"{peer.get('threads')} threads. 'same result': the first 8 coordinates agree to 1e-4 "
        "(krum/multi_krum can differ where ByzFL's K - f - 1 neighbours pick another client). "
        f"Floor: a tf.function that returns one value takes {1e3 * min(floors):.2f}-"
        f"{1e3 * max(floors):.2f} ms a call from Python here (every 'ours' includes it).")


if __name__ == "__main__":
  main()
