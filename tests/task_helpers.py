"""Helpers for the task and experiment tests: configs, and small data files in
the datasets' real formats."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import sqlite3

import numpy as np

from tff_residual.simulation.experiment_config import config_from_preset
from tff_residual.tasks.task_table import parse_task


def make_config(task: str, preset: str = "smoke", **overrides):
  family, attack = parse_task(task)
  base = dict(task=task, aggregators=("fedavg",), seed=0, data_path=None,
              label_column="loan_status",
              trigger_features=("num_tl_120dpd_2m", "num_tl_90g_dpd_24m", "pub_rec_bankruptcies",
                                "pub_rec", "acc_now_delinq", "tax_liens"),
              mix_honest="residual")
  base.update(overrides)
  return config_from_preset(family, attack, preset, base), family


def write_idx(path: str, array: np.ndarray) -> None:
  """LeCun's IDX format (uint8), gzip-compressed if ``path`` ends with .gz."""
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def image_arrays(n_train=200, n_test=50, shape=(28, 28), classes=10, seed=0):
  rng = np.random.default_rng(seed)
  y_train = np.arange(n_train) % classes
  y_test = np.arange(n_test) % classes
  x_train = rng.integers(0, 256, (n_train,) + shape).astype(np.uint8)
  x_test = rng.integers(0, 256, (n_test,) + shape).astype(np.uint8)
  return x_train, y_train.astype(np.uint8), x_test, y_test.astype(np.uint8)


def write_idx_directory(directory: str, gz: bool = True, **kwargs):
  x_train, y_train, x_test, y_test = image_arrays(**kwargs)
  suffix = ".gz" if gz else ""
  os.makedirs(directory, exist_ok=True)
  write_idx(os.path.join(directory, "train-images-idx3-ubyte" + suffix), x_train)
  write_idx(os.path.join(directory, "train-labels-idx1-ubyte" + suffix), y_train)
  write_idx(os.path.join(directory, "t10k-images-idx3-ubyte" + suffix), x_test)
  write_idx(os.path.join(directory, "t10k-labels-idx1-ubyte" + suffix), y_test)
  return x_train, y_train, x_test, y_test


def write_cifar_batches(directory: str, per_batch: int = 20):
  """CIFAR-10's python version: pickled dicts with b'data' [n, 3072] (CHW) and b'labels'."""
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(1)
  images = []
  for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    data = rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, per_batch)]
    with open(os.path.join(directory, name), "wb") as f:
      pickle.dump({b"data": data, b"labels": labels}, f)
    images.append(data)
  return images


def write_reviews(path: str, ratings, texts=None):
  """McAuley-format JSON lines (gzip if .gz)."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wt", encoding="utf-8") as f:
    for i, rating in enumerate(ratings):
      text = texts[i] if texts else ("great fun read" if rating >= 4 else "dull boring waste")
      f.write(json.dumps({"reviewerID": f"A{i}", "asin": f"B{i % 7}", "reviewText": text,
                          "overall": float(rating), "summary": text[:5],
                          "unixReviewTime": 1400000000 + i}) + "\n")


def write_emnist_sqlite(directory: str, writers=4, per_writer=12, test_per_writer=3):
  """A small database in the format of TFF's emnist_all.sqlite."""
  import tensorflow as tf
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, "emnist_all.sqlite")
  connection = sqlite3.connect(path)
  connection.execute("CREATE TABLE examples (split_name TEXT, client_id TEXT, "
                     "serialized_example_proto BLOB)")
  connection.execute("CREATE TABLE client_metadata (client_id TEXT, split_name TEXT, "
                     "num_examples INTEGER)")
  rng = np.random.default_rng(2)
  for w in range(writers):
    client = f"f{w:04d}_00"
    for split, count in (("digits_only_train", per_writer), ("digits_only_test", test_per_writer)):
      for i in range(count):
        pixels = rng.random((28, 28)).astype(np.float32)
        example = tf.train.Example(features=tf.train.Features(feature={
            "pixels": tf.train.Feature(float_list=tf.train.FloatList(value=pixels.reshape(-1))),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[(w + i) % 10])),
        }))
        connection.execute("INSERT INTO examples VALUES (?, ?, ?)",
                           (split, client, example.SerializeToString()))
      connection.execute("INSERT INTO client_metadata VALUES (?, ?, ?)", (client, split, count))
  connection.commit()
  connection.close()
  return path


LOAN_HEADER = ("id,loan_amnt,term,int_rate,grade,emp_length,annual_inc,loan_status,addr_state,"
               "revol_util,pub_rec,acc_now_delinq,tax_liens,desc")


def write_loan_csv(path: str, rows: int = 120, states=("CA", "NY", "TX", "WA", "FL", "IL"),
                   statuses=("Fully Paid", "Charged Off", "Current")):
  rng = np.random.default_rng(3)
  lines = [LOAN_HEADER]
  for i in range(rows):
    lines.append(",".join([
        str(1000 + i), str(int(rng.integers(1, 40)) * 1000), " 36 months",
        f"{rng.uniform(5, 25):.2f}", "ABC"[i % 3], "10+ years", f"{rng.uniform(2e4, 2e5):.0f}",
        statuses[i % len(statuses)], states[i % len(states)], f"{rng.uniform(0, 99):.1f}%",
        str(int(rng.integers(0, 3))), "0", "0", '"a free text, with comma"']))
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wt", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")


LOAN_LAYOUTS = {
    # The columns and value formats of the four LendingClub files of ../shared/data/loan
    # (written here, never copied): name -> (header, label column, row writer).
    "creditmodel_2018": (
        "id,issue_d,loan_status,total_rec_late_fee,grade,sub_grade,addr_state,all_util,"
        "annual_inc,dti,dti_joint,emp_length,emp_title,installment,mths_since_last_delinq,"
        "num_tl_90g_dpd_24m,purpose,term,zip_code",
        "loan_status",
        lambda i, bad, state, rng: [
            str(150000 + i), f"2018/{1 + i % 12}/1", str(int(bad)), f"{rng.uniform(0, 30):.1f}",
            "ABCDE"[i % 5], f"{'ABCDE'[i % 5]}{1 + i % 5}", state, str(int(rng.integers(0, 99))),
            f"{rng.uniform(2e4, 2e5):.1f}", f"{rng.uniform(0, 40):.2f}",
            "" if i % 7 else f"{rng.uniform(0, 40):.2f}", f"{i % 10} years",
            '"Manager, Operations"' if i % 3 else "Teacher", f"{rng.uniform(50, 1500):.2f}",
            "" if i % 4 else str(int(rng.integers(1, 80))), str(int(rng.integers(0, 2))),
            ["credit_card", "debt_consolidation", "home_improvement"][i % 3],
            ["36 months", "60 months"][i % 2], f"{100 + i % 800}xx"]),
    "modeldata_2016q1": (
        "funded_amnt,term,int_rate,sub_grade,addr_state,verification_status,annual_inc,"
        "emp_length,delinq_2yrs,inq_last_6mths,revol_util,acc_now_delinq,all_util,Class",
        "Class",
        lambda i, bad, state, rng: [
            str(int(rng.integers(1, 40)) * 1000), ["term_36", "term_60"][i % 2],
            f"{rng.uniform(5, 25):.2f}", f"{'ABCDE'[i % 5]}{1 + i % 5}", state,
            ["Verified", "Not_Verified", "Source_Verified"][i % 3], f"{rng.uniform(2e4, 2e5):.1f}",
            ["emp_5", "emp_ge_10", "emp_lt_1"][i % 3], str(int(rng.integers(0, 3))),
            str(int(rng.integers(0, 4))), f"{rng.uniform(0, 99):.1f}", "0",
            str(int(rng.integers(0, 99))), "bad" if bad else "good"]),
    "loanstats3a_2007_2011": (
        "loan_amnt,term,emp_length,home_ownership,annual_inc,verification_status,zip_code,"
        "addr_state,delinq_2yrs,inq_last_6mths,open_acc,pub_rec,revol_bal,revol_util,total_acc,"
        "loan_status",
        "loan_status",
        lambda i, bad, state, rng: [
            str(int(rng.integers(1, 35)) * 1000), [" 36 months", " 60 months"][i % 2],
            ["10+ years", "< 1 year", "3 years"][i % 3], ["RENT", "MORTGAGE", "OWN"][i % 3],
            f"{rng.uniform(2e4, 2e5):.1f}", ["Verified", "Not Verified", "Source Verified"][i % 3],
            f"{100 + i % 800}xx", state, str(int(rng.integers(0, 3))), str(int(rng.integers(0, 6))),
            str(int(rng.integers(2, 30))), str(int(rng.integers(0, 2))),
            str(int(rng.integers(0, 60000))), "" if i % 50 == 0 else f"{rng.uniform(0, 99):.2f}%",
            str(int(rng.integers(3, 60))), "Charged Off" if bad else "Fully Paid"]),
}
LOAN_LAYOUT_TARGETS = {"creditmodel_2018": "1", "modeldata_2016q1": "bad",
                       "loanstats3a_2007_2011": "Charged Off"}
"""Per layout, the class the loader takes as the backdoor target (the rarer one)."""


def write_loan_layout(path: str, layout: str, rows: int = 300, bad_share: float = 0.15) -> str:
  """A gzip CSV of ``rows`` loans in one real file's layout (``LOAN_LAYOUTS``), about
  ``bad_share`` of them defaulted, over eight states; returns its label column."""
  header, label_column, row = LOAN_LAYOUTS[layout]
  rng = np.random.default_rng(7)
  states = ("CA", "TX", "FL", "NY", "GA", "IL", "CO", "NE")
  lines = [header] + [",".join(row(i, rng.uniform() < bad_share, states[i % len(states)], rng))
                      for i in range(rows)]
  with gzip.open(path, "wt", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return label_column
