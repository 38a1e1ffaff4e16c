"""LendingClub loans (the paper's LOAN): loan status from tabular features, one
client per US state, LoanNet.

Data: ``--data_path`` to any LendingClub CSV (optionally ``.gz``): Kaggle's
``loan.csv`` (145 columns), the older 74-column export, LoanStats files, e.g.
the samples in ``../shared/data/loan/``. It needs ``addr_state`` and the label
column (``--label_column``, default ``loan_status``, whatever classes it has).
Without ``--data_path`` a deterministic synthetic table with LendingClub's
columns is generated (``data_source: synthetic``; the run says so).

Preprocessing (reference ``loan_preprocess.py``, docs/reference_differences.md §4.3),
adapted to the columns present:
1. drop the reference's 52 columns (ids, dates, free text, hardship/settlement/
   joint fields) where present;
2. ``fillna(0)``; object columns whose values are all numbers (after
   stripping a ``%``, as ``revol_util`` in LoanStats files) become numbers
   (an adaptation: the reference's file had none);
3. every other object column is label-encoded 0..n-1 in order of first
   appearance; the label likewise (numeric labels: sorted);
4. numeric columns are divided by 10, 100 or 10,000 when their mean lies in
   (10, 100], (100, 1000] or above 1000;
5. ``addr_state``'s code / 100 stays an input feature (constant per client).
``--feature_scaling=standardize`` (ours; default ``reference``) then maps
every feature to (x - mean) / std with the training rows' statistics: the
reference's scaling leaves standard deviations from 0.11 to 19 (the 2018 file
of ../shared/data), on which LoanNet's SGD barely leaves the majority class.
80% train / 20% test (seeded); clients are the states of the training rows
(``by_key`` partition: a seeded shuffle of the states, the first
``num_clients``).

Backdoor (reference ``backdoor_loan_feat``): the trigger features
(``--trigger_features``, default the paper's six) get the reference's
values in the preprocessed space (standardized like the data under
``--feature_scaling=standardize``) (pub_rec_bankruptcies 20, num_tl_120dpd_2m
10, acc_now_delinq 20, pub_rec 100, tax_liens 100, num_tl_90g_dpd_24m 80;
other features: 2 max + 1). Features the file lacks are skipped with a
notice; with none of them a ``DataError`` names the flag. Target: the paper's
"Does not meet the credit policy. Status:Fully Paid" if the file has it, else
the least frequent class (the paper's target is rare; a majority-class target
would make the success rate measure the class prior), or ``--backdoor_target``.
Label flip: code 0 -> code 1 (the reference's "Current" -> "Fully Paid").
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tff_residual.tasks.base import (UNREADABLE_FILE_ERRORS, Arrays, AttackTargets, DataError,
                                     DataSettings, ModelSpec, TargetSettings, TaskData, TaskFamily, Trigger)

DROPPED_COLUMNS = (
    "id", "member_id", "emp_title", "issue_d", "zip_code", "emp_length", "title",
    "earliest_cr_line", "last_pymnt_d", "hardship_start_date", "desc", "hardship_end_date",
    "payment_plan_start_date", "next_pymnt_d", "settlement_date", "last_credit_pull_d",
    "debt_settlement_flag_date", "sec_app_earliest_cr_line",
    "url", "mths_since_last_delinq", "mths_since_last_major_derog", "mths_since_last_record",
    "annual_inc_joint", "dti_joint", "verification_status_joint", "mths_since_recent_bc_dlq",
    "mths_since_recent_revol_delinq", "revol_bal_joint", "sec_app_inq_last_6mths",
    "sec_app_mort_acc", "sec_app_open_acc", "sec_app_revol_util", "sec_app_open_act_il",
    "sec_app_num_rev_accts", "sec_app_chargeoff_within_12_mths",
    "sec_app_collections_12_mths_ex_med", "sec_app_mths_since_last_major_derog", "hardship_type",
    "hardship_reason", "hardship_status", "deferral_term", "hardship_amount", "hardship_length",
    "hardship_dpd", "hardship_loan_status", "orig_projected_additional_accrued_interest",
    "hardship_payoff_balance_amount", "hardship_last_payment_amount", "settlement_status",
    "settlement_amount", "settlement_percentage", "settlement_term",
)
STATE_COLUMN = "addr_state"
TRIGGER_VALUES = {"pub_rec_bankruptcies": 20.0, "num_tl_120dpd_2m": 10.0, "acc_now_delinq": 20.0,
                  "pub_rec": 100.0, "tax_liens": 100.0, "num_tl_90g_dpd_24m": 80.0}
DEFAULT_TRIGGER_FEATURES = tuple(TRIGGER_VALUES)
PAPER_TARGET = "Does not meet the credit policy. Status:Fully Paid"
STATUSES = ("Current", "Fully Paid", "Late (31-120 days)", "In Grace Period", "Charged Off",
            "Late (16-30 days)", "Default", "Does not meet the credit policy. Status:Fully Paid",
            "Does not meet the credit policy. Status:Charged Off")

_SETUP = dict(num_clients=10, clients_per_round=0, partition="by_key", model="loannet",
              rounds=100, attacker_lr_multiplier=0.2)
DEFAULTS = {
    "*": {"paper": _SETUP, "cpu": dict(rounds=30)},
    "none": {"paper": dict(num_attackers=0), "smoke": dict(num_attackers=0)},
    "mix_rate": {"paper": dict(num_attackers=4, attacker_epochs=7),
                 "smoke": dict(attacker_epochs=2)},
}


def read_table(path: str, label_column: str):
  """The CSV as a DataFrame, checked for ``addr_state`` and the label column."""
  import os
  import pandas as pd
  if not os.path.isfile(path):
    raise DataError(f"--data_path {path} does not exist.")
  try:
    frame = pd.read_csv(path, low_memory=False)
  except (pd.errors.ParserError, pd.errors.EmptyDataError, *UNREADABLE_FILE_ERRORS) as error:
    raise DataError(f"cannot read {path} as CSV: {str(error).splitlines()[0]}") from None
  missing = [c for c in (STATE_COLUMN, label_column) if c not in frame.columns]
  if missing:
    hint = " (set --label_column)" if label_column in missing else ""
    raise DataError(f"{path} lacks the column(s) {missing}{hint}; a LendingClub CSV needs "
                    f"{STATE_COLUMN} and the label column.")
  frame = frame.dropna(subset=[STATE_COLUMN, label_column])
  if len(frame) < 10:
    raise DataError(f"{path}: {len(frame)} rows with {STATE_COLUMN} and {label_column}; need 10.")
  return frame


def preprocess(frame, label_column: str):
  """(features float32 [n, d], feature names, labels int64 [n], class names, states [n])."""
  import pandas as pd
  states = frame[STATE_COLUMN].astype(str).to_numpy()
  label_values = frame[label_column]
  if pd.api.types.is_numeric_dtype(label_values):
    classes = sorted(label_values.unique().tolist())
    labels = label_values.map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
  else:
    codes, uniques = pd.factorize(label_values.astype(str))
    labels, classes = codes.astype(np.int64), list(uniques)
  features = frame.drop(columns=[c for c in DROPPED_COLUMNS if c in frame.columns] + [label_column])
  features = features.fillna(0)
  columns = {}
  for name in features.columns:
    column = features[name]
    if name == STATE_COLUMN:
      columns[name] = pd.factorize(column.astype(str))[0] / 100.0
      continue
    if column.dtype == object:
      numeric = pd.to_numeric(column.astype(str).str.strip().str.rstrip("%"), errors="coerce")
      if numeric.notna().all():
        column = numeric
      else:
        columns[name] = pd.factorize(column.astype(str))[0].astype(np.float64)
        continue
    column = column.astype(np.float64)
    mean = column.mean()
    divisor = 1e4 if mean > 1000 else (100.0 if mean > 100 else (10.0 if mean > 10 else 1.0))
    columns[name] = column / divisor
  table = pd.DataFrame(columns)
  return (table.to_numpy(np.float32), list(table.columns), labels, [str(c) for c in classes],
          states)


# Loans per state in the LendingClub 2018 file of ../shared/data/loan (31,766 loans, 50 states;
# CA's share 14.5% there, 13.9% in the paper's file); IA, missing there, has the paper's 12
# training loans (15 in all).
STATE_LOANS_2018 = {
    "CA": 4606, "TX": 2628, "FL": 2491, "NY": 2441, "GA": 1028, "IL": 1027, "PA": 1016,
    "NJ": 1015, "NC": 967, "OH": 895, "MI": 879, "AZ": 859, "VA": 849, "CO": 781, "MD": 765,
    "MA": 750, "WA": 660, "NV": 590, "MN": 558, "IN": 528, "TN": 492, "MO": 472, "CT": 428,
    "WI": 421, "AL": 395, "SC": 392, "OR": 385, "OK": 320, "LA": 314, "UT": 306, "KY": 275,
    "AR": 210, "KS": 201, "MS": 198, "NM": 157, "NE": 151, "HI": 142, "NH": 142, "ID": 141,
    "WV": 138, "RI": 128, "MT": 106, "ME": 88, "DE": 87, "DC": 67, "ND": 67, "WY": 56, "VT": 53,
    "AK": 52, "SD": 49}
PAPER_LOANS = 2_260_668
"""Rows of the paper's ``loan.csv`` (its 80% training part is the 1,808,534 the paper quotes)."""
SYNTHETIC_ROWS_PER_STATE_CAP = 4000
"""Rows per state at most in the synthetic table: a client then trains on 0.8 x 0.7 x 4,000 =
2,240 rows, more than the code's 31 batches x 64 = 1,984 per epoch, as nearly every state of the
paper's file does (its smallest but IA holds ~2,800 training rows); the cap only saves time."""
SYNTHETIC_FEATURE_NOISE = 0.08
"""Share of synthetic rows whose features are drawn for another (random) status than their
label, so that no model exceeds ~95% accuracy (the paper's best LOAN accuracy is 95.06%)."""
STATUS_SHARES = np.array([735793, 833741, 17485, 7127, 209155, 2998, 26, 1596, 613], float)
"""Training rows per status in the paper's file (reference ``LoanHelper``), in ``STATUSES`` order."""


def synthetic_state_rows() -> dict[str, int]:
  """Rows per state of the synthetic table: the state's share of the paper's 2.26 M loans
  (shares of the 2018 file; IA: 15), capped at ``SYNTHETIC_ROWS_PER_STATE_CAP``."""
  total = sum(STATE_LOANS_2018.values())
  rows = {state: min(SYNTHETIC_ROWS_PER_STATE_CAP, round(count / total * PAPER_LOANS))
          for state, count in STATE_LOANS_2018.items()}
  rows["IA"] = 15
  return rows


def synthetic_table(seed: int = 0):
  """A deterministic LendingClub-like table that stands in for the paper's file.

  * States: the 51 of the paper's file, each with ``synthetic_state_rows()``
    rows (4,000 for 46 states, WY, VT, AK and SD 3,985-3,487, IA 15), so that
    the 10 clients of a run train on as much data as the paper's do under the
    code's 31-batch cap (SD's 1,952 training rows fill 30 batches of 64).
  * Labels: the paper's 9 statuses with its class shares (``STATUS_SHARES``),
    encoded in the reference's order, the same shares in every state.
  * Features depend on the status (recoveries for charged-off and default
    loans, late fees for late ones, outstanding principal for current ones,
    ...), so the status is learnable; ``SYNTHETIC_FEATURE_NOISE`` of the rows
    get the features of another status, which bounds accuracy near the
    paper's. The six backdoor features are present, rare as in LendingClub.
  """
  import pandas as pd
  rng = np.random.default_rng(seed)
  state_rows = synthetic_state_rows()
  # States in a seeded order (a file's rows are not grouped by state).
  state = rng.permutation(np.repeat(np.array(list(state_rows)), list(state_rows.values())))
  rows = len(state)
  shares = STATUS_SHARES / STATUS_SHARES.sum()
  status = rng.choice(len(STATUSES), size=rows, p=shares)
  # Every status at least 20 times, first seen in the reference's order (so codes match it).
  status[:20 * len(STATUSES)] = np.tile(np.arange(len(STATUSES)), 20)
  shown = np.where(rng.random(rows) < SYNTHETIC_FEATURE_NOISE,
                   rng.choice(len(STATUSES), size=rows, p=shares), status)
  charged = np.isin(shown, [4, 6, 8])
  late = np.isin(shown, [2, 3, 5])
  open_loan = np.isin(shown, [0, 2, 3, 5])
  grade = np.clip(rng.normal(2 + 1.5 * charged + late, 1.2), 0, 6).round().astype(int)
  amount = rng.integers(10, 400, rows) * 100.0
  paid_share = np.where(open_loan, rng.uniform(0.1, 0.8, rows),
                        np.where(charged, rng.uniform(0.05, 0.6, rows), rng.uniform(1.0, 1.3, rows)))
  frame = pd.DataFrame({
      "id": np.arange(rows) + 1_000_000,
      "loan_amnt": amount,
      "term": np.where(rng.random(rows) < 0.7, " 36 months", " 60 months"),
      "int_rate": 6.0 + 3.0 * grade + rng.normal(0, 1, rows),
      "grade": np.array(list("ABCDEFG"))[grade],
      "emp_length": rng.choice(["< 1 year", "1 year", "5 years", "10+ years"], rows),
      "home_ownership": rng.choice(["RENT", "MORTGAGE", "OWN"], rows),
      "annual_inc": np.round(rng.lognormal(11, 0.5, rows), -2),
      "verification_status": rng.choice(["Verified", "Not Verified", "Source Verified"], rows),
      "issue_d": rng.choice(["Dec-2015", "Jan-2016", "Mar-2017"], rows),
      "loan_status": np.array(STATUSES)[status],
      "purpose": rng.choice(["debt_consolidation", "credit_card", "home_improvement"], rows),
      STATE_COLUMN: state,
      "dti": np.clip(rng.normal(18 + 4 * charged, 8, rows), 0, None),
      "delinq_2yrs": rng.poisson(0.3 + 0.5 * late, rows),
      "inq_last_6mths": rng.poisson(0.7 + 0.5 * charged, rows),
      "open_acc": rng.poisson(11, rows),
      "pub_rec": rng.poisson(0.2, rows),
      "revol_bal": np.round(rng.lognormal(9.5, 1.0, rows)),
      "revol_util": np.clip(rng.normal(50 + 10 * charged, 20, rows), 0, 100),
      "total_acc": rng.poisson(25, rows),
      "out_prncp": np.where(open_loan, amount * (1 - np.minimum(paid_share, 1)), 0.0),
      "total_pymnt": amount * paid_share,
      "total_rec_late_fee": np.where(late, rng.uniform(15, 60, rows), 0.0),
      "recoveries": np.where(charged, amount * rng.uniform(0.01, 0.1, rows), 0.0),
      "last_pymnt_amnt": np.where(shown == 1, amount * rng.uniform(0.2, 1.0, rows),
                                  amount * rng.uniform(0.01, 0.05, rows)),
      "acc_now_delinq": (rng.random(rows) < 0.005 + 0.05 * late).astype(int),
      "tax_liens": rng.poisson(0.05, rows),
      "pub_rec_bankruptcies": rng.poisson(0.12, rows),
      "num_tl_120dpd_2m": (rng.random(rows) < 0.002 + 0.03 * late).astype(int),
      "num_tl_90g_dpd_24m": rng.poisson(0.08 + 0.3 * late, rows),
  })
  return frame


def load(settings: DataSettings) -> TaskData:
  notices = []
  if settings.data_path:
    frame = read_table(settings.data_path, settings.label_column)
    source = f"loan from {settings.data_path}"
  else:
    if settings.label_column != "loan_status":
      raise DataError("--label_column applies to --data_path files; the synthetic table's label "
                      "is loan_status.")
    frame = synthetic_table()
    source = "synthetic"
    notices.append(f"data: no --data_path given; using a SYNTHETIC LendingClub-like table "
                   f"({len(frame)} rows, 51 states of up to {SYNTHETIC_ROWS_PER_STATE_CAP} rows, "
                   "the paper's 9 statuses and their shares). Pass --data_path (e.g. ../shared/data/loan/"
                   "lendingclub_2018_creditmodel_31766x55.csv.gz) for real loans.")
  x, names, y, classes, states = preprocess(frame, settings.label_column)
  if len(classes) < 2:
    raise DataError(f"{source}: the label column has one class ({classes}); need at least 2.")
  order = np.random.default_rng(settings.seed).permutation(len(y))
  cut = int(0.8 * len(y))
  train_idx, test_idx = np.sort(order[:cut]), np.sort(order[cut:])
  scaling = None
  if settings.feature_scaling == "standardize":
    scaling = FeatureScaling.of(x[train_idx])
    x = scaling.apply(x)
  return TaskData(Arrays(x[train_idx], y[train_idx]), Arrays(x[test_idx], y[test_idx]),
                  len(classes), classes, source, notices, client_keys=states[train_idx],
                  feature_names=names, feature_scaling=scaling)


def build_model(name: str, data: TaskData, seed: int) -> ModelSpec:
  """LoanNet: Linear in->46, Dropout 0.5, ReLU; Linear 46->23, Dropout 0.5, ReLU; Linear 23->classes.

  Dropout is ``SeededDropout``, so training repeats exactly from the run's seed.
  """
  if name != "loannet":
    raise DataError(f"--model={name} is not offered here; expected ['loannet'].")
  num_features = data.train.x.shape[1]

  def build():
    import tensorflow as tf
    from tff_residual.tasks.layers import SeededDropout
    layers = tf.keras.layers
    return tf.keras.Sequential([
        layers.InputLayer(input_shape=(num_features,)),
        layers.Dense(46), SeededDropout(0.5), layers.ReLU(),
        layers.Dense(23), SeededDropout(0.5), layers.ReLU(),
        layers.Dense(data.num_classes)])
  return ModelSpec(name, build, "sparse_categorical")


def backdoor_target(classes: list[str], labels: np.ndarray) -> tuple[int, str]:
  """The class closest to the paper's target, and why it was chosen.

  The paper's target, "Does not meet the credit policy. Status:Fully Paid", if
  the file has it; else the least frequent class: the paper's target is a rare
  class (0.09% of its data), and with a majority class as target the attack
  success rate would measure the class prior rather than the backdoor.
  """
  if PAPER_TARGET in classes:
    return classes.index(PAPER_TARGET), f"'{PAPER_TARGET}' (the paper's target)"
  counts = np.bincount(labels, minlength=len(classes))
  rarest = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
  return rarest, (f"'{classes[rarest]}', the least frequent class in training (the file lacks the "
                  "paper's target, a rare class)")


FEATURE_SCALINGS = ("reference", "standardize")


@dataclasses.dataclass(frozen=True)
class FeatureScaling:
  """x -> (x - mean) / std per feature (std 0 -> 1), from the training rows."""

  mean: np.ndarray
  std: np.ndarray

  @classmethod
  def of(cls, train_x: np.ndarray) -> "FeatureScaling":
    std = train_x.std(axis=0, dtype=np.float64)
    return cls(train_x.mean(axis=0, dtype=np.float64), np.where(std > 0, std, 1.0))

  def apply(self, x: np.ndarray) -> np.ndarray:
    return ((x - self.mean) / self.std).astype(np.float32)


def trigger(names: list[str], train_x: np.ndarray, wanted,
            scaling: FeatureScaling | None = None) -> tuple[Trigger, list[str]]:
  """The backdoor trigger over the present ``wanted`` features, and the missing ones.

  Values are the reference's (preprocessed space), or 2 max|x| + 1 of the
  training rows for other features; with ``scaling`` the reference's values
  are standardized like the data."""
  present = [f for f in wanted if f in names]
  missing = [f for f in wanted if f not in names]
  if not present:
    raise DataError(f"none of the trigger features {list(wanted)} is in the file; choose "
                    "columns it has with --trigger_features.")
  mask = np.zeros(len(names), bool)
  pattern = np.zeros(len(names), np.float32)
  values = {}
  for feature in present:
    column = names.index(feature)
    mask[column] = True
    if feature in TRIGGER_VALUES:
      value = TRIGGER_VALUES[feature]
      if scaling is not None:
        value = float((value - scaling.mean[column]) / scaling.std[column])
    else:
      value = 2.0 * float(np.abs(train_x[:, column]).max()) + 1.0
    values[feature] = round(value, 4)
    pattern[column] = value
  return Trigger(mask, pattern, f"features {values} (preprocessed values)"), missing


def attack_targets(settings: TargetSettings, data: TaskData) -> AttackTargets:
  source = 0 if settings.source_label is None else settings.source_label
  target = 1 if settings.target_label is None else settings.target_label
  if settings.backdoor_target is None:
    backdoor, why = backdoor_target(data.class_names, data.train.y)
  else:
    backdoor, why = settings.backdoor_target, "--backdoor_target"
  for name, label in (("--source_label", source), ("--target_label", target),
                      ("--backdoor_target", backdoor)):
    if not 0 <= int(label) < data.num_classes:
      raise DataError(f"{name}={label} is not a class of this file (0..{data.num_classes - 1}: "
                      f"{data.class_names}).")
  trigger_, notices = None, []
  if settings.needs_trigger:
    trigger_, missing = trigger(data.feature_names, data.train.x, settings.trigger_features,
                                data.feature_scaling)
    if missing:
      notices.append(f"backdoor: the file lacks trigger feature(s) {missing}; using "
                     f"{[f for f in settings.trigger_features if f not in missing]}.")
    notices.append(f"backdoor target: class {backdoor} = {why}.")
  return AttackTargets(int(source), int(target), int(backdoor), trigger_, tuple(notices))


FAMILY = TaskFamily(
    name="loan", attacks=("none", "label_flip", "backdoor", "model_replacement", "gaussian",
                          "mix_rate"),
    models=("loannet",), defaults=DEFAULTS, load=load, build_model=build_model,
    attack_targets=attack_targets,
    description="LendingClub loan status, one client per state, LoanNet (--data_path CSV, "
                "else synthetic)")
