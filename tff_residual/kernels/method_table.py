"""The one table of aggregation names: name -> config, kernel, factory, facts.

Every name a user can write (``aggregate(method=...)``, ``build_factory(name)``,
``run.py --aggregator``, the scripts) is a row here, and ``resolve`` is the only
place that reads a name:

* ``METHODS``: each rule (its frozen config class, the only statement of its
  hyper-parameters, defaults and checks; its kernel
  ``kernel(values, sample_weights, config, **state) -> KernelOutput``; its TFF
  factory, as "module:attribute"; and what the README needs to know).
* ``NAMED_SETTINGS``: fixed settings of a rule under their own names (``fedavg``,
  whose factory is TFF's ``MeanFactory``; the paper's variants).
* ``WRAPPERS``: pre-aggregation steps written as a prefix, ``PREFIX+NAME``
  (``nnm+``, ``arc+``, ``bucketing+``), composable (``arc+nnm+trimmed_mean``,
  each prefix at most once) around any rule or setting but ``fedavg``.

``resolve(name, **params)`` validates the hyper-parameters once (each parameter
goes to every level whose config has the field) and returns a ``Resolved``;
``compile_kernel`` makes it a ``tf.function``
``kernel(values, sample_weights, **state)`` (the TFF factories'), ``eager_kernel``
the eager API's (traced for exact shapes and kept across calls);
``tff_residual.aggregators.build_factory(name, **params)`` its TFF factory.
``takes_one_matrix`` says whether both hand the kernel the model as one ``[K, N]``
matrix. A stateful name's state is one flat ``OrderedDict`` of named entries
(``Resolved.initial_state``): each kernel reads its own and returns their next
values in ``KernelOutput.state``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable

import tensorflow as tf

from tff_residual.kernels import arc
from tff_residual.kernels import bucketing
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
from tff_residual.kernels.residual import reweighting as residual_reweighting
from tff_residual.kernels import trimmed_mean
from tff_residual.kernels.method_config import MethodConfig

Kernel = Callable[..., clients.KernelOutput]
SEPARATOR = "+"


def _no_state(config, sizes, dtypes) -> dict:
  return {}


def _center_state(config, sizes, dtypes) -> dict:
  return {"center": [tf.zeros([size], dtype) for size, dtype in zip(sizes, dtypes)],
          "has_center": tf.constant(False)}


def _foolsgold_state(config, sizes, dtypes) -> dict:
  return foolsgold.initial_state(config, sizes)


def _bucketing_state(config, sizes, dtypes) -> dict:
  return bucketing.initial_state()


def _at_least(config, inner_minimum: int = 1) -> int:
  own = config.minimum_clients() if hasattr(config, "minimum_clients") else 1
  return max(own, inner_minimum)


@dataclasses.dataclass(frozen=True)
class Method:
  """One aggregation rule, or one wrapper (``wrapper=True``: a pre-aggregation step
  written ``NAME+INNER``, whose kernel also takes the inner kernel).

  Attributes:
    name: the method's name (``aggregate(method=...)``, ``--aggregator``).
    config: its frozen config class.
    kernel: ``kernel(values, sample_weights, config, **state)``; a wrapper's
      ``kernel(values, sample_weights, config, inner, inner_per_client_extras,
      inner_scalar_extras, **state)``.
    factory: its TFF factory, "module:attribute" (imported when built: this module
      imports no TFF).
    description: one line for ``--help`` and the README.
    paper: where the method comes from.
    needs: the clients it needs, as the README states it.
    coordinatewise: the kernel gives the same result on the model's ``[K, n_t]``
      tensors as on their concatenation ``[K, N]`` (up to summation order):
      true of every rule here whose statistics are per coordinate or over the
      whole model; FoolsGold's similarity feature is one of the tensors.
    state_names: ``state_names(config)``, the names of the state entries the kernel
      reads and returns (``KernelOutput.state``).
    initial_state: ``initial_state(config, sizes, dtypes)``: those entries before the
      first round, for kernel inputs of ``sizes`` elements per client and ``dtypes``.
    per_client_extras, scalar_extras: the names (and scalar dtypes) of the
      method's own entries of ``KernelOutput.extra``.
    minimum_clients: ``minimum_clients(config, inner_minimum)``, the fewest
      clients a round can run on.
    exact_shapes: trace one graph per input shape (the residual kernel's XLA
      path needs a static K) instead of relaxing shapes after the first retrace.
  """

  name: str
  config: type[MethodConfig]
  kernel: Callable
  factory: str
  description: str
  paper: str
  needs: str = "K >= 1"
  coordinatewise: bool = True
  state_names: Callable[[MethodConfig], tuple] = lambda config: ()
  initial_state: Callable = _no_state
  per_client_extras: tuple = ()
  scalar_extras: tuple = ()
  minimum_clients: Callable = _at_least
  exact_shapes: Callable[[MethodConfig], bool] = lambda config: False
  wrapper: bool = False


AGGREGATORS = "tff_residual.aggregators"

METHODS: dict[str, Method] = {
    m.name: m for m in (
        Method("residual", residual_reweighting.ResidualReweightingConfig,
               residual_reweighting.residual_reweighting,
               f"{AGGREGATORS}.residual_reweighting:ResidualReweightingFactory",
               "residual-based reweighting (Algorithm 1; --lambda_, --delta)",
               "Fu, Xie, Li, Chen, arXiv 1912.11464", needs="K >= 3 (else the mean)",
               exact_shapes=lambda config: config.has_fused_path),
        Method("median", coordinate_median.CoordinateMedianConfig,
               coordinate_median.coordinate_median,
               f"{AGGREGATORS}.coordinate_median:CoordinateMedianFactory",
               "coordinate-wise median", "Yin et al., ICML 2018"),
        Method("trimmed_mean", trimmed_mean.TrimmedMeanConfig, trimmed_mean.trimmed_mean,
               f"{AGGREGATORS}.trimmed_mean:TrimmedMeanFactory",
               "coordinate-wise trimmed mean (--beta, or --num_trimmed per side)",
               "Yin et al., ICML 2018",
               needs="K > 1 / beta to trim; K >= 2t + 1 with num_trimmed t"),
        Method("repeated_median", repeated_median.RepeatedMedianConfig,
               repeated_median.repeated_median,
               f"{AGGREGATORS}.repeated_median:RepeatedMedianFactory",
               "coordinate-wise repeated median (the authors' code's: the median)",
               "Siegel, 1982"),
        Method("foolsgold", foolsgold.FoolsGoldConfig, foolsgold.foolsgold,
               f"{AGGREGATORS}.foolsgold:FoolsGoldFactory",
               "FoolsGold; with history_size, over each client's summed features "
               "(run.py: by client id, --foolsgold_history)",
               "Fung, Yoon, Beschastnikh, RAID 2020", coordinatewise=False,
               state_names=lambda config: (foolsgold.STATE_NAMES if config.history_size
                                           else ()),
               initial_state=_foolsgold_state),
        Method("mean", mean.MeanConfig, mean.mean, f"{AGGREGATORS}.mean:MeanAggregationFactory",
               "plain (or sample-weighted) mean", "McMahan et al., AISTATS 2017"),
        Method("krum", krum.KrumConfig, krum.krum, f"{AGGREGATORS}.krum:KrumFactory",
               "Krum: the client closest to its K - f - 2 neighbours (--num_byzantine)",
               "Blanchard et al., NeurIPS 2017", needs="K >= 2f + 3",
               per_client_extras=krum.PER_CLIENT_EXTRAS),
        Method("multi_krum", krum.MultiKrumConfig, krum.multi_krum,
               f"{AGGREGATORS}.krum:MultiKrumFactory",
               "Multi-Krum: the mean of the m best Krum scores (--num_byzantine, "
               "--num_selected)", "Blanchard et al., NeurIPS 2017", needs="K >= 2f + 3",
               per_client_extras=krum.PER_CLIENT_EXTRAS),
        Method("geometric_median", geometric_median.GeometricMedianConfig,
               geometric_median.geometric_median,
               f"{AGGREGATORS}.geometric_median:GeometricMedianFactory",
               "geometric median, smoothed Weiszfeld (RFA; --max_iter, --nu, --tolerance)",
               "Pillutla, Kakade, Harchaoui, IEEE TSP 2022",
               scalar_extras=geometric_median.SCALAR_EXTRAS),
        Method("centered_clipping", centered_clipping.CenteredClippingConfig,
               centered_clipping.centered_clipping,
               f"{AGGREGATORS}.centered_clipping:CenteredClippingFactory",
               "centered clipping around the previous aggregate, radius tau_scale x the "
               "median distance or --tau (--tau_scale, --num_iters, --server_momentum)",
               "Karimireddy, He, Jaggi, ICML 2021",
               state_names=lambda config: centered_clipping.STATE_NAMES,
               initial_state=_center_state,
               per_client_extras=centered_clipping.PER_CLIENT_EXTRAS,
               scalar_extras=centered_clipping.SCALAR_EXTRAS),
        Method("bulyan", bulyan.BulyanConfig, bulyan.bulyan, f"{AGGREGATORS}.bulyan:BulyanFactory",
               "Bulyan: iterated Krum, then a trimmed mean around the median "
               "(--num_byzantine)", "El Mhamdi, Guerraoui, Rouault, ICML 2018",
               needs="K >= 4f + 3", per_client_extras=bulyan.PER_CLIENT_EXTRAS),
    )
}

WRAPPERS: dict[str, Method] = {
    m.name: m for m in (
        Method("nnm", nnm.NNMConfig, nnm.nnm, f"{AGGREGATORS}.nnm:NNMFactory",
               "nearest-neighbour mixing before the inner method (--num_byzantine)",
               "Allouah et al., AISTATS 2023", needs="K >= f + 1 and the inner method's",
               per_client_extras=("inner_client_weights",), wrapper=True),
        Method("arc", arc.ARCConfig, arc.arc, f"{AGGREGATORS}.arc:ARCFactory",
               "adaptive robust clipping before the inner method: the floor(2 f (K - f) / K) "
               "largest updates clipped to the next norm (--num_byzantine)",
               "Allouah et al., ICLR 2025", needs="K >= f + 1 and the inner method's",
               per_client_extras=("arc_clip_factors",), wrapper=True),
        Method("bucketing", bucketing.BucketingConfig, bucketing.bucketing,
               f"{AGGREGATORS}.bucketing:BucketingFactory",
               "the inner method on the means of shuffled buckets of s clients "
               "(--bucket_size)", "Karimireddy, He, Jaggi, ICLR 2022",
               needs="ceil(K / s) >= the inner method's K",
               state_names=lambda config: bucketing.STATE_NAMES,
               initial_state=_bucketing_state, per_client_extras=("bucket", "bucket_weights"),
               minimum_clients=lambda config, inner_minimum=1: config.minimum_clients(
                   inner_minimum), wrapper=True),
    )
}
"""The pre-aggregation steps, written ``NAME+INNER`` (e.g. ``arc+nnm+trimmed_mean``)."""

NNM = WRAPPERS["nnm"]


@dataclasses.dataclass(frozen=True)
class NamedSetting:
  """A rule with some parameters fixed, under its own name. ``factory``: where the
  name's factory is not its method's (fedavg: TFF's ``MeanFactory``, which can be
  no wrapper's inner: ``wrappable`` False)."""

  name: str
  method: str
  params: dict
  description: str
  factory: str | None = None
  wrappable: bool = True


NAMED_SETTINGS: dict[str, NamedSetting] = {
    s.name: s for s in (
        NamedSetting("fedavg", "mean", {"sample_weighting": "multiply"},
                     "FedAvg: the sample-weighted mean; its factory is TFF's MeanFactory "
                     "(in run.py weighted by --client_weighting)",
                     factory=f"{AGGREGATORS}.mean:fedavg_factory", wrappable=False),
        NamedSetting("residual_paper", "residual", {"variant": "paper"},
                     "residual reweighting, eqs. 1-11 literally"),
        NamedSetting("residual_theil_sen", "residual", {"estimator": "theil_sen"},
                     "residual reweighting with the Theil-Sen line (Table 7)"),
        NamedSetting("residual_median_line", "residual", {"estimator": "median"},
                     "residual reweighting around the coordinate median, no slope (Table 7)"),
        NamedSetting("residual_gaussian", "residual", {"weighting": "gaussian"},
                     "residual reweighting with Gaussian weights, sigma = lambda_ (Table 7)"),
        NamedSetting("repeated_median_paper", "repeated_median", {"variant": "paper"},
                     "coordinate-wise repeated median with eq. 2's intercept (the paper's "
                     "Repeated Median)"),
    )
}


@dataclasses.dataclass(frozen=True)
class Alias:
  """A composed name under a name of its own: ``target`` (e.g. ``arc+nnm+trimmed_mean``)
  with each parameter of ``tied`` set to the value given for another
  (``{"num_trimmed": "num_byzantine"}``: the trimmed mean trims f per side); the
  target's parameters in ``unused`` (those the tied ones replace) are not taken."""

  name: str
  target: str
  tied: dict
  description: str
  unused: tuple = ()


RECOMMENDED = "recommended"
"""The default RESULTS.md recommends: the rule with the best worst-case accuracy over
the verdict grid on both datasets (``scripts/results.py --check`` recomputes it from
``results/verdict_grid`` and fails where it is another rule)."""

ALIASES: dict[str, Alias] = {
    a.name: a for a in (
        Alias(RECOMMENDED, "arc+nnm+trimmed_mean", {"num_trimmed": "num_byzantine"},
              "the recommended default (RESULTS.md: best worst case of the verdict grid): "
              "ARC, NNM, then the trimmed mean, each told f (--num_byzantine), as ByzFL's "
              "default pipeline", unused=("beta",)),
    )
}


def alias_of(name) -> Alias | None:
  """The alias ``name`` is, or None (also for a name that is no string)."""
  return ALIASES.get(name) if isinstance(name, str) else None


def names() -> list[str]:
  """Every rule and named setting (the names ``PREFIX+`` can be put before)."""
  return [*METHODS, *NAMED_SETTINGS]


def table() -> dict[str, str]:
  """Every name and wrapper prefix -> its one-line description (``--help``, README)."""
  rows = {name: m.description for name, m in METHODS.items()}
  rows.update({name: s.description for name, s in NAMED_SETTINGS.items()})
  rows.update({f"{name}{SEPARATOR}NAME": w.description for name, w in WRAPPERS.items()})
  rows.update({name: a.description for name, a in ALIASES.items()})
  return rows


def parse(name: str) -> tuple[tuple[str, ...], str]:
  """``"arc+nnm+krum"`` -> ((the wrappers, outermost first), the rule or setting).

  ValueError naming the problem: an unknown name or prefix, a prefix used twice,
  or a name no wrapper can hold (fedavg).
  """
  if alias := alias_of(name):
    return parse(alias.target)
  expected = (f"expected one of {names()}, optionally after wrapper prefixes "
              f"{[w + SEPARATOR for w in WRAPPERS]} (e.g. 'arc+nnm+trimmed_mean'), or "
              f"{list(ALIASES)}")
  if not isinstance(name, str) or not name:
    raise ValueError(f"Unknown method={name!r}; {expected}.")
  *wrappers, base = name.split(SEPARATOR)
  unknown = [w + SEPARATOR for w in wrappers if w not in WRAPPERS] + (
      [] if base in names() else [base])
  if unknown:
    part = "" if unknown == [name] else f": {' and '.join(map(repr, unknown))} unknown"
    raise ValueError(f"Unknown method={name!r}{part}; {expected}.")
  repeated = sorted({w for w in wrappers if wrappers.count(w) > 1})
  if repeated:
    raise ValueError(f"{name!r}: {repeated} applied twice; each wrapper is applied once.")
  setting = NAMED_SETTINGS.get(base)
  if wrappers and setting is not None and not setting.wrappable:
    raise ValueError(f"{name!r}: {base!r} cannot be wrapped (its factory is TFF's "
                     f"MeanFactory); use '{SEPARATOR.join([*wrappers, 'mean'])}'.")
  return tuple(wrappers), base


@dataclasses.dataclass(frozen=True)
class Resolved:
  """A name resolved to its method and validated config; for ``PREFIX+INNER``,
  the wrapper's, with ``inner`` resolved. ``params``: the parameters this level was
  given (a setting's fixed ones included), as sorted (name, value) pairs;
  ``factory``: its TFF factory, "module:attribute"."""

  name: str
  method: Method
  config: MethodConfig
  inner: "Resolved | None" = None
  params: tuple = ()
  factory: str = ""

  @property
  def state_names(self) -> tuple:
    own = tuple(self.method.state_names(self.config))
    return own + (self.inner.state_names if self.inner is not None else ())

  @property
  def stateful(self) -> bool:
    return bool(self.state_names)

  def initial_state(self, sizes, dtypes) -> collections.OrderedDict:
    """The state before the first round, for kernel inputs of ``sizes`` elements per
    client with ``dtypes`` (one entry per name of ``state_names``)."""
    state = collections.OrderedDict(self.method.initial_state(self.config, sizes, dtypes))
    if self.inner is not None:
      state.update(self.inner.initial_state(sizes, dtypes))
    return state

  @property
  def coordinatewise(self) -> bool:
    return self.method.coordinatewise and (self.inner is None or self.inner.coordinatewise)

  @property
  def per_client_extras(self) -> tuple:
    inner = self.inner.per_client_extras if self.inner is not None else ()
    return (*inner, *self.method.per_client_extras)

  @property
  def scalar_extras(self) -> tuple:
    return tuple(self.inner.scalar_extras if self.inner is not None
                 else self.method.scalar_extras)

  def minimum_clients(self) -> int:
    """The fewest clients a round can run on (the wrappers' and the inner rule's)."""
    if self.inner is None:
      return self.method.minimum_clients(self.config)
    return self.method.minimum_clients(self.config, self.inner.minimum_clients())

  def used_weights(self, sample_weights):
    """The sample weights the rule at the core uses (its ``sample_weighting``)."""
    core = self
    while core.inner is not None:
      core = core.inner
    return core.config.used_weights(sample_weights)

  def run(self, values, sample_weights, **state) -> clients.KernelOutput:
    """The kernel, uncompiled; ``state``: entries of ``state_names``."""
    if self.inner is None:
      return self.method.kernel(values, sample_weights, self.config, **state)
    inner = self.inner
    return self.method.kernel(values, inner.used_weights(sample_weights), self.config,
                              lambda v, w, **s: inner.run(v, w, **s), inner.per_client_extras,
                              inner.scalar_extras, **state)


def wrap(wrapper_name: str, inner: Resolved, **params) -> Resolved:
  """The wrapper ``wrapper_name`` (a key of ``WRAPPERS``) around ``inner``, with the
  wrapper's own ``params``; ValueError where the composition cannot work."""
  name = f"{wrapper_name}{SEPARATOR}{inner.name}"
  parse(name)  # an unknown or repeated wrapper, or an inner no wrapper can hold
  wrapper = WRAPPERS[wrapper_name]
  if wrapper.name == "bucketing" and "history" in inner.state_names:
    raise ValueError(f"{name!r}: FoolsGold's history is kept by client id, and a bucket is "
                     "not a client; use foolsgold without history_size inside bucketing.")
  return Resolved(name, wrapper, wrapper.config.from_params(wrapper.name, params), inner,
                  tuple(sorted(params.items())), wrapper.factory)


def _resolve_level(wrappers: tuple, base: str, params: dict, name: str) -> Resolved:
  if wrappers:
    wrapper = WRAPPERS[wrappers[0]]
    own = {k: v for k, v in params.items() if k in wrapper.config.field_names()}
    return wrap(wrapper.name, _resolve_level(wrappers[1:], base, params, name), **own)
  setting = NAMED_SETTINGS.get(base)
  method = METHODS[setting.method if setting else base]
  fixed = dict(setting.params) if setting else {}
  own = {k: v for k, v in params.items() if k in method.config.field_names()}
  clash = [k for k in own if k in fixed and own[k] != fixed[k]]
  if clash:
    raise ValueError(f"{base!r} fixes {clash} to {[fixed[k] for k in clash]}; use "
                     f"method={method.name!r} to choose them.")
  given = {**fixed, **own}
  return Resolved(base, method, method.config.from_params(base, given), None,
                  tuple(sorted(given.items())),
                  setting.factory if setting and setting.factory else method.factory)


def resolve(name: str, **params) -> Resolved:
  """``name`` (a rule, a named setting, or ``PREFIX+...+NAME``) with ``params``.

  ValueError for an unknown name; TypeError for an unknown parameter; the
  config's own error for a bad value. Each parameter goes to every level (wrapper
  or rule) whose config has the field.
  """
  if alias := alias_of(name):
    return _resolve_alias(alias, params)
  wrappers, base = parse(name)
  fields = fields_of(name)
  unknown = [k for k in params if k not in fields]
  if unknown:
    raise TypeError(f"Unknown parameter(s) {unknown} for {name!r}; expected some of "
                    f"{sorted(set(fields))}.")
  return _resolve_level(wrappers, base, params, name)


def _resolve_alias(alias: Alias, params: dict) -> Resolved:
  """``alias.target`` with ``params`` and each tied parameter set from its source."""
  unknown = [k for k in params if k not in fields_of(alias.name) and k not in alias.tied]
  if unknown:
    raise TypeError(f"Unknown parameter(s) {unknown} for {alias.name!r} ({alias.target}); "
                    f"expected some of {sorted(fields_of(alias.name))}.")
  missing = sorted({source for source in alias.tied.values() if source not in params})
  if missing:
    raise TypeError(f"{alias.name!r} ({alias.target}) needs the parameter(s) {missing}.")
  fixed = [k for k in alias.tied if k in params]
  if fixed:
    raise TypeError(f"{alias.name!r} sets {fixed} from {[alias.tied[k] for k in fixed]}; "
                    f"use method={alias.target!r} to choose them.")
  return resolve(alias.target, **params,
                 **{k: params[source] for k, source in alias.tied.items()})


def fields_of(name: str) -> list[str]:
  """The config fields ``name`` takes (of every level of a wrapped name; an alias's
  target's, less those it ties to others)."""
  if alias := alias_of(name):
    return [f for f in fields_of(alias.target) if f not in alias.tied and f not in alias.unused]
  wrappers, base = parse(name)
  setting = NAMED_SETTINGS.get(base)
  fields = list(METHODS[setting.method if setting else base].config.field_names())
  for wrapper in wrappers:
    fields += [f for f in WRAPPERS[wrapper].config.field_names() if f not in fields]
  return fields


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
  exact, level = False, resolved
  while level is not None:
    exact = exact or level.method.exact_shapes(level.config)
    level = level.inner
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
