"""Attack wrappers: exact effects on batches and updates, success rates, seeds."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tff_residual.attacks.backdoor import Backdoor
from tff_residual.attacks.base import Attack, UpdateContext
from tff_residual.attacks.gaussian import MultiplicativeNoise
from tff_residual.attacks.label_flip import LabelFlip
from tff_residual.attacks.mix_rate import BlendWithHonest
from tff_residual.attacks.model_replacement import ScaleUpdate
from tff_residual.tasks import fmnist, loan
from tff_residual.tasks.images import trigger


def context(round_index=0, global_weights=None, honest=(), seed=0):
  return UpdateContext(round_index, global_weights or [], list(honest), np.random.default_rng(seed))


def test_label_flip_source_to_target_only():
  flip = LabelFlip(1, 7, 10)
  x = tf.zeros([6, 2])
  _, y = flip.poison_batch(x, tf.constant([0, 1, 7, 1, 9, 2], tf.int32))
  assert y.numpy().tolist() == [0, 7, 7, 7, 9, 2]
  assert flip.flip(np.array([1, 3])).tolist() == [7, 3]


def test_label_flip_all_labels_and_success_rate():
  flip = LabelFlip(None, None, 2)
  _, y = flip.poison_batch(tf.zeros([3, 1]), tf.constant([0, 1, 1]))
  assert y.numpy().tolist() == [1, 0, 0]
  labels = np.array([0, 1, 1, 0])
  # a model predicting 1 everywhere gets the two 0s flipped -> 2 of 4
  assert flip.success_rate(lambda x: np.ones(len(x), int), np.zeros((4, 1)), labels) == 0.5


def test_label_flip_success_rate_counts_source_examples_only():
  flip = LabelFlip(1, 7, 10)
  y = np.array([1, 1, 1, 1, 5, 5])
  predictions = np.array([7, 7, 1, 3, 7, 7])       # the 5s predicted as 7 must not count
  assert flip.success_rate(lambda x: predictions[x[:, 0]], np.arange(6)[:, None], y) == 0.5


def test_image_trigger_reference_and_white_values():
  reference = trigger(fmnist.SPEC, "reference")
  assert reference.mask.sum() == 12
  assert reference.mask[0, :7].tolist() == [True, True, True, False, True, True, True]
  assert reference.mask[1].sum() == 0 and reference.mask[2, :7].sum() == 6
  # 1.0 after Normalize(mean, std) is raw (mean + std) * 255 = (0.2860 + 0.3530) * 255 = 163
  assert set(reference.pattern[reference.mask].tolist()) == {163.0}
  assert set(trigger(fmnist.SPEC, "white").pattern[reference.mask].tolist()) == {255.0}


def test_backdoor_poisons_exactly_the_first_examples_of_a_batch():
  stamp = trigger(fmnist.SPEC, "white")
  backdoor = Backdoor(stamp, target=2, per_batch=3)
  x = np.full((5, 28, 28), 7, np.uint8)
  y = np.array([0, 1, 3, 4, 5], np.int32)
  px, py = backdoor.poison_batch(tf.constant(x), tf.constant(y))
  px = px.numpy()
  assert py.numpy().tolist() == [2, 2, 2, 4, 5]
  assert np.all(px[:3][:, stamp.mask] == 255) and np.all(px[:3][:, ~stamp.mask] == 7)
  assert np.all(px[3:] == 7)
  # a batch shorter than per_batch is poisoned entirely
  _, short_y = backdoor.poison_batch(tf.constant(x[:2]), tf.constant(y[:2]))
  assert short_y.numpy().tolist() == [2, 2]


def test_backdoor_success_rate_excludes_target_class_and_uses_the_trigger():
  stamp = trigger(fmnist.SPEC, "white")
  backdoor = Backdoor(stamp, target=2, per_batch=20)
  x = np.zeros((4, 28, 28), np.uint8)
  y = np.array([2, 0, 1, 3])
  # predicts the target iff the trigger is present: every non-target example counts
  predict = lambda images: np.where(images[:, 0, 0] == 255, 2, 0)
  assert backdoor.success_rate(predict, x, y) == 1.0
  assert backdoor.success_rate(lambda images: np.zeros(len(images), int), x, y) == 0.0


def test_loan_trigger_values_and_missing_features():
  names = ["loan_amnt", "pub_rec", "custom"]
  train_x = np.array([[1.0, 2.0, -3.0], [2.0, 0.0, 1.0]], np.float32)
  stamp, missing = loan.trigger(names, train_x, ("pub_rec", "tax_liens", "custom"))
  assert missing == ["tax_liens"]
  assert stamp.mask.tolist() == [False, True, True]
  assert stamp.pattern.tolist() == [0.0, 100.0, 7.0]     # reference value; 2 max|x| + 1
  with pytest.raises(ValueError, match="--trigger_features"):
    loan.trigger(names, train_x, ("tax_liens",))


def test_loan_trigger_follows_the_standardized_features():
  names = ["loan_amnt", "pub_rec", "custom"]
  raw = np.array([[1.0, 2.0, -3.0], [3.0, 0.0, 1.0], [2.0, 1.0, 2.0]], np.float32)
  scaling = loan.FeatureScaling.of(raw)
  train_x = scaling.apply(raw)
  np.testing.assert_allclose(train_x.mean(axis=0), 0, atol=1e-6)
  np.testing.assert_allclose(train_x.std(axis=0), 1, atol=1e-6)
  stamp, _ = loan.trigger(names, train_x, ("pub_rec", "custom"), scaling)
  # pub_rec's reference value 100 in z-units of pub_rec (mean 1, std sqrt(2/3)).
  assert stamp.pattern[1] == pytest.approx((100.0 - 1.0) / np.sqrt(2 / 3), rel=1e-6)
  assert stamp.pattern[2] == pytest.approx(2 * np.abs(train_x[:, 2]).max() + 1, rel=1e-6)
  constant = loan.FeatureScaling.of(np.ones((4, 2), np.float32))
  assert constant.std.tolist() == [1.0, 1.0]      # a constant feature is only centred


def test_scale_update():
  update = [np.array([1.0, -2.0], np.float32), np.array(3.0, np.float32)]
  scaled = ScaleUpdate(100).poison_update(update, context())
  assert [s.tolist() for s in scaled] == [[100.0, -200.0], 300.0]
  assert scaled[0].dtype == np.float32


def test_multiplicative_noise_on_full_weights():
  g = [np.array([1.0, 2.0, 0.0], np.float64)]
  u = [np.array([0.5, -1.0, 0.0], np.float64)]
  noisy = MultiplicativeNoise(300).poison_update(u, context(global_weights=g, seed=5))
  n = np.random.default_rng(5).standard_normal(3)
  local = g[0] + u[0]
  np.testing.assert_allclose(g[0] + noisy[0], local * (1 + 3.0 * n))
  assert noisy[0][2] == 0.0                           # a zero weight stays zero
  np.testing.assert_array_equal(MultiplicativeNoise(0).poison_update(u, context(global_weights=g))[0],
                                u[0])


def test_mix_rate_blends_with_the_honest_estimate():
  honest = [[np.full(2000, 1.0, np.float32)] for _ in range(5)]
  poisoned = [np.full(2000, -50.0, np.float32)]
  blend = BlendWithHonest(0.3, "mean")
  out = blend.poison_update(poisoned, context(honest=honest, seed=1))[0]
  assert set(np.unique(out).tolist()) == {-50.0, 1.0}
  assert abs(np.mean(out == -50.0) - 0.3) < 0.03
  rerun = BlendWithHonest(0.3, "mean").poison_update(poisoned, context(honest=honest, seed=1))[0]
  np.testing.assert_array_equal(out, rerun)
  assert np.all(BlendWithHonest(1.0, "mean").poison_update(poisoned, context(honest=honest))[0] == -50)
  assert np.all(BlendWithHonest(0.0, "mean").poison_update(poisoned, context(honest=honest))[0] == 1)
  # no honest client in the round: nothing to blend with
  assert np.all(BlendWithHonest(0.3).poison_update(poisoned, context())[0] == -50)


def test_mix_rate_residual_estimate_resists_an_honest_outlier():
  rng = np.random.default_rng(0)
  honest = [[rng.normal(1.0, 0.01, 500).astype(np.float32)] for _ in range(9)]
  honest[0] = [np.full(500, 1000.0, np.float32)]
  out = BlendWithHonest(0.0, "residual").poison_update([np.zeros(500, np.float32)],
                                                        context(honest=honest))[0]
  assert np.all(np.abs(out - 1.0) < 0.1)


def test_attack_poisoning_rounds():
  single = Attack("model_replacement", poison_round=5)
  assert [single.poisons_in(r) for r in (4, 5, 6)] == [False, True, False]
  assert Attack("backdoor").poisons_in(123)


@pytest.mark.parametrize("make, message", [
    (lambda: LabelFlip(3, 3, 10), "both 3"),
    (lambda: Backdoor(trigger(fmnist.SPEC, "white"), 2, 0), "backdoor_per_batch"),
    (lambda: ScaleUpdate(0), "scale_factor"),
    (lambda: MultiplicativeNoise(-1), "noise_scale"),
    (lambda: BlendWithHonest(1.5), "mix_rate"),
    (lambda: trigger(fmnist.SPEC, "black"), "trigger_value"),
])
def test_bad_attack_parameters(make, message):
  with pytest.raises(ValueError, match=message):
    make()


def test_exactly_the_trigger_attacks_need_the_tasks_trigger():
  """``TRIGGER_ATTACKS`` is what tells a task to build its trigger: every attack
  that stamps one is in it, and no other attack is."""
  from task_helpers import make_config
  from tff_residual.attacks import ATTACKS, TRIGGER_ATTACKS, build_attack
  from tff_residual.tasks.base import AttackTargets
  config, _ = make_config("loan_backdoor")
  no_trigger = AttackTargets(0, 1, 1, None)
  needing = set()
  for name in ATTACKS:
    try:
      build_attack(name, config.attack_settings(), no_trigger, 2)
    except ValueError as error:
      assert "trigger" in str(error), (name, error)
      needing.add(name)
  assert needing == set(TRIGGER_ATTACKS) == {"backdoor", "model_replacement"}


@pytest.mark.parametrize("needs_trigger", [False, True])
def test_the_loan_task_builds_a_trigger_only_when_asked(needs_trigger):
  from task_helpers import make_config
  config, family = make_config("loan_label_flip")
  data = family.load(config.data_settings())
  settings = dataclasses.replace(config.target_settings(), needs_trigger=needs_trigger)
  targets = family.attack_targets(settings, data)
  assert (targets.trigger is not None) == needs_trigger
  assert any("backdoor target" in n for n in targets.notices) == needs_trigger
  assert config.target_settings().needs_trigger is False  # label flipping stamps no trigger
  assert make_config("loan_model_replacement")[0].target_settings().needs_trigger is True
