"""Benchmark of the aggregation kernels against plain averaging, measured in one run.

For each (N coordinates, K clients) cell: median wall seconds over --repeats
runs of every kernel (after one warm-up call that traces the graph) and of
plain ``tf.reduce_mean`` over the same stacked float32 input, plus the peak
resident memory of the timed calls above the memory held before them (VmHWM).
Every cell runs in a fresh process, except the eager cells of ``--quick``, which
share this one (no TensorFlow import per cell).

    .venv/bin/python scripts/bench_kernels.py            # full table
    .venv/bin/python scripts/bench_kernels.py --quick    # N = 1e5, K in {10, 30}: ~1 minute
    .venv/bin/python scripts/bench_kernels.py --sizes 1e6,resnet18 --clients 10 \
        --kernels residual,residual_sort,median --tff residual,median

"--huge_client" sets client 0 to 1e20 in every coordinate (float32 squares
overflow): the distance-based rules then take their overflow-safe paths.

"--tff NAME,..." also measures those kernels through their TFF factory (one
``AggregationProcess.next`` in an owned TFF runtime, the same values as K client
values; the time includes TFF moving K x N floats to the server stack; TFF's
UnweightedMeanFactory is measured the same way; peak MB then adds the TFF
worker process's own high-water mark). For each such kernel a second row,
"(TFF server step)", times the kernel alone inside TFF's worker as the factory
runs it (K unknown while the graph is built, TFF's graph executor), on the K x N
stack already at the server (for ResNet-18 and a coordinatewise kernel, one
[K, N] matrix, as the factory gathers a model of several tensors):
``tf.timestamp()`` before and after it inside the graph, so neither moving the
values nor TFF's gather is in that number. The
factory's full time minus this row is what TFF spends moving the values.

N may be "resnet18": the 62 trainable tensors of the CIFAR ResNet-18 of
``tff_residual.tasks.image_models`` (11.17 M coordinates), one [K, n_t] input
each. "residual_sort" is the residual kernel with ``implementation="sort"``
(the straightforward sort-based implementation, for comparison).

A kernel whose first (warm-up) run exceeds --budget seconds is not repeated;
its cell shows that single time with a "*".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tff_residual.kernels import method_table  # noqa: E402

KERNELS = ("residual", "median", "trimmed_mean", "repeated_median", "foolsgold", "krum",
           "multi_krum", "geometric_median", "centered_clipping", "bulyan", "nnm+mean")


def kernel_params(method: str, k: int) -> dict:
  """f = (K - 3) // 4 (the largest Bulyan allows) for every rule that takes f."""
  return {"num_byzantine": (k - 3) // 4} if "num_byzantine" in method_table.fields_of(method) else {}

VARIANTS = {"residual_sort": ("residual", {"implementation": "sort"})}


def model_shapes(size: str) -> list[int]:
  """Coordinates per tensor: one tensor of N, or the ResNet-18's 62 tensors."""
  if size != "resnet18":
    return [int(float(size))]
  from tff_residual.tasks.image_models import build_image_model
  model = build_image_model("resnet18", [32, 32, 3], [32, 32, 3], 10, [0.0] * 3, [1.0] * 3)
  return [int(np.prod(w.shape)) for w in model.trainable_weights]


def _status_bytes(field: str, pid: str = "self") -> int:
  with open(f"/proc/{pid}/status") as status:
    return int(next(line for line in status if line.startswith(field)).split()[1]) * 1024


def reset_peak(pids) -> int:
  """Resets the RSS high-water marks (VmHWM) of ``pids`` and returns their RSS now.

  Not getrusage's ru_maxrss: that one survives exec and would report the
  parent's peak, or the peak of generating the input.
  """
  for pid in pids:
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
      clear_refs.write("5")
  return sum(_status_bytes("VmRSS:", pid) for pid in pids)


def peak_bytes(pids) -> int:
  """Sum of the high-water marks (each process's own peak; an upper bound of the joint one)."""
  return sum(_status_bytes("VmHWM:", pid) for pid in pids)


def _factory(name: str, k: int):
  """The TFF factory of kernel ``name`` (a method or one of VARIANTS) for K = k."""
  from tff_residual.aggregators import RobustAggregationFactory
  method, params = VARIANTS.get(name, (name, {}))
  return RobustAggregationFactory(method, **params, **kernel_params(method, k))


TFF_WORKERS = "1"
"""``--workers`` of the TFF cells (as for experiments/run.py)."""


def _enter_tff_runtime() -> list[int]:
  """Enters an owned TFF runtime (``TFF_WORKERS`` workers) for the rest of this
  process; returns its workers' PIDs."""
  from tff_residual.entry import load_cli
  cli = load_cli()
  from tff_residual.runtime.managed import managed_tff_runtime
  num_workers, addresses = cli.parse_workers(TFF_WORKERS)
  runtime = managed_tff_runtime(num_workers=num_workers, workers=addresses)
  runtime.__enter__()
  return runtime.pids


def tff_call(name: str, values: list):
  """The kernel's TFF factory on the same values: one ``next`` with K clients.

  "tf.reduce_mean" stands for TFF's own ``UnweightedMeanFactory``. Returns the
  call and the PIDs of the owned TFF workers (the runtime lives as long as the process).
  """
  import tensorflow_federated as tff
  worker = _enter_tff_runtime()
  factory = (tff.aggregators.UnweightedMeanFactory() if name == "tf.reduce_mean"
             else _factory(name, int(values[0].shape[0])))
  value_type = tff.types.to_type([tff.TensorType(np.float32, [int(v.shape[1])]) for v in values])
  process = factory.create(value_type)
  state = process.initialize()
  client_values = [[v[k].numpy() for v in values] for k in range(int(values[0].shape[0]))]
  return (lambda: process.next(state, client_values).result), worker


def tff_server_step(name: str, values: list):
  """The kernel alone inside TFF's worker, timed in the graph (see the module docstring).

  Returns a call that sends the stack to the worker, runs the kernel there once
  and returns the seconds between ``tf.timestamp()`` ops placed after the input
  and after every output; and the workers' PIDs.
  """
  import tensorflow_federated as tff
  worker = _enter_tff_runtime()
  factory = _factory(name, int(values[0].shape[0]))
  kernel = factory.kernel  # the factory's own kernel
  from tff_residual.aggregators.robust_factory import kernel_gets_one_matrix
  stack = [v.numpy() for v in values]
  value_type = tff.types.to_type([tff.TensorType(np.float32, [m.shape[1]]) for m in stack])
  if kernel_gets_one_matrix(factory.resolved, value_type):
    stack = [np.concatenate(stack, axis=1)]  # as the factory feeds its kernel
  stacked_type = [tff.TensorType(np.float32, [None, int(v.shape[1])]) for v in stack]

  @tff.tensorflow.computation(stacked_type)
  def timed(stack):
    stack = list(stack)
    with tf.control_dependencies(stack):
      start = tf.timestamp()
    with tf.control_dependencies([start]):
      inputs = [tf.identity(matrix) for matrix in stack]
    output = kernel(inputs, None)
    # Identities of the outputs: with control dependencies on the kernel's own
    # output tensors, the second timestamp ran before the kernel, or the kernel
    # did not run at all (measured in a plain tf.function).
    done = [tf.identity(t) for t in (*output.aggregate, output.client_weights,
                                     output.corrected_fraction, output.num_dropped_clients)]
    with tf.control_dependencies(done):
      return tf.timestamp() - start

  return (lambda: float(timed(stack))), worker


HUGE_VALUE = 1e20
"""``--huge_client``: client 0's value in every coordinate (its squares overflow float32)."""


def measure(name: str, size: str, k: int, repeats: int, budget: float, seed: int,
            path: str = "eager", huge_client: bool = False) -> dict:
  """Seconds (median) and peak RSS above the input of one cell (in a fresh process,
  except the eager cells of --quick)."""
  values = [tf.random.stateless_normal([k, n], seed=[seed, i], dtype=tf.float32)
            for i, n in enumerate(model_shapes(size))]
  if huge_client:
    values = [tf.concat([tf.fill([1, int(v.shape[1])], HUGE_VALUE), v[1:]], axis=0)
              for v in values]
  pids = ["self"]
  if path in ("tff", "tff_server"):
    call, workers = (tff_call if path == "tff" else tff_server_step)(name, values)
    pids += [str(pid) for pid in workers]
  elif name == "tf.reduce_mean":
    mean_fn = tf.function(lambda xs: [tf.reduce_mean(x, axis=0) for x in xs])
    call = lambda: [a.numpy() for a in mean_fn(values)]
  else:
    method, params = VARIANTS.get(name, (name, {}))
    kernel = method_table.build_kernel(method, **params, **kernel_params(method, k))
    call = lambda: [a.numpy() for a in kernel(values, None).aggregate]
  def timed_call() -> float:
    """Wall seconds of one call; for "tff_server" the seconds timed inside the graph."""
    start = time.perf_counter()
    in_graph = call()
    return in_graph if path == "tff_server" else time.perf_counter() - start

  before = reset_peak(pids)
  first = timed_call()
  times = [first]
  if first <= budget:
    times = []
    before = reset_peak(pids)  # the repeats' peak: without tracing and XLA compilation
    for _ in range(repeats):
      times.append(timed_call())
  peak = peak_bytes(pids)
  return {"seconds": statistics.median(times), "peak_bytes": max(peak - before, 0),
          "single": first > budget}


def run_isolated(name: str, n: str, k: int, args, path: str = "eager") -> dict:
  command = [sys.executable, os.path.abspath(__file__), "--worker", name, "--sizes", str(n),
             "--clients", str(k), "--repeats", str(args.repeats), "--budget", str(args.budget),
             "--seed", str(args.seed), "--worker_path", path, "--workers", args.workers]
  if args.huge_client:
    command.append("--huge_client")
  proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  if proc.returncode != 0:
    raise RuntimeError(f"{name} N={n} K={k} failed:\n{proc.stderr[-2000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true",
                      help="N = 1e5, K in {10, 30} only, eager cells in this one process")
  parser.add_argument("--sizes", default="100000,1000000,resnet18")
  parser.add_argument("--clients", default="10,30,100")
  parser.add_argument("--kernels", default=",".join(KERNELS))
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--budget", type=float, default=120.0,
                      help="seconds; a slower warm-up run is reported once, not repeated")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--tff", default="",
                      help="comma-separated kernels also measured through their TFF factory "
                           "(one AggregationProcess.next on the same values)")
  parser.add_argument("--workers", default="1",
                      help="TFF workers of the --tff cells: N local, or host:port,... (as "
                           "experiments/run.py --workers)")
  parser.add_argument("--huge_client", action="store_true",
                      help=f"client 0 sends {HUGE_VALUE:g} in every coordinate: times the "
                           "overflow-safe paths of the distance-based rules (scaled Gram, the "
                           "medoid as centre)")
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--worker_path", default="eager", help=argparse.SUPPRESS)
  args = parser.parse_args()
  global TFF_WORKERS
  TFF_WORKERS = args.workers
  if args.worker:
    print(json.dumps(measure(args.worker, args.sizes, int(args.clients), args.repeats,
                             args.budget, args.seed, args.worker_path, args.huge_client)))
    return
  sizes = args.sizes.split(",")
  clients = [int(k) for k in args.clients.split(",")]
  if args.quick:
    sizes, clients = ["100000"], [10, 30]
  kernels = args.kernels.split(",")
  tff_kernels = [name for name in args.tff.split(",") if name]
  for name in tff_kernels:
    if name not in kernels:
      parser.error(f"--tff kernel {name!r} is not among --kernels")
  for name in kernels:
    if name in VARIANTS:
      continue
    try:
      method_table.parse(name)
    except ValueError as error:
      parser.error(f"unknown kernel {name!r}: {error} (or one of {sorted(VARIANTS)})")

  where = ("eager cells in this process (peak MB: growth above what earlier cells left "
           "allocated), TFF cells each in a fresh process" if args.quick
           else "each cell in a fresh process")
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, "
        f"float32, median of {args.repeats} runs after 1 warm-up run; {where}; peak MB = RSS "
        f"high-water mark of the timed runs minus RSS with the input [K, N] held; TFF cells "
        f"on {args.workers} worker(s)"
        + (f"; client 0 at {HUGE_VALUE:g} in every coordinate" if args.huge_client else ""))
  header = f"| {'N':>9} | {'K':>4} | {'kernel':<28} | {'seconds':>9} | {'x mean':>8} | {'peak MB':>8} |"
  print(header)
  print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
  for n in sizes:
    for k in clients:
      mean_seconds = None
      runs = [(name, "eager") for name in ("tf.reduce_mean", *kernels)]
      if tff_kernels:
        runs += [("tf.reduce_mean", "tff")]
        runs += [(name, path) for name in tff_kernels for path in ("tff", "tff_server")]
      for name, path in runs:
        if args.quick and path == "eager":  # no fresh process (TF import) per cell
          result = measure(name, n, k, args.repeats, args.budget, args.seed,
                           huge_client=args.huge_client)
        else:
          result = run_isolated(name, n, k, args, path)
        seconds, peak, single = result["seconds"], result["peak_bytes"], result["single"]
        mean_seconds = mean_seconds or seconds
        mark = "*" if single else " "
        label = {"eager": name, "tff": f"{name} (TFF)",
                 "tff_server": f"{name} (TFF server step)"}[path]
        if name == "tf.reduce_mean" and path == "tff":
          label = "MeanFactory (TFF)"
        print(f"| {size_label(n):>9} | {k:>4} | {label:<28} | {seconds:>8.4f}{mark}| "
              f"{seconds / mean_seconds:>8.0f} | {peak / 2**20:>8.0f} |", flush=True)
  print("* single run: the warm-up exceeded --budget, not repeated")


def size_label(size: str) -> str:
  return size if size == "resnet18" else str(int(float(size)))


if __name__ == "__main__":
  main()
