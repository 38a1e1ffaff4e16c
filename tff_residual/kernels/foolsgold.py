"""FoolsGold (Fung, Yoon, Beschastnikh, 2018) as the authors' code runs it
(reference_protocol §2.1).

Per client c a similarity feature f_c (by default the second-to-last tensor of
the update, the final dense layer's kernel, as in the reference) is compared:

    cs = cosine_similarity(f) - I (diagonal exactly 0);   maxcs_i = max_j cs_ij
    cs_ij <- cs_ij maxcs_i / maxcs_j   where maxcs_i < maxcs_j   (pardoning)
    wv_i = clip(1 - max_j cs_ij, 0, 1);  wv <- wv / max(wv);  wv[wv == 1] = .99
    wv <- clip(ln(wv / (1 - wv)) + 0.5, 0, 1)
    aggregate = (1/K) sum_c wv_c u_c    (normalize="clients", the reference)
              or sum_c wv_c u_c / sum_c wv_c   (normalize="weights")

Zero feature vectors have cosine similarity 0 with everything (as in
scikit-learn). Where every wv is 0 (e.g. all clients identical; the reference
divides by zero) all wv are set to 1, i.e. the plain mean. ``client_weights``
reports wv / sum(wv), each client's share of the aggregate's direction.

History: the reference keeps a running sum of each client's features over
rounds but indexes it by list position. Here the caller supplies
``client_ids`` (int [K]) and a ``history`` [num_ids, d] tensor; the features
used are history[ids] + f, and the updated history is returned. Clients dropped
for non-finite values do not update the history.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tff_residual.kernels import clients

NORMALIZATIONS = ("clients", "weights")


def foolsgold_weights(features: tf.Tensor) -> tf.Tensor:
  """wv [K] from features [K, d] (float64 inside)."""
  features = tf.cast(features, tf.float64)
  num_clients = tf.shape(features)[0]
  norms = tf.norm(features, axis=1, keepdims=True)
  unit = features / tf.where(norms > 0, norms, tf.ones_like(norms))
  eye = tf.eye(num_clients, dtype=tf.bool)
  # cs - I with an exact 0 diagonal (1 - 1 can leave +-1e-16 noise that the
  # pardoning step would divide by).
  cs = tf.where(eye, tf.zeros([], tf.float64), tf.matmul(unit, unit, transpose_b=True))
  maxcs = tf.reduce_max(cs, axis=1)
  pardon = tf.logical_and(maxcs[:, None] < maxcs[None, :], tf.logical_not(eye))
  safe_max_j = tf.where(maxcs[None, :] != 0, maxcs[None, :], tf.ones_like(cs))
  cs = tf.where(pardon, cs * maxcs[:, None] / safe_max_j, cs)
  wv = tf.clip_by_value(1.0 - tf.reduce_max(cs, axis=1), 0.0, 1.0)
  top = tf.reduce_max(wv)

  def logit_weights():
    scaled = wv / top
    scaled = tf.where(tf.equal(scaled, 1.0), tf.constant(0.99, tf.float64), scaled)
    logit = tf.math.log(scaled / (1.0 - scaled)) + 0.5
    logit = tf.where(tf.math.is_nan(logit), tf.zeros_like(logit), logit)
    return tf.clip_by_value(logit, 0.0, 1.0)

  wv = tf.cond(top > 0, logit_weights, lambda: tf.ones_like(wv))
  return tf.cond(tf.reduce_max(wv) > 0, lambda: wv, lambda: tf.ones_like(wv))


def feature_matrix(values: Sequence[tf.Tensor], feature_index: int | None) -> tf.Tensor:
  """[K, d]: the tensor ``values[feature_index]`` (all tensors if None)."""
  if feature_index is None or len(values) == 1:
    return tf.concat([tf.cast(v, tf.float64) for v in values], axis=1)
  try:
    return tf.cast(values[feature_index], tf.float64)
  except IndexError:
    raise ValueError(f"feature_index={feature_index} is out of range for a model "
                     f"with {len(values)} tensors.") from None


def foolsgold(values: Sequence[tf.Tensor], sample_weights: tf.Tensor | None = None,
              feature_index: int | None = -2, normalize: str = "clients",
              sample_weighting: str = "ignore", history: tf.Tensor | None = None,
              client_ids: tf.Tensor | None = None):
  """FoolsGold aggregate of client updates ``values`` (list of [K, n_t]).

  Returns a ``KernelOutput``; with ``history`` and ``client_ids`` given, returns
  ``(KernelOutput, new_history)``.
  """
  if normalize not in NORMALIZATIONS:
    raise ValueError(f"Unknown normalize={normalize!r}; expected one of {NORMALIZATIONS}.")
  clients.check_sample_weighting(sample_weighting)
  if (history is None) != (client_ids is None):
    raise ValueError("FoolsGold history needs both `history` and `client_ids`.")
  values = [tf.convert_to_tensor(v) for v in values]
  feature_matrix(values, feature_index)  # validates feature_index early
  weights = sample_weights if sample_weighting == "multiply" else None
  if history is not None:
    client_ids = tf.cast(tf.convert_to_tensor(client_ids), tf.int32)
    history = tf.cast(tf.convert_to_tensor(history), tf.float64)

  def valid(v, w, kept):
    num_clients = tf.shape(v[0])[0]
    features = feature_matrix(v, feature_index)
    if history is not None:
      features = tf.gather(history, tf.gather(client_ids, kept)) + features
    wv = foolsgold_weights(features)
    if w is not None:
      wv = wv * tf.cast(w, tf.float64)
    share = clients.normalize_weights(wv)
    if normalize == "clients":
      coefficients = wv / tf.cast(num_clients, tf.float64)
    else:
      coefficients = share
    aggregate = [tf.linalg.matvec(m, tf.cast(coefficients, m.dtype), transpose_a=True) for m in v]
    return clients.ValidOutput(aggregate, share, tf.zeros([num_clients], tf.float64))

  output = clients.run_on_finite_clients(valid, values, weights)
  if history is None:
    return output
  finite = clients.finite_client_mask(values)
  current = tf.where(finite[:, None], feature_matrix(values, feature_index),
                     tf.zeros_like(feature_matrix(values, feature_index)))
  new_history = tf.tensor_scatter_nd_add(history, client_ids[:, None], current)
  return output, new_history
