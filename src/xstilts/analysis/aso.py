"""Almost Stochastic Order (ASO) between two score distributions.

Implemented from the papers, not from any package:

* E. del Barrio, J. A. Cuesta-Albertos, C. Matran (2018), "An optimal transportation
  approach for assessing almost stochastic order", in *The Mathematics of the
  Uncertain*, Springer (arXiv:1705.01788): the violation ratio
  eps_W2(F, G) = int_{V} (F^-1(t) - G^-1(t))^2 dt / W2(F, G)^2, where V is the set
  of t in (0, 1) on which the quantile functions violate the order.
* R. Dror, S. Shlomov, R. Reichart (2019), "Deep Dominance - How to Properly Compare
  Deep Neural Models", ACL 2019: the test statistic
  eps_min = eps_W2(F_n, G_m) - sqrt((n+m)/(nm)) * sigma_hat * Phi^-1(alpha), with
  sigma_hat^2 the bootstrap variance of sqrt(nm/(n+m)) * (eps_W2* - eps_W2); A is
  declared (almost) better than B when eps_min < tau (they and Ulmer et al. 2022,
  "deep-significance", recommend tau = 0.2, i.e. below 0.5 with a margin).

Reading eps_min: ~0 = A stochastically dominates B; ~0.5 = no order (e.g. same
distribution); ~1 = B dominates A. Because eps_min is an upper confidence bound
(Phi^-1(alpha) < 0), small samples push it towards 0.5 and above; with 3-5 seeds
a value under tau needs a large, consistent difference.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from xstilts.errors import XstiltsError

DEFAULT_TAU = 0.2
DEFAULT_BOOTSTRAP = 1000


@dataclass(frozen=True)
class AsoResult:
    """eps_min (the decision statistic), the sample violation ratio, sigma_hat and the alpha used."""

    eps_min: float
    violation_ratio: float
    sigma_hat: float
    alpha: float


def _quantile_grid(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pieces on which both empirical quantile functions are constant.

    F_n^-1(t) = x_(i) for t in ((i-1)/n, i/n]. On the common refinement of the
    grids {i/n} and {j/m} (exact integers on the scale n*m), return each piece's
    width and the order-statistic index into the sorted samples of A and B.
    """
    ends = np.union1d(np.arange(1, n + 1) * m, np.arange(1, m + 1) * n)
    starts = np.concatenate([[0], ends[:-1]])
    widths = (ends - starts) / (n * m)
    ia = (ends + m - 1) // m - 1  # ceil(t * n) - 1 with t = end / (n m)
    ib = (ends + n - 1) // n - 1
    return widths, ia, ib


def _violation_ratios(sorted_a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    """Exact eps_W2 for each row of sorted samples ``[..., n]`` and ``[..., m]``."""
    widths, ia, ib = _quantile_grid(sorted_a.shape[-1], sorted_b.shape[-1])
    diff = sorted_a[..., ia] - sorted_b[..., ib]
    sq = widths * diff ** 2
    total = sq.sum(axis=-1)
    violated = np.where(diff < 0, sq, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = violated / total
    # Equal quantile functions (W2 = 0): neither sample dominates; 0.5 is the
    # value eps_W2 takes for any pair of distributions symmetric about each other.
    return np.where(total > 0, ratio, 0.5)


def _check(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise XstiltsError(f"ASO: sample {name} must be a non-empty array of finite scores, got {arr.tolist()[:10]}")
    return arr


def violation_ratio(scores_a: ArrayLike, scores_b: ArrayLike) -> float:
    """eps_W2 for the claim "A is stochastically larger than B" (higher scores = better).

    Share of the squared L2 distance between the empirical quantile functions
    coming from quantiles where A is below B; computed exactly (no grid).
    0 = A's quantiles are never below B's; 1 = never above.
    """
    a = np.sort(_check(scores_a, "A"))
    b = np.sort(_check(scores_b, "B"))
    return float(_violation_ratios(a, b))


def bonferroni_alpha(alpha: float, num_comparisons: int) -> float:
    """Per-comparison alpha for a family of ``num_comparisons`` tests (Bonferroni 1936)."""
    if num_comparisons < 1:
        raise XstiltsError(f"Bonferroni correction: num_comparisons must be >= 1, got {num_comparisons}")
    return alpha / num_comparisons


def aso(scores_a: ArrayLike, scores_b: ArrayLike, *, alpha: float = 0.05, num_comparisons: int = 1,
        n_bootstrap: int = DEFAULT_BOOTSTRAP, rng: np.random.Generator | int | None = 0) -> AsoResult:
    """ASO test that A (almost) stochastically dominates B; compare ``eps_min`` with tau.

    ``alpha`` is the family-wise level; it is divided by ``num_comparisons``
    (Bonferroni). sigma_hat comes from ``n_bootstrap`` resamples of A and B
    (each with replacement, at its own size). eps_min is clipped to [0, 1], the
    range of eps_W2.
    """
    a = np.sort(_check(scores_a, "A"))
    b = np.sort(_check(scores_b, "B"))
    if not 0 < alpha < 1:
        raise XstiltsError(f"ASO: alpha must be in (0, 1), got {alpha}")
    n, m = a.size, b.size
    eps = float(_violation_ratios(a, b))
    gen = np.random.default_rng(rng)
    boot_a = np.sort(a[gen.integers(0, n, size=(n_bootstrap, n))], axis=1)
    boot_b = np.sort(b[gen.integers(0, m, size=(n_bootstrap, m))], axis=1)
    const = np.sqrt(n * m / (n + m))
    sigma_hat = float(np.std(const * (_violation_ratios(boot_a, boot_b) - eps)))
    alpha_c = bonferroni_alpha(alpha, num_comparisons)
    eps_min = eps - (1 / const) * sigma_hat * float(stats.norm.ppf(alpha_c))
    return AsoResult(float(np.clip(eps_min, 0.0, 1.0)), eps, sigma_hat, alpha_c)


def aso_table(results: pd.DataFrame, *, treatment: str, control: str, tau: float = DEFAULT_TAU,
              alpha: float = 0.05, n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """ASO per task x metric x language for ``treatment`` vs ``control`` over seeds.

    Runs both directions. Bonferroni: the family is all task x language pairs in
    this table (the issue's "languages x tasks"), so alpha is divided by their
    count. ``verdict`` is "treatment better" if eps_min(treatment, control) < tau,
    "control better" if eps_min(control, treatment) < tau, else "no order".
    """
    sub = results[results["condition"].isin([treatment, control])]
    cells = []
    for key, part in sub.groupby(["task", "metric", "language"], sort=True):
        t = part.loc[part["condition"] == treatment, "value"].to_numpy(dtype=float)
        c = part.loc[part["condition"] == control, "value"].to_numpy(dtype=float)
        if t.size and c.size:
            cells.append((key, part["resource_group"].iloc[0], t, c))
    k = len(cells)
    rows = []
    for i, ((task, metric, lang), group, t, c) in enumerate(cells):
        fwd = aso(t, c, alpha=alpha, num_comparisons=k, n_bootstrap=n_bootstrap, rng=np.random.default_rng([seed, i, 0]))
        bwd = aso(c, t, alpha=alpha, num_comparisons=k, n_bootstrap=n_bootstrap, rng=np.random.default_rng([seed, i, 1]))
        verdict = (f"{treatment} better" if fwd.eps_min < tau else
                   f"{control} better" if bwd.eps_min < tau else "no order")
        rows.append({"task": task, "metric": metric, "language": lang, "resource_group": group,
                     f"n_{treatment}": t.size, f"n_{control}": c.size,
                     "eps_min": fwd.eps_min, "eps_min_reverse": bwd.eps_min,
                     "violation_ratio": fwd.violation_ratio, "alpha_corrected": fwd.alpha,
                     "num_comparisons": k, "tau": tau, "verdict": verdict})
    columns = ["task", "metric", "language", "resource_group", f"n_{treatment}", f"n_{control}", "eps_min",
               "eps_min_reverse", "violation_ratio", "alpha_corrected", "num_comparisons", "tau", "verdict"]
    return pd.DataFrame(rows, columns=columns)  # no cell: an empty table that still has its columns
