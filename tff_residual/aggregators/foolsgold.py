"""``FoolsGoldFactory`` (Fung et al., 2018), stateless per round."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class FoolsGoldFactory(RobustAggregationFactory):
  """FoolsGold weights from the cosine similarity of the clients' updates.

  Stateless: the similarity uses this round's updates only (TFF does not show
  client ids to aggregators; the kernel ``tff_residual.kernels.foolsgold``
  supports a history keyed by client id for simulations that have one).

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
    sample_weighting: "ignore" (default) or "multiply".

  State: ``()``. Measurements: ``client_weights`` = wv / sum(wv),
  ``corrected_fraction`` = 0, ``num_dropped_clients``.
  """

  METHOD = "foolsgold"
