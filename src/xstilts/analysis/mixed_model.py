"""Linear mixed model: score ~ condition * resource_group + (1 | language).

Languages differ a lot in level (the transfer gap), so a fixed-effects comparison
of conditions would be dominated by which languages happen to be evaluated; a
random intercept per language absorbs that level and leaves the condition
effects (and their interaction with the resource group) as fixed effects.
Fitted with statsmodels ``MixedLM`` (REML), one model per task and metric.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from xstilts.errors import XstiltsError


class MixedModelWarning(UserWarning):
    """The mixed model fit is unreliable (singular, not converged, on a boundary)."""


@dataclass(frozen=True)
class MixedModelResult:
    """Tidy fixed-effect table plus fit diagnostics for one task x metric."""

    coefficients: pd.DataFrame
    """Columns: term, estimate, std_error, z, p_value, ci_low, ci_high."""
    language_variance: float
    residual_variance: float
    n_observations: int
    n_languages: int
    formula: str
    singular: bool
    converged: bool
    notes: list[str] = field(default_factory=list)


def _ordered(values: pd.Series, baseline: str) -> pd.Categorical:
    levels = sorted(values.unique())
    if baseline in levels:
        levels.remove(baseline)
        levels.insert(0, baseline)
    return pd.Categorical(values, categories=levels)


def _model_data(results: pd.DataFrame, control: str, reference_group: str,
                conditions: list[str] | None) -> tuple[pd.DataFrame, int]:
    """Check the rows can carry the model and return them with ordered factors, plus the language count."""
    if results[["task", "metric"]].drop_duplicates().shape[0] != 1:
        raise XstiltsError("fit_mixed_model: pass the rows of exactly one task and metric")
    data = results if conditions is None else results[results["condition"].isin(conditions)]
    data = data[["value", "condition", "resource_group", "language"]].copy()
    if data["condition"].nunique() < 2:
        raise XstiltsError(f"fit_mixed_model: need two or more conditions, got {sorted(data['condition'].unique())}")
    n_lang = data["language"].nunique()
    if n_lang < 3:
        raise XstiltsError(f"fit_mixed_model: need three or more languages for a language random intercept, got {n_lang}")
    data["condition"] = _ordered(data["condition"], control)
    data["resource_group"] = _ordered(data["resource_group"], reference_group)
    return data, n_lang


def _fixed_formula(data: pd.DataFrame, notes: list[str]) -> str:
    """The fixed-effects formula: the interaction only when two or more resource groups are present."""
    if data["resource_group"].nunique() > 1:
        return "value ~ condition * resource_group"
    notes.append("only one resource group present; fitted value ~ condition + (1 | language)")
    return "value ~ condition"


def _fit_with_fallback(model) -> tuple[object, list[warnings.WarningMessage], list[str]]:
    """REML fit with the default optimiser, then Powell; returns the fit, its warnings and the failed attempts."""
    fit, caught, failures = None, [], []
    # statsmodels' default gradient optimisers can fail outright when the language
    # variance is at 0 (a singular Hessian); the derivative-free Powell method then
    # still finds the boundary optimum, so it is the fallback.
    for method in (None, "powell"):
        with warnings.catch_warnings(record=True) as attempt:
            warnings.simplefilter("always")
            try:
                candidate = model.fit(reml=True) if method is None else model.fit(reml=True, method=method)
            except (np.linalg.LinAlgError, ValueError) as exc:
                failures.append(f"{method or 'default optimiser'}: {exc}")
                continue
        fit, caught = candidate, list(attempt)
        if bool(getattr(candidate, "converged", True)):
            break
    if fit is None:
        raise XstiltsError(f"fit_mixed_model: the fit failed ({'; '.join(failures)}); too few seeds or languages?")
    return fit, caught, failures


def _coefficient_table(fit, confidence: float) -> pd.DataFrame:
    """Tidy fixed-effect table: estimate, std error, z, p and Wald interval per term."""
    fe_names = list(fit.fe_params.index)
    ci = fit.conf_int(alpha=1 - confidence).loc[fe_names]
    return pd.DataFrame({
        "term": fe_names,
        "estimate": fit.fe_params.to_numpy(dtype=float),
        "std_error": fit.bse_fe.loc[fe_names].to_numpy(dtype=float),
        "z": fit.tvalues.loc[fe_names].to_numpy(dtype=float),
        "p_value": fit.pvalues.loc[fe_names].to_numpy(dtype=float),
        "ci_low": ci.iloc[:, 0].to_numpy(dtype=float),
        "ci_high": ci.iloc[:, 1].to_numpy(dtype=float),
    })


def _reliability(fit, caught: list[warnings.WarningMessage], lang_var: float, resid_var: float,
                 singular_tol: float) -> tuple[bool, bool, list[str]]:
    """Whether the fit is singular and converged, and the warning text for each problem (in report order)."""
    on_boundary = any("boundary of the parameter space" in str(w.message) for w in caught)
    singular = on_boundary or lang_var <= singular_tol * max(resid_var, np.finfo(float).tiny)
    converged = bool(getattr(fit, "converged", True))
    problems = []
    if singular:
        problems.append("singular fit: the language random-intercept variance is estimated as ~0, so languages do "
                        "not differ in level beyond seed noise (or there are too few languages to tell); fixed "
                        "effects are then those of ordinary least squares")
    if not converged:
        problems.append("the mixed model optimiser did not converge; treat its estimates as unreliable")
    return singular, converged, problems


def fit_mixed_model(results: pd.DataFrame, *, control: str = "en", reference_group: str = "high",
                    conditions: list[str] | None = None, confidence: float = 0.95,
                    singular_tol: float = 1e-2) -> MixedModelResult:
    """Fit value ~ condition * resource_group + (1 | language) to one task x metric.

    ``results`` must hold a single task and metric. ``control`` and
    ``reference_group`` are the baseline levels, so ``condition[T.multi]`` is the
    multi - en effect in the reference group and
    ``condition[T.multi]:resource_group[T.low]`` is how much larger it is on
    low-resource languages. If only one resource group is present the
    interaction is dropped (and a note says so). The fit is called singular when
    the language variance is below ``singular_tol`` x the residual variance (a
    language sd under a tenth of the seed sd by default; statsmodels' optimiser
    rarely lands on exactly 0) or statsmodels reports the estimate on the
    boundary of the parameter space; the random intercept is then not
    identified and a :class:`MixedModelWarning` is issued.
    """
    data, n_lang = _model_data(results, control, reference_group, conditions)
    notes: list[str] = []
    formula = _fixed_formula(data, notes)
    fit, caught, failures = _fit_with_fallback(smf.mixedlm(formula, data, groups=data["language"]))
    notes.extend(f"fit attempt failed, retried: {f}" for f in failures)
    notes.extend(f"statsmodels: {str(w.message).strip()}" for w in caught)
    table = _coefficient_table(fit, confidence)
    lang_var = float(np.asarray(fit.cov_re)[0, 0])
    resid_var = float(fit.scale)
    singular, converged, problems = _reliability(fit, caught, lang_var, resid_var, singular_tol)
    for msg in problems:
        notes.append(msg)
        warnings.warn(msg, MixedModelWarning, stacklevel=2)
    return MixedModelResult(table, lang_var, resid_var, int(len(data)), n_lang, formula + " + (1 | language)",
                            singular, converged, notes)
