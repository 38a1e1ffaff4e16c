"""FoolsGold (Fung, Yoon, Beschastnikh, 2018) as the authors' code runs it
(docs/reference_differences.md §2.1).

Per client c a similarity feature f_c (by default the second-to-last tensor of
the update, the final dense layer's kernel, as in the reference) is compared:

    cs = cosine_similarity(f) - I (diagonal exactly 0);   maxcs_i = max_j cs_ij
    cs_ij <- cs_ij maxcs_i / maxcs_j   where maxcs_i < maxcs_j   (pardoning)
    wv_i = clip(1 - max_j cs_ij, 0, 1);  wv <- wv / max(wv);  wv[wv == 1] = .99
    wv <- clip(ln(wv / (1 - wv)) + 0.5, 0, 1)
    aggregate = (1/K) sum_c wv_c u_c    (normalize="clients", the reference)
              or sum_c wv_c u_c / sum_c wv_c   (normalize="weights")

FoolsGold bounds similarity, not magnitude: wv depends on directions only, so
one client sending 1e20 times an honest direction gets an honest weight and
moves the aggregate by about 1e20 / K. ``max_norm`` (off by default, as in the
residual paper's reference) is the bound of Fung et al.'s own code (their
``ML_main.py`` scales every update to norm at most 1 before FoolsGold): each
update u_c becomes u_c min(1, max_norm / ||u_c||) (its norm over the whole
update) before the features, the history and the aggregate see it.

Zero feature vectors have cosine similarity 0 with everything (as in
scikit-learn); 1 - max_j cs_ij below 1e-5 (a similarity within rounding of 1)
counts as 0. Similarities come from the Gram matrix of ``distances`` (summed in
float64, scaled where values would overflow: the scales cancel in a cosine).
With ``sample_weighting="multiply"``, wv <- wv n / max(wv n) (n the
sample weights), so the largest coefficient keeps the reference's scale. Where
every wv is 0 (e.g. all clients identical; the reference divides by zero) all
wv are set to 1, i.e. the plain mean. ``client_weights`` reports wv / sum(wv),
each client's share of the aggregate's direction.

History (Fung et al.'s algorithm; the authors' code's default ``use_memory``):
with ``history_size`` M, the similarity feature of client c is the running sum
of all its features so far, H_c + f_c, and H_c <- H_c + f_c after the round.
The reference keeps H by position in the round's list, which mixes clients
when 10 of 100 are sampled; here H is keyed by client id: the state holds
``history`` [M, d] (float64, d the feature's size) and ``client_ids`` [M]
(int32; the round's i-th client is id ``client_ids[i]``, i < K). The ids start
as 0..M-1 (the reference's positional keying, right when all M clients take
part in a fixed order); a caller that samples clients sets them each round
(``RobustAggregationFactory.with_client_ids``; the experiments do). Clients
dropped for non-finite values do not update the history.

Example (four clients, a two-tensor model; clients 2 and 3 send the same feature,
cosine similarity 1, and get wv = 0; clients 0 and 1 keep wv = 1; the reference's
normalisation divides by K)::

    >>> import numpy as np
    >>> from tff_residual.kernels import foolsgold as fg
    >>> feature = np.array([[1., 0.], [0., 1.], [.7, .7], [.7, .7]], np.float32)
    >>> bias = np.ones([4, 1], np.float32)
    >>> out = fg.foolsgold([feature, bias], None, fg.FoolsGoldConfig())
    >>> out.aggregate[0].numpy().tolist(), [round(float(w), 3) for w in out.client_weights]
    ([0.25, 0.25], [0.5, 0.5, 0.0, 0.0])
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tff_residual.kernels import clients
from tff_residual.kernels import distances
from tff_residual.kernels.method_config import (MethodConfig, check_choice, check_int, check_positive,
                                         hyper)

NORMALIZATIONS = ("clients", "weights")
SIMILARITY_TOLERANCE = 1e-5


@dataclasses.dataclass(frozen=True, kw_only=True)
class FoolsGoldConfig(MethodConfig):
  """Hyper-parameters of FoolsGold."""

  feature_index: int | None = hyper(-2, "which tensor is the similarity feature (-2: the "
                                        "final dense kernel); None = all")
  normalize: str = hyper("clients", "clients (the reference: sum_c wv_c u_c / K) or weights "
                                    "(sum_c wv_c u_c / sum_c wv_c)")
  max_norm: float | None = hyper(None, "foolsgold: clip each update to this norm first (Fung "
                                       "et al.'s code: 1); None = no bound", flag=True)
  history_size: int | None = hyper(None, "foolsgold: M, the client ids 0..M-1 whose feature "
                                         "history is kept; None = this round's features only")

  def __post_init__(self):
    super().__post_init__()
    check_choice("normalize", self.normalize, NORMALIZATIONS)
    if self.max_norm is not None:
      check_positive("max_norm", self.max_norm)
    check_int("history_size", self.history_size, 1, allow_none=True)
    if self.feature_index is not None and (not isinstance(self.feature_index, int)
                                           or isinstance(self.feature_index, bool)):
      raise TypeError(f"feature_index must be an int or None, got {self.feature_index!r}.")


def feature_tensors(values: Sequence[tf.Tensor], feature_index: int | None) -> list:
  """The [K, d_t] tensors that form the similarity feature: ``values[feature_index]``,
  or all of them if ``feature_index`` is None or the model has one tensor."""
  if feature_index is None or len(values) == 1:
    return list(values)
  if not -len(values) <= feature_index < len(values):
    raise ValueError(f"feature_index={feature_index} is out of range for a model "
                     f"with {len(values)} tensors.")
  return [values[feature_index]]


def foolsgold_weights_from_similarities(cs: tf.Tensor) -> tf.Tensor:
  """wv [K] from the features' cosine similarities [K, K] (float64)."""
  num_clients = tf.shape(cs)[0]
  eye = tf.eye(num_clients, dtype=tf.bool)
  # cs - I with an exact 0 diagonal (1 - 1 can leave +-1e-16 noise that the
  # pardoning step would divide by).
  cs = tf.where(eye, tf.zeros([], tf.float64), cs)
  maxcs = tf.reduce_max(cs, axis=1)
  pardon = tf.logical_and(maxcs[:, None] < maxcs[None, :], tf.logical_not(eye))
  safe_max_j = tf.where(maxcs[None, :] != 0, maxcs[None, :], tf.ones_like(cs))
  cs = tf.where(pardon, cs * maxcs[:, None] / safe_max_j, cs)
  wv = tf.clip_by_value(1.0 - tf.reduce_max(cs, axis=1), 0.0, 1.0)
  # A similarity within rounding of 1 (float32 features: ~1e-7) is 1: identical
  # updates must not be told apart by rounding noise.
  wv = tf.where(wv < SIMILARITY_TOLERANCE, tf.zeros_like(wv), wv)
  top = tf.reduce_max(wv)

  def logit_weights():
    scaled = wv / top
    scaled = tf.where(tf.equal(scaled, 1.0), tf.constant(0.99, tf.float64), scaled)
    logit = tf.math.log(scaled / (1.0 - scaled)) + 0.5
    logit = tf.where(tf.math.is_nan(logit), tf.zeros_like(logit), logit)
    return tf.clip_by_value(logit, 0.0, 1.0)

  wv = tf.cond(top > 0, logit_weights, lambda: tf.ones_like(wv))
  return tf.cond(tf.reduce_max(wv) > 0, lambda: wv, lambda: tf.ones_like(wv))


def foolsgold_weights(features: tf.Tensor) -> tf.Tensor:
  """wv [K] from features [K, d]."""
  gram = distances.client_gram([tf.convert_to_tensor(features)])
  return foolsgold_weights_from_similarities(distances.cosine_similarities(gram))


def clip_to_norm(values: Sequence[tf.Tensor], max_norm: float) -> list[tf.Tensor]:
  """Each client's update (a row of every [K, n_t]) scaled to norm <= ``max_norm``
  over the whole update; the norms cannot overflow (``distances.center_norms``). A
  non-finite row stays non-finite (norm +inf: factor 0 and inf * 0 = NaN; norm NaN:
  factor 1), so ``run_on_finite_clients`` still drops it."""
  norms = distances.center_norms(values, None)
  factor = tf.where(norms > max_norm, max_norm / tf.where(norms > 0, norms, 1.0),
                    tf.ones_like(norms))
  return [m * tf.cast(factor, m.dtype)[:, None] for m in values]


STATE_NAMES = ("history", "client_ids")


def feature_size(sizes: Sequence[int], feature_index: int | None) -> int:
  """d: the elements of the similarity feature of a model whose kernel inputs have
  ``sizes`` elements per client."""
  if feature_index is None or len(sizes) == 1:
    return int(sum(sizes))
  if not -len(sizes) <= feature_index < len(sizes):
    raise ValueError(f"feature_index={feature_index} is out of range for a model "
                     f"with {len(sizes)} tensors.")
  return int(sizes[feature_index])


def client_ids_entry(client_ids, history_size: int) -> np.ndarray:
  """int32 [M]: the round's client ids, padded with -1 (the ``client_ids`` state
  entry); ValueError for more ids than M, an id outside [0, M) or one given twice."""
  ids = np.asarray(client_ids, np.int64).reshape(-1)
  if len(ids) > history_size or (len(ids) and (ids.min() < 0 or ids.max() >= history_size)):
    raise ValueError(f"client ids {ids.tolist()} do not fit a history of {history_size} clients "
                     "(history_size): at most that many ids, each in [0, history_size).")
  if len(set(ids.tolist())) < len(ids):
    raise ValueError(f"client ids {ids.tolist()}: an id appears twice in one round.")
  padded = np.full([history_size], -1, np.int32)
  padded[:len(ids)] = ids
  return padded


def initial_state(config: FoolsGoldConfig, sizes: Sequence[int]) -> dict:
  """No history yet, ids 0..M-1 (empty without ``history_size``)."""
  if config.history_size is None:
    return {}
  d = feature_size(sizes, config.feature_index)
  return {"history": tf.zeros([config.history_size, d], tf.float64),
          "client_ids": tf.range(config.history_size, dtype=tf.int32)}


def foolsgold(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
              config: FoolsGoldConfig = FoolsGoldConfig(), history: tf.Tensor | None = None,
              client_ids: tf.Tensor | None = None) -> clients.KernelOutput:
  """FoolsGold aggregate of client updates ``values`` (list of [K, n_t]).

  ``history`` [M, d] and ``client_ids`` (int, at least K of them: the round's
  i-th client is ``client_ids[i]``): the running sums of the features by client
  id; the updated history is ``KernelOutput.state["history"]``. Without them
  (or with ``history_size`` None) the features are this round's only.
  """
  feature_index, normalize = config.feature_index, config.normalize
  if (history is None) != (client_ids is None):
    raise ValueError("FoolsGold history needs both `history` and `client_ids`.")
  values = [tf.convert_to_tensor(v) for v in values]
  feature_tensors(values, feature_index)  # raises now if feature_index is out of range
  if config.max_norm is not None:
    values = clip_to_norm(values, config.max_norm)
  weights = config.used_weights(sample_weights)
  if history is not None:
    num_clients = tf.shape(values[0])[0]
    client_ids = tf.cast(tf.convert_to_tensor(client_ids), tf.int32)
    history = tf.convert_to_tensor(history)
    checks = [tf.debugging.assert_less_equal(
        num_clients, tf.size(client_ids),
        message="FoolsGold history: more clients in the round than client_ids")]
    with tf.control_dependencies(checks):
      client_ids = client_ids[:num_clients]
    checks = [tf.debugging.assert_greater_equal(
                  client_ids, 0, message="FoolsGold history: a client id is negative"),
              tf.debugging.assert_less(
                  client_ids, tf.shape(history)[0],
                  message="FoolsGold history: a client id is >= history_size")]
    with tf.control_dependencies(checks):
      client_ids = tf.identity(client_ids)
    # The running sums need explicit features [K, d] (d: the feature size).
    features = tf.concat([tf.cast(f, tf.float64)
                          for f in feature_tensors(values, feature_index)], axis=1)

  def valid(v, w, kept):
    num_clients = tf.shape(v[0])[0]
    if history is None:
      gram = distances.client_gram(feature_tensors(v, feature_index))
    else:
      summed = tf.gather(tf.cast(history, tf.float64), tf.gather(client_ids, kept)) + tf.gather(
          features, kept)
      gram = distances.client_gram([summed])
    wv = clients.apply_sample_weights(
        foolsgold_weights_from_similarities(distances.cosine_similarities(gram)), w)
    if w is not None:
      wv = wv / tf.reduce_max(wv)  # keep the reference's scale: the largest wv stays <= 1
    share = clients.normalize_weights(wv)
    coefficients = wv / tf.cast(num_clients, tf.float64) if normalize == "clients" else share
    aggregate = [tf.linalg.matvec(m, tf.cast(coefficients, m.dtype), transpose_a=True) for m in v]
    return clients.ValidOutput(aggregate, share, tf.zeros([num_clients], tf.float64))

  output = clients.run_on_finite_clients(valid, values, weights)
  if history is None:
    return output
  finite = clients.finite_client_mask(values)
  current = tf.where(finite[:, None], features, tf.zeros_like(features))
  new_history = tf.tensor_scatter_nd_add(tf.cast(history, tf.float64), client_ids[:, None],
                                         current)
  # The ids are the caller's (they stay as given); only the history moves on.
  return output._replace(state=collections.OrderedDict(history=tf.cast(new_history,
                                                                       history.dtype)))
