"""The one table of aggregation methods: name -> config, kernel, facts.

Every method is one ``Method`` row: its frozen config class (the only statement
of its hyper-parameters, defaults and checks), its kernel
``kernel(values, sample_weights, config, **state) -> KernelOutput``, and what
the factories, the eager API, the CLI and the README need to know about it.
``NAMED_SETTINGS`` gives fixed settings of a method their own names (the
paper's variants; ``fedavg`` is the mean). ``"nnm+NAME"`` is nearest-neighbour
mixing around the method or setting NAME.

``build_kernel(name, **params)`` validates the hyper-parameters once and
returns a ``tf.function`` ``kernel(values, sample_weights, **state)`` (the TFF
factories' ``compile_kernel``; the eager API's ``eager_kernel`` compiles the same
``Resolved.run``, traced for exact shapes and kept across calls).
``takes_one_matrix`` says whether both hand it the model as one ``[K, N]`` matrix.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import tensorflow as tf

from tff_residual.kernels import bulyan
from tff_residual.kernels import centered_clipping
from tff_residual.kernels import clients
from tff_residual.kernels import coordinate_median
from tff_residual.kernels import foolsgold
from tff_residual.kernels import geometric_median
from tff_residual.kernels import krum
from tff_residual.kernels import mean
from tff_residual.kernels import nnm
from tff_residual.kernels import repeated_median
from tff_residual.kernels import residual_reweighting
from tff_residual.kernels import trimmed_mean
from tff_residual.kernels.config import MethodConfig

Kernel = Callable[..., clients.KernelOutput]
NNM_PREFIX = "nnm+"


@dataclasses.dataclass(frozen=True)
class Method:
  """One aggregation method.

  Attributes:
    name: the method's name (``aggregate(method=...)``, ``--aggregator``).
    config: its frozen config class.
    kernel: ``kernel(values, sample_weights, config, **state)``.
    description: one line for ``--help`` and the README.
    paper: where the method comes from.
    needs: the clients it needs, as the README states it.
    coordinatewise: the kernel gives the same result on the model's ``[K, n_t]``
      tensors as on their concatenation ``[K, N]`` (up to summation order):
      true of every rule here whose statistics are per coordinate or over the
      whole model; FoolsGold's similarity feature is one of the tensors.
    stateful: the kernel takes the previous aggregate as ``center`` and
      ``has_center`` (centered clipping); the factory keeps it in its state.
    per_client_extras, scalar_extras: the names (and scalar dtypes) of the
      method's own entries of ``KernelOutput.extra``.
    exact_shapes: trace one graph per input shape (the residual kernel's XLA
      path needs a static K) instead of relaxing shapes after the first retrace.
  """

  name: str
  config: type[MethodConfig]
  kernel: Callable
  description: str
  paper: str
  needs: str = "K >= 1"
  coordinatewise: bool = True
  stateful: bool = False
  per_client_extras: tuple = ()
  scalar_extras: tuple = ()
  exact_shapes: Callable[[MethodConfig], bool] = lambda config: False


METHODS: dict[str, Method] = {
    m.name: m for m in (
        Method("residual", residual_reweighting.ResidualReweightingConfig,
               residual_reweighting.residual_reweighting,
               "residual-based reweighting (Algorithm 1; --lambda_, --delta)",
               "Fu, Xie, Li, Chen, arXiv 1912.11464", needs="K >= 3 (else the mean)",
               exact_shapes=lambda config: config.has_fused_path),
        Method("median", coordinate_median.CoordinateMedianConfig,
               coordinate_median.coordinate_median, "coordinate-wise median",
               "Yin et al., ICML 2018"),
        Method("trimmed_mean", trimmed_mean.TrimmedMeanConfig, trimmed_mean.trimmed_mean,
               "coordinate-wise trimmed mean (--beta)", "Yin et al., ICML 2018",
               needs="K > 1 / beta to trim"),
        Method("repeated_median", repeated_median.RepeatedMedianConfig,
               repeated_median.repeated_median,
               "coordinate-wise repeated median (the code's = the median)", "Siegel, 1982"),
        Method("foolsgold", foolsgold.FoolsGoldConfig, foolsgold.foolsgold,
               "FoolsGold, per round", "Fung, Yoon, Beschastnikh, RAID 2020",
               coordinatewise=False),
        Method("mean", mean.MeanConfig, mean.mean, "plain (or sample-weighted) mean",
               "McMahan et al., AISTATS 2017"),
        Method("krum", krum.KrumConfig, krum.krum,
               "Krum: the client closest to its K - f - 2 neighbours (--num_byzantine)",
               "Blanchard et al., NeurIPS 2017", needs="K >= 2f + 3",
               per_client_extras=krum.PER_CLIENT_EXTRAS),
        Method("multi_krum", krum.MultiKrumConfig, krum.multi_krum,
               "Multi-Krum: the mean of the m best Krum scores (--num_byzantine, "
               "--num_selected)", "Blanchard et al., NeurIPS 2017", needs="K >= 2f + 3",
               per_client_extras=krum.PER_CLIENT_EXTRAS),
        Method("geometric_median", geometric_median.GeometricMedianConfig,
               geometric_median.geometric_median,
               "geometric median, smoothed Weiszfeld (RFA; --max_iter, --nu, --tolerance)",
               "Pillutla, Kakade, Harchaoui, IEEE TSP 2022",
               scalar_extras=geometric_median.SCALAR_EXTRAS),
        Method("centered_clipping", centered_clipping.CenteredClippingConfig,
               centered_clipping.centered_clipping,
               "centered clipping around the previous aggregate (--tau, --num_iters)",
               "Karimireddy, He, Jaggi, ICML 2021", stateful=True,
               per_client_extras=centered_clipping.PER_CLIENT_EXTRAS,
               scalar_extras=centered_clipping.SCALAR_EXTRAS),
        Method("bulyan", bulyan.BulyanConfig, bulyan.bulyan,
               "Bulyan: iterated Krum, then a trimmed mean around the median "
               "(--num_byzantine)", "El Mhamdi, Guerraoui, Rouault, ICML 2018",
               needs="K >= 4f + 3", per_client_extras=bulyan.PER_CLIENT_EXTRAS),
    )
}

NNM = Method("nnm", nnm.NNMConfig, nnm.nnm,
             "nearest-neighbour mixing before the inner method (--num_byzantine)",
             "Allouah et al., AISTATS 2023", needs="K >= f + 1 and the inner method's")
"""Nearest-neighbour mixing, the wrapper: ``nnm+NAME`` (``NNMFactory(inner)``)."""


@dataclasses.dataclass(frozen=True)
class NamedSetting:
  name: str
  method: str
  params: dict
  description: str


NAMED_SETTINGS: dict[str, NamedSetting] = {
    s.name: s for s in (
        NamedSetting("fedavg", "mean", {}, "the mean (in the CLI: TFF's own MeanFactory)"),
        NamedSetting("residual_paper", "residual", {"variant": "paper"},
                     "residual reweighting, eqs. 1-11 literally"),
        NamedSetting("residual_theil_sen", "residual", {"estimator": "theil_sen"},
                     "residual reweighting with the Theil-Sen line (Table 7)"),
        NamedSetting("residual_median_line", "residual", {"estimator": "median"},
                     "residual reweighting around the coordinate median, no slope (Table 7)"),
        NamedSetting("residual_gaussian", "residual", {"weighting": "gaussian"},
                     "residual reweighting with Gaussian weights, sigma = lambda_ (Table 7)"),
    )
}


def names() -> list[str]:
  """Every name ``build_kernel`` takes, but the ``nnm+NAME`` compositions."""
  return [*METHODS, *NAMED_SETTINGS]


@dataclasses.dataclass(frozen=True)
class Resolved:
  """A name resolved to its method and validated config (and, for ``nnm+NAME``,
  the inner one)."""

  name: str
  method: Method
  config: MethodConfig
  inner: "Resolved | None" = None

  @property
  def stateful(self) -> bool:
    return self.method.stateful or (self.inner is not None and self.inner.stateful)

  @property
  def coordinatewise(self) -> bool:
    return self.method.coordinatewise and (self.inner is None or self.inner.coordinatewise)

  @property
  def per_client_extras(self) -> tuple:
    if self.inner is not None:
      return (*self.inner.per_client_extras, "inner_client_weights")
    return tuple(self.method.per_client_extras)

  @property
  def scalar_extras(self) -> tuple:
    return tuple(self.inner.scalar_extras if self.inner is not None
                 else self.method.scalar_extras)

  def run(self, values, sample_weights, **state) -> clients.KernelOutput:
    """The kernel, uncompiled."""
    if self.inner is None:
      return self.method.kernel(values, sample_weights, self.config, **state)
    inner = self.inner
    return nnm.nnm(values, inner.config.used_weights(sample_weights), self.config,
                   lambda v, w, **s: inner.run(v, w, **s), inner.per_client_extras,
                   inner.scalar_extras, **state)


def resolve(name: str, **params) -> Resolved:
  """``name`` (a method, a named setting or ``nnm+NAME``) with ``params``.

  ValueError for an unknown name; TypeError for an unknown parameter; the
  config's own error for a bad value. For ``nnm+NAME`` each parameter goes to
  the mixing step, the inner method, or both, by the fields they have.
  """
  if isinstance(name, str) and name.startswith(NNM_PREFIX):
    inner_name = name[len(NNM_PREFIX):]
    if inner_name.startswith(NNM_PREFIX):
      raise ValueError(f"{name!r}: nearest-neighbour mixing is applied once.")
    mixing = {k: v for k, v in params.items() if k in NNM.config.field_names()}
    inner_fields = fields_of(inner_name)
    unknown = [k for k in params if k not in mixing and k not in inner_fields]
    if unknown:
      raise TypeError(f"Unknown parameter(s) {unknown} for {name!r}; expected some of "
                      f"{sorted(set(NNM.config.field_names()) | set(inner_fields))}.")
    inner = resolve(inner_name, **{k: v for k, v in params.items() if k in inner_fields})
    return Resolved(name, NNM, NNM.config.from_params("nnm", mixing), inner)
  if not isinstance(name, str) or name not in names():
    raise ValueError(f"Unknown method={name!r}; expected one of {names()} or "
                     f"'{NNM_PREFIX}NAME'.")
  setting = NAMED_SETTINGS.get(name)
  method = METHODS[setting.method if setting else name]
  fixed = dict(setting.params) if setting else {}
  clash = [k for k in params if k in fixed and params[k] != fixed[k]]
  if clash:
    raise ValueError(f"{name!r} fixes {clash} to {[fixed[k] for k in clash]}; use "
                     f"method={method.name!r} to choose them.")
  return Resolved(name, method, method.config.from_params(name, {**fixed, **params}))


def fields_of(name: str) -> list[str]:
  """The config fields ``name`` takes (for ``nnm+NAME``: the mixing's and NAME's)."""
  if name.startswith(NNM_PREFIX):
    return [*NNM.config.field_names(), *fields_of(name[len(NNM_PREFIX):])]
  setting = NAMED_SETTINGS.get(name)
  if name in METHODS or setting:
    return METHODS[setting.method if setting else name].config.field_names()
  raise ValueError(f"Unknown method={name!r}; expected one of {names()} or "
                   f"'{NNM_PREFIX}NAME'.")


def takes_one_matrix(resolved: Resolved, dtypes) -> bool:
  """Whether the kernel gets a model of tensors with ``dtypes`` as one ``[K, N]``
  matrix (every tensor flattened and concatenated) rather than one ``[K, n_t]``
  per tensor: for a coordinatewise method and one dtype. The TFF factories and
  the eager API both ask this, so that both run the kernel on the same matrix and
  compute the same thing, to the last bit."""
  return resolved.coordinatewise and len({tf.as_dtype(d) for d in dtypes}) == 1


def compile_kernel(resolved: Resolved) -> Kernel:
  """One graph per input signature; shapes relax to unknown after the first
  retrace (so K and n may vary without more tracing) unless the method needs
  exact shapes."""
  exact = resolved.method.exact_shapes(resolved.config) or (
      resolved.inner is not None and resolved.inner.method.exact_shapes(resolved.inner.config))
  return tf.function(resolved.run, reduce_retracing=not exact, autograph=False)


@functools.lru_cache(maxsize=64)
def eager_kernel(resolved: Resolved) -> Kernel:
  """The compiled kernel the eager API calls, one per resolved method and settings,
  kept across calls: it traces once per input signature (exact shapes, so the graph
  that runs an input never depends on which inputs came before it)."""
  return tf.function(resolved.run, reduce_retracing=False, autograph=False)


def build_kernel(name: str, **params) -> Kernel:
  """Validated, compiled kernel ``kernel(values, sample_weights, **state)`` for ``name``."""
  return compile_kernel(resolve(name, **params))
