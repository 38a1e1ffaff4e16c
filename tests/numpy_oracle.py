"""Slow, loop-per-coordinate NumPy implementations written from the formulas.

Independent of the TF kernels: plain Python loops, ``np.median`` (which
averages the two middle values, like the authors' ``median_opt``), an explicit
hat matrix from a 2x2 (or 1x1) inverse instead of the closed form, and the
confidence written as (s/e) Psi(e/s) exactly as in eq. 6 / the reference code.
"""

from __future__ import annotations

import math

import numpy as np


def _line_values(ys: np.ndarray, variant: str, estimator: str) -> np.ndarray:
  """Robust line at ranks 0..K-1 for one sorted coordinate."""
  k = len(ys)
  x = np.arange(k, dtype=np.float64)
  med = float(np.median(ys))
  if estimator == "median":
    return np.full(k, med)
  if estimator == "repeated_median":
    inner = []
    for i in range(k):
      inner.append(np.median([(ys[j] - ys[i]) / (j - i) for j in range(k) if j != i]))
    slope = float(np.median(inner))
  else:
    slope = float(np.median([(ys[j] - ys[i]) / (j - i)
                             for i in range(k) for j in range(i + 1, k)]))
  if variant == "reference":
    return med + slope * (x - (k - 1) / 2.0)
  if estimator == "repeated_median":
    inner = []
    for i in range(k):
      inner.append(np.median([(x[j] * ys[i] - x[i] * ys[j]) / (x[j] - x[i])
                              for j in range(k) if j != i]))
    intercept = float(np.median(inner))
  else:
    intercept = float(np.median(ys - slope * x))
  return intercept + slope * x


def _hat_diagonal(k: int, variant: str) -> np.ndarray:
  x = np.arange(k, dtype=np.float64)
  design = np.stack([np.ones(k), x], axis=1) if variant == "reference" else x[:, None]
  hat = design @ np.linalg.inv(design.T @ design) @ design.T
  return np.diag(hat)


def residual_reweighting(models: np.ndarray, variant: str = "reference",
                         estimator: str = "repeated_median", weighting: str = "huber",
                         lambda_: float = 2.0, delta: float = 0.1, gamma: float | None = None):
  """models: [K, N] float. Returns (aggregate [N], weights [K], replaced [K, N] bool)."""
  models = np.asarray(models, dtype=np.float64)
  k, n = models.shape
  if gamma is None:
    gamma = 1.4826 if variant == "reference" else 1.48
  if k < 3:
    return models.mean(axis=0), np.full(k, 1.0 / k), np.zeros((k, n), bool)
  hat = _hat_diagonal(k, variant)
  z = lambda_ * math.sqrt(2.0 / k)
  big_w = np.zeros(k)
  corrected = models.copy()
  replaced = np.zeros((k, n), bool)
  for col in range(n):
    y = models[:, col]
    order = np.argsort(y, kind="stable")
    ranks = np.empty(k, int)
    ranks[order] = np.arange(k)
    ys = y[order]
    line_sorted = _line_values(ys, variant, estimator)
    line = line_sorted[ranks]
    r = y - line
    abs_r = np.sort(np.abs(r))
    m = np.median(abs_r[1:]) if variant == "reference" else np.median(abs_r)
    tau = gamma * (1 + 5 / (k - 1)) * m + (1e-7 if variant == "reference" else 0.0)
    w = np.empty(k)
    for c in range(k):
      if tau == 0:
        e = 0.0 if r[c] == 0 else math.inf
      else:
        e = r[c] / tau
      if weighting == "gaussian":
        w[c] = math.exp(-e * e / (2 * lambda_**2))
        continue
      s = math.sqrt(1 - hat[ranks[c]])
      if e == 0:
        w[c] = 1.0  # the reference's NaN -> 1
      elif s == 0:
        w[c] = 0.0
      elif math.isinf(e):
        w[c] = 0.0
      else:
        w[c] = (s / e) * max(-z, min(z, e / s))
    if variant == "reference":
      rep = w < delta
    else:
      rep = w <= delta
      w = np.where(rep, 0.0, w)
    sigma = np.std(w, ddof=1)
    big_w += w * sigma
    corrected[rep, col] = line[rep]
    replaced[rep, col] = True
  if big_w.max() <= 0:
    p = np.full(k, 1.0 / k)
  elif variant == "reference":
    u = (big_w / big_w.max())**2
    p = u / u.sum()
  else:
    p = big_w / big_w.sum()
  return p @ corrected, p, replaced


def coordinate_median(models: np.ndarray) -> np.ndarray:
  return np.array([np.median(models[:, c]) for c in range(models.shape[1])])


def trimmed_mean(models: np.ndarray, beta: float = 0.2) -> np.ndarray:
  k = models.shape[0]
  b = int(math.floor(beta * k))
  out = []
  for c in range(models.shape[1]):
    s = np.sort(models[:, c])
    out.append(s[b:k - b].mean())
  return np.array(out)


def repeated_median_paper(models: np.ndarray) -> np.ndarray:
  k = models.shape[0]
  out = []
  for c in range(models.shape[1]):
    ys = np.sort(models[:, c])
    if k < 2:
      out.append(ys[0])
      continue
    line = _line_values(ys, "paper", "repeated_median")
    slope = line[1] - line[0] if k > 1 else 0.0
    out.append(line[0] + slope * (k - 1) / 2.0)
  return np.array(out)


def foolsgold_weights(features: np.ndarray) -> np.ndarray:
  """FoolsGold's wv (docs/reference_differences.md §2.1), rows = clients."""
  n = features.shape[0]
  norms = np.linalg.norm(features, axis=1)
  norms[norms == 0] = 1.0
  unit = features / norms[:, None]
  cs = unit @ unit.T
  np.fill_diagonal(cs, 0.0)
  maxcs = cs.max(axis=1)
  for i in range(n):
    for j in range(n):
      if i != j and maxcs[i] < maxcs[j]:
        cs[i, j] = cs[i, j] * maxcs[i] / maxcs[j]
  wv = 1 - cs.max(axis=1)
  wv = np.clip(wv, 0, 1)
  wv[wv < 1e-5] = 0.0  # similarity within rounding of 1
  if wv.max() == 0:
    return np.ones(n)
  wv = wv / wv.max()
  wv[wv == 1] = 0.99
  with np.errstate(divide="ignore"):
    wv = np.log(wv / (1 - wv)) + 0.5
  wv[wv > 1] = 1
  wv[wv < 0] = 0
  if wv.max() == 0:
    return np.ones(n)
  return wv
