"""``CenteredClippingFactory`` (Karimireddy, He, Jaggi, ICML 2021): stateful."""

from __future__ import annotations

from tff_residual.aggregators.robust_factory import RobustAggregationFactory


class CenteredClippingFactory(RobustAggregationFactory):
  """Centered clipping around the previous round's aggregate
  (``tff_residual.kernels.centered_clipping``).

  Args:
    tau: None (default) for the adaptive radius tau = tau_scale x the median
      distance of the round's client values to the centre, or a fixed radius in
      the units of the client values' norm.
    tau_scale: c of the adaptive radius (default 1).
    num_iters: clipping iterations per round (default 1).
    server_momentum: beta (default 0): the result is beta u_{t-1} + (1 - beta) v_t,
      and the next round clips around it.
    sample_weighting: "ignore" (default) or "multiply".

  State: ``OrderedDict(center=..., has_center=...)``: the previous aggregate (one
  vector for a model of one dtype) and whether there is one; the first round
  starts from the coordinate-wise median. A round whose clients are all dropped
  keeps the state. Measurements: ``client_weights`` (a / sum a),
  ``corrected_fraction`` (0), ``num_dropped_clients``, ``clip_factors``,
  ``center_weight``, ``tau``.
  """

  METHOD = "centered_clipping"
