"""``FoolsGoldFactory`` (Fung, Yoon, Beschastnikh, 2018), with or without its history."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class FoolsGoldFactory(RobustAggregationFactory):
  """FoolsGold weights from the cosine similarity of the clients' updates
  (``tff_residual.kernels.foolsgold``).

  Args:
    feature_index: which tensor of the flattened update is the similarity
      feature; default -2, the final dense layer's kernel as in the reference.
      None = all tensors.
    normalize: "clients" (default, the reference: sum_c wv_c u_c / K) or
      "weights" (sum_c wv_c u_c / sum_c wv_c).
    max_norm: None (default, the reference) or a bound: each update is scaled to
      norm at most ``max_norm`` before FoolsGold sees it (Fung et al.'s own code
      uses 1). FoolsGold weighs directions, not magnitudes: without a bound, one
      client sending 1e20 times an honest direction moves the aggregate by about
      1e20 / K.
    history_size: None (default: this round's features only) or M: the features
      are summed over rounds per client id 0..M-1, as Fung et al.'s algorithm and
      the authors' code (``use_memory``) do.
    sample_weighting: "ignore" (default) or "multiply".

  State: ``()``, or with ``history_size`` an ``OrderedDict`` of ``history``
  (float64 [M, d], each id's summed features) and ``client_ids`` (int32 [M]: the
  round's i-th client is id ``client_ids[i]``). TFF's clients are anonymous: set
  the round's ids with ``with_client_ids(state, ids)`` before each ``next`` (the
  experiments do); left as they start, 0..M-1, the history is keyed by position
  in the round's list, which is right only when the same M clients take part in
  the same order. Measurements: ``client_weights`` = wv / sum(wv),
  ``corrected_fraction`` = 0, ``num_dropped_clients``.
  """

  METHOD = "foolsgold"
