"""The tidy results table every analysis function reads, and its validator.

One row per task x language x intermediate x condition x seed x metric (``intermediate``
names the intermediate setting of the grid's intermediate axis; ``none`` for condition
``none``, which has no intermediate model). The grid runner writes
it (CSV and Parquet); the analysis only ever reads it, so all numbers in a report
can be recomputed from the table alone.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from xstilts.errors import XstiltsError

RESULT_COLUMNS: tuple[str, ...] = (
    "task",
    "language",
    "resource_group",
    "condition",
    "intermediate",
    "seed",
    "intermediate_spec",
    "selection_policy",
    "metric",
    "value",
    "model_version",
    "run_id",
    "selection_score",
    "tuning",
)
"""Columns of the results table, in the order the grid writes them."""

OPTIONAL_COLUMNS: tuple[str, ...] = ("intermediate", "selection_score", "tuning")
"""Columns that tables written before the intermediate axis lack: filled on validation
(``intermediate``: ``none`` for condition none, else :data:`UNNAMED_INTERMEDIATE`;
``selection_score``, the English dev score that selected the row's model: NaN; ``tuning``,
the Optuna study and values its target was trained with: ``none``)."""

UNNAMED_INTERMEDIATE = "unnamed"
NO_INTERMEDIATE = "none"

CONDITIONS: tuple[str, ...] = ("none", "en", "multi", "en+mlm")
"""Intermediate-training conditions: no intermediate step, English data,
size-matched multilingual data, English data plus MLM on target-language text."""

KEY_COLUMNS: tuple[str, ...] = ("task", "language", "intermediate", "condition", "seed", "metric")
"""Columns that identify one row; a duplicate key means a cell was written twice."""

_TEXT_COLUMNS = ("task", "language", "resource_group", "condition", "intermediate", "metric")
_RECORD_COLUMNS = ("intermediate_spec", "selection_policy", "model_version", "run_id")


def validate_results(results: pd.DataFrame, *, source: str = "results table",
                     conditions: Iterable[str] = CONDITIONS) -> pd.DataFrame:
    """Check ``results`` against the schema and return a clean copy.

    The copy has ``value`` as float and ``seed`` as int; extra columns are kept.
    Raises :class:`XstiltsError` naming ``source`` and the offending column, row
    (0-based position in the table) and value when the table is unusable.
    """
    if not isinstance(results, pd.DataFrame):
        raise XstiltsError(f"{source}: expected a pandas DataFrame, got {type(results).__name__}")
    missing = [c for c in RESULT_COLUMNS if c not in results.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise XstiltsError(f"{source}: missing column(s) {', '.join(missing)}; "
                           f"expected columns {', '.join(RESULT_COLUMNS)}")
    if results.empty:
        raise XstiltsError(f"{source}: the table has no rows")
    out = _fill_optional(results.reset_index(drop=True).copy())

    for col in _TEXT_COLUMNS:
        bad = out[col].isna() | (out[col].astype(str).str.strip() == "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise XstiltsError(f"{source}: row {row}, column {col!r}: expected a non-empty name, got {out[col].iloc[row]!r}")
        out[col] = out[col].astype(str)

    for col in _RECORD_COLUMNS:  # what the report lists and sorts: text, a missing entry empty
        out[col] = out[col].astype(object).where(out[col].notna(), "").astype(str)

    allowed = set(conditions)
    bad_cond = ~out["condition"].isin(allowed)
    if bad_cond.any():
        row = int(np.flatnonzero(bad_cond.to_numpy())[0])
        raise XstiltsError(f"{source}: row {row}, column 'condition': unknown condition "
                           f"{out['condition'].iloc[row]!r}; valid: {', '.join(sorted(allowed))}")

    values = pd.to_numeric(out["value"], errors="coerce")
    bad_val = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad_val.any():
        row = int(np.flatnonzero(bad_val.to_numpy())[0])
        raise XstiltsError(f"{source}: row {row}, column 'value': expected a finite number, "
                           f"got {out['value'].iloc[row]!r}")
    out["value"] = values.astype(float)

    out["seed"] = _seeds(out, source)

    _check_intermediate(out, source)
    out["selection_score"] = _selection_scores(out, source)

    dup = out.duplicated(list(KEY_COLUMNS), keep="first")
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        key = ", ".join(f"{c}={out[c].iloc[row]!r}" for c in KEY_COLUMNS)
        raise XstiltsError(f"{source}: row {row} repeats an earlier row's key ({key}); "
                           "each task x language x intermediate x condition x seed x metric must appear once")

    groups = out.groupby("language")["resource_group"].nunique()
    inconsistent = groups[groups > 1]
    if not inconsistent.empty:
        lang = str(inconsistent.index[0])
        seen = sorted(out.loc[out["language"] == lang, "resource_group"].unique())
        raise XstiltsError(f"{source}: language {lang!r} has several resource groups {seen}; "
                           "column 'resource_group' must be the same for every row of a language")
    return out


def _seeds(out: pd.DataFrame, source: str) -> pd.Series:
    """The ``seed`` column as ints, or one error naming the first row that is no finite integer."""
    seeds = pd.to_numeric(out["seed"], errors="coerce")
    bad = seeds.isna() | ~np.isfinite(seeds.to_numpy(dtype=float, na_value=np.nan)) | (seeds != np.round(seeds))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        got = out["seed"].iloc[row]
        raise XstiltsError(f"{source}: row {row}, column 'seed': expected an integer, "
                           f"got {got.item() if isinstance(got, np.generic) else got!r}")
    return seeds.astype(int)


def _fill_optional(out: pd.DataFrame) -> pd.DataFrame:
    """Add the columns older tables lack, in :data:`RESULT_COLUMNS` order (extra columns last)."""
    if "intermediate" not in out.columns:
        out["intermediate"] = np.nan
    unnamed = out["intermediate"].isna()
    if unnamed.any():
        none = out["condition"].astype(str) == "none"
        filled = np.where(none, NO_INTERMEDIATE, UNNAMED_INTERMEDIATE)
        out["intermediate"] = out["intermediate"].astype(object).where(~unnamed, filled)
    if "selection_score" not in out.columns:
        out["selection_score"] = np.nan
    # an empty column reads back from CSV as float NaNs: a string fill needs object dtype first
    out["tuning"] = out["tuning"].astype(object).fillna("none") if "tuning" in out.columns else "none"
    order = list(RESULT_COLUMNS) + [c for c in out.columns if c not in RESULT_COLUMNS]
    return out[order]


def _selection_scores(out: pd.DataFrame, source: str) -> pd.Series:
    """``selection_score`` as floats; empty (NaN) where no English dev score selected the model."""
    scores = pd.to_numeric(out["selection_score"], errors="coerce")
    bad = scores.isna() & out["selection_score"].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise XstiltsError(f"{source}: row {row}, column 'selection_score': expected a number or empty, "
                           f"got {out['selection_score'].iloc[row]!r}")
    return scores.astype(float)


def _check_intermediate(out: pd.DataFrame, source: str) -> None:
    """Condition ``none`` has no intermediate model, every other condition has one."""
    none = out["condition"] == "none"
    bad = none != (out["intermediate"] == NO_INTERMEDIATE)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise XstiltsError(f"{source}: row {row}, column 'intermediate': {out['intermediate'].iloc[row]!r} with "
                           f"condition {out['condition'].iloc[row]!r}; 'none' is the intermediate of condition "
                           f"'none' and of no other")


def select_metric(results: pd.DataFrame, metric_by_task: dict[str, str] | None = None) -> pd.DataFrame:
    """Keep one metric per task: the one named in ``metric_by_task``, else the default.

    The default is the first of :data:`PREFERRED_METRICS` the task reports, else the
    alphabetically first metric, so a table with F1 and exact match for TyDiQA is
    analysed on F1 unless told otherwise.
    """
    chosen = {}
    for task, rows in results.groupby("task", sort=True):
        available = sorted(rows["metric"].unique())
        if metric_by_task and task in metric_by_task:
            want = metric_by_task[task]
            if want not in available:
                raise XstiltsError(f"results table: task {task!r} has no metric {want!r}; "
                                   f"it reports {', '.join(available)}")
            chosen[task] = want
        else:
            chosen[task] = next((m for m in PREFERRED_METRICS if m in available), available[0])
    keep = results["metric"] == results["task"].map(chosen)
    return results.loc[keep].reset_index(drop=True)


PREFERRED_METRICS: tuple[str, ...] = ("f1", "accuracy", "exact_match", "em", "precision_at_1")
"""Default headline metric order: XTREME (Hu et al. 2020) headlines F1 for PAN-X,
UD-POS and TyDiQA-GoldP and accuracy for XNLI, PAWS-X and Tatoeba."""
