"""Amazon Reviews (McAuley): binary sentiment of review texts, FastText model.

Data: ``--data_path`` to McAuley-format JSON lines (plain or ``.gz``; fields
``reviewText`` and ``overall``), e.g. ``../shared/data/amazon_reviews/
kindle_store_5core_sample_4905.jsonl.gz``. Ratings 1-2 are negative (0), 4-5
positive (1), 3 is dropped (paper §4.1); 80% train / 20% test, seeded.
Without ``--data_path`` a deterministic synthetic corpus with the same schema
is generated (``data_source: synthetic``; the run says so).

Texts are tokenised by Keras' ``TextVectorization`` (lower case, punctuation
stripped, vocabulary of the 25,000 most frequent training tokens, sequences
cut or padded to ``SEQUENCE_LENGTH``). Model FastText (paper A.2): embedding
of dimension 100 -> average over the tokens (padding masked) -> one logit;
binary cross-entropy.

The paper gives no code for this dataset. Setup from §4.2 and A.6: 10
participants (IID split here; the paper does not say), Adam, 10 rounds,
attackers flip every label and train 5 more epochs; regular users lr 0.01,
attackers 0.1 (A.6; A.2 quotes 0.05).
"""

from __future__ import annotations

import gzip
import json
import os

import numpy as np

from tff_residual.tasks.base import (UNREADABLE_FILE_ERRORS, Arrays, AttackTargets, DataError,
                                     DataSettings, ModelSpec, TargetSettings, TaskData, TaskFamily)

VOCABULARY_SIZE = 25_000
EMBEDDING_DIM = 100
SEQUENCE_LENGTH = 256
SYNTHETIC_REVIEWS = 6000

_SETUP = dict(num_clients=10, clients_per_round=0, partition="iid", optimizer="adam",
              learning_rate=0.01, rounds=10, local_epochs=1, attacker_epochs=6,
              max_batches_per_epoch=0, client_train_fraction=1.0, model="fasttext")
DEFAULTS = {
    "*": {"paper": _SETUP},
    "none": {"paper": dict(num_attackers=0), "smoke": dict(num_attackers=0)},
    "label_flip": {"paper": dict(num_attackers=2)},
    "gaussian": {"paper": dict(num_attackers=1)},
    "mix_rate": {"paper": dict(num_attackers=4, attacker_epochs=3),
                 "smoke": dict(attacker_epochs=2)},
}


def read_reviews(path: str) -> tuple[list[str], np.ndarray]:
  """(texts, ratings) of every review with a text and a numeric ``overall``."""
  if not os.path.isfile(path):
    raise DataError(f"--data_path {path} does not exist.")
  opener = gzip.open if path.endswith(".gz") else open
  texts, ratings = [], []
  try:
    with opener(path, "rt", encoding="utf-8") as f:
      for line_number, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          raise DataError(f"{path} line {line_number} is not JSON; expected McAuley-format JSON "
                          "lines with reviewText and overall.") from None
        if not isinstance(record, dict) or "reviewText" not in record or "overall" not in record:
          raise DataError(f"{path} line {line_number} lacks reviewText/overall (McAuley format).")
        if isinstance(record["reviewText"], str) and isinstance(record["overall"], (int, float)):
          texts.append(record["reviewText"])
          ratings.append(float(record["overall"]))
  except UNREADABLE_FILE_ERRORS as error:
    raise DataError(f"cannot read {path} as JSON lines: {error}") from None
  return texts, np.asarray(ratings)


def binarize(texts: list[str], ratings: np.ndarray) -> tuple[list[str], np.ndarray]:
  """Ratings 1-2 -> 0, 4-5 -> 1, 3 dropped."""
  keep = ratings != 3
  return [t for t, k in zip(texts, keep) if k], (ratings[keep] >= 4).astype(np.int64)


def synthetic_reviews(count: int = SYNTHETIC_REVIEWS, seed: int = 0) -> list[dict]:
  """Deterministic McAuley-schema records whose words carry the sentiment.

  Ratings follow the Kindle sample's shares (1: 3%, 2: 4%, 3: 9%, 4: 25%, 5: 59%);
  each token is a neutral word, or (with probability 0.3) a sentiment word
  that agrees with the rating 80% of the time.
  """
  rng = np.random.default_rng(seed)
  positive = [f"good{i}" for i in range(200)]
  negative = [f"bad{i}" for i in range(200)]
  neutral = [f"word{i}" for i in range(3000)]
  ratings = rng.choice([1, 2, 3, 4, 5], size=count, p=[0.03, 0.04, 0.09, 0.25, 0.59])
  records = []
  for index, rating in enumerate(ratings):
    length = int(rng.integers(10, 80))
    polarity = 1 if rating >= 4 else (0 if rating <= 2 else int(rng.integers(2)))
    words = []
    for _ in range(length):
      if rng.random() < 0.3:
        agree = rng.random() < 0.8
        pool = positive if (polarity == 1) == agree else negative
      else:
        pool = neutral
      words.append(pool[int(rng.integers(len(pool)))])
    records.append({"reviewerID": f"SYN{index:06d}", "asin": f"B{index % 997:09d}",
                    "reviewText": " ".join(words), "overall": float(rating),
                    "summary": words[0], "unixReviewTime": 1_300_000_000 + index})
  return records


def load(settings: DataSettings) -> TaskData:
  notices = []
  if settings.data_path:
    texts, ratings = read_reviews(settings.data_path)
    source = f"amazon from {settings.data_path}"
  else:
    records = synthetic_reviews()
    texts = [r["reviewText"] for r in records]
    ratings = np.asarray([r["overall"] for r in records])
    source = "synthetic"
    notices.append(f"data: no --data_path given; using {len(texts)} SYNTHETIC reviews with the "
                   "McAuley schema. Pass --data_path (e.g. ../shared/data/amazon_reviews/"
                   "kindle_store_5core_sample_4905.jsonl.gz) for real reviews.")
  texts, labels = binarize(texts, ratings)
  if len(texts) < 10 or len(np.unique(labels)) < 2:
    raise DataError(f"{source}: {len(texts)} reviews with ratings other than 3 and labels "
                    f"{sorted(set(labels.tolist()))}; need both classes and at least 10 reviews.")
  order = np.random.default_rng(settings.seed).permutation(len(texts))
  cut = int(0.8 * len(texts))
  train_idx, test_idx = order[:cut], order[cut:]
  tokens = tokenize([texts[i] for i in train_idx], [texts[i] for i in test_idx])
  return TaskData(Arrays(tokens[0], labels[train_idx]), Arrays(tokens[1], labels[test_idx]),
                  2, ["negative", "positive"], source, notices)


def tokenize(train_texts: list[str], test_texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
  """Token ids [n, SEQUENCE_LENGTH] (0 = padding, 1 = out of vocabulary)."""
  import tensorflow as tf
  vectorize = tf.keras.layers.TextVectorization(max_tokens=VOCABULARY_SIZE,
                                                output_sequence_length=SEQUENCE_LENGTH)
  vectorize.adapt(tf.constant(train_texts), batch_size=1024)
  as_ids = lambda texts: vectorize(tf.constant(texts)).numpy().astype(np.int32)
  return as_ids(train_texts), as_ids(test_texts)


def build_model(name: str, data: TaskData, seed: int) -> ModelSpec:
  if name != "fasttext":
    raise DataError(f"--model={name} is not offered here; expected ['fasttext'].")

  def build():
    import tensorflow as tf
    return tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(SEQUENCE_LENGTH,), dtype=tf.int32),
        tf.keras.layers.Embedding(VOCABULARY_SIZE, EMBEDDING_DIM, mask_zero=True),
        tf.keras.layers.GlobalAveragePooling1D(),
        tf.keras.layers.Dense(1),
    ])
  return ModelSpec(name, build, "binary")


def attack_targets(settings: TargetSettings, data: TaskData) -> AttackTargets:
  """Label flipping flips every label (paper §4.2); no backdoor."""
  return AttackTargets(flip_source=None, flip_target=None)


FAMILY = TaskFamily(
    name="amazon", attacks=("none", "label_flip", "gaussian", "mix_rate"), models=("fasttext",),
    defaults=DEFAULTS, load=load, build_model=build_model, attack_targets=attack_targets,
    description="Amazon reviews sentiment, FastText (--data_path McAuley JSON lines, "
                "else synthetic)")
