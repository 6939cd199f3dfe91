"""The report of a grid with several intermediate settings (the intermediate axis).

Its first paragraph answers the question once per intermediate setting (each setting's
rows plus the shared ``none`` rows form a one-intermediate table, analysed exactly as a
single-intermediate grid is), then names the best intermediate per target chosen on
English dev. A comparison section tabulates every intermediate per target (mean, seed
spread, gain over ``none`` per resource group); each setting then gets its own sections.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from xstilts.analysis.intermediates import (BASELINE, best_intermediates, compare_intermediates,
                                            intermediate_names, slice_intermediate)
from xstilts.analysis.report import (Analysis, Block, _methods_blocks, _num, _task_blocks, analyze,
                                     encoder_sentence, limits_sentence, summarise_versions, task_sentence)
from xstilts.analysis.schema import select_metric, validate_results

ANALYSIS_KEYS = ("metric_by_task", "tau", "alpha", "n_resamples", "n_bootstrap", "seed")


def headline_pair(table: pd.DataFrame, treatment: str, control: str) -> tuple[str, str] | None:
    """The comparison a one-intermediate slice answers: the requested one when both conditions are
    there, else English intermediate training against none, else the first other condition against none."""
    present = set(table["condition"])
    if {treatment, control} <= present:
        return treatment, control
    others = [c for c in ("en", "multi", "en+mlm") if c in present]
    if BASELINE in present and others:
        return others[0], BASELINE
    return None


def analyze_axis(results: pd.DataFrame, *, treatment: str = "multi", control: str = "en",
                 **options: object) -> tuple[dict[str, Analysis | str], pd.DataFrame, pd.DataFrame]:
    """Per intermediate setting its :class:`Analysis` (or why there is none), the comparison
    table and the best intermediate per target."""
    table = validate_results(results)
    chosen = select_metric(table, options.get("metric_by_task"))  # type: ignore[arg-type]
    per: dict[str, Analysis | str] = {}
    for name in intermediate_names(table):
        part = slice_intermediate(table, name)
        pair = headline_pair(part, treatment, control)
        if pair is None:
            per[name] = f"conditions {', '.join(sorted(set(part['condition'])))} give no comparison"
            continue
        per[name] = analyze(part, treatment=pair[0], control=pair[1],
                            **{k: v for k, v in options.items() if k in ANALYSIS_KEYS})  # type: ignore[arg-type]
    comparison = compare_intermediates(chosen, n_resamples=int(options.get("n_resamples", 10_000)),
                                       seed=int(options.get("seed", 0)))
    return per, comparison, best_intermediates(comparison)


def best_sentence(best: pd.DataFrame, comparison: pd.DataFrame) -> str:
    """Plain words: the best intermediate per target under English-dev selection."""
    parts = []
    for row in best.itertuples(index=False):
        d = 1 if comparison.loc[comparison["task"] == row.task, "mean"].abs().max() > 1 else 3
        if not row.best:
            parts.append(f"for {row.task} ({row.condition}) no model was selected on English dev (it has no "
                         f"target training), so no intermediate can be chosen without target-language data; "
                         f"on target-language scores `{row.oracle}` is highest ({_num(row.oracle_mean, d)})")
            continue
        same = "the same one" if row.best == row.oracle else f"`{row.oracle}` ({_num(row.oracle_mean, d)})"
        parts.append(f"for {row.task} under `{row.condition}` it is `{row.best}` of {row.candidates} (English dev "
                     f"{_num(row.best_dev_score, d)}; mean target-language score {_num(row.best_mean, d)}), while "
                     f"an oracle choice on target-language scores would pick {same}")
    if not parts:
        return ""
    return ("Chosen as Phang et al. (2020) choose the best per-task intermediate model, but on English dev "
            "only (strict zero-shot): " + "; ".join(parts) + ".")


def _front(per, comparison, best, table, title: str, notes: Sequence[str], encoder) -> list[Block]:
    answers = []
    for name, analysis in per.items():
        if isinstance(analysis, str):
            answers.append(f"With intermediate `{name}`: {analysis}.")
            continue
        tasks = sorted(analysis.metric_by_task)
        answers.append(f"With intermediate `{name}`: " + " ".join(task_sentence(analysis, t) for t in tasks))
    first = next((a for a in per.values() if not isinstance(a, str)), None)
    # the limits of the whole table (all settings' seeds and model versions), not of one slice
    whole = replace(first, results=select_metric(table, first.metric_by_task)) if first is not None else None
    tail = ([limits_sentence(whole)] if whole is not None else []) + encoder_sentence(encoder, sorted(set(table["task"])))
    paragraph = " ".join(answers + [best_sentence(best, comparison)] + tail)
    about = [f"Intermediate settings: {', '.join(per)} (and `none`, shared by all)",
             f"Conditions: {', '.join(sorted(table['condition'].unique()))}; seeds: "
             f"{', '.join(map(str, sorted(table['seed'].unique())))}",
             f"Model versions: {summarise_versions(table['model_version'].unique())}; runs: {table['run_id'].nunique()}",
             *notes]
    return [("h", 1, title), ("p", paragraph), ("h", 2, "About this run"), ("ul", about)]


def comparison_frame(comparison: pd.DataFrame, task: str) -> pd.DataFrame:
    """One target's comparison as a readable table: value [95% interval] per column."""
    part = comparison[comparison["task"] == task]
    d = 1 if part["mean"].abs().max() > 1 else 3
    groups = [c[len("gain_"):-len("_ci_low")] for c in part.columns if c.startswith("gain_") and c.endswith("_ci_low")]
    rows = []
    for r in part.to_dict("records"):
        row = {"intermediate": r["intermediate"], "condition": r["condition"], "seeds": r["n_seeds"],
               "mean": f"{_num(r['mean'], d)} [{_num(r['ci_low'], d)}, {_num(r['ci_high'], d)}]",
               "seed std": f"{_num(r['seed_std'], d)} [{_num(r['std_ci_low'], d)}, {_num(r['std_ci_high'], d)}]",
               "English dev": _num(r["dev_score"], d) if np.isfinite(r["dev_score"]) else ""}
        for g in groups:
            row[f"gain over none: {g}"] = ("" if not np.isfinite(r[f"gain_{g}"]) else
                                           f"{_num(r[f'gain_{g}'], d, True)} [{_num(r[f'gain_{g}_ci_low'], d, True)}, "
                                           f"{_num(r[f'gain_{g}_ci_high'], d, True)}]")
        rows.append(row)
    return pd.DataFrame(rows)


def _comparison_blocks(comparison: pd.DataFrame, best: pd.DataFrame) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Intermediate tasks compared"), ("p", (
        "Per target: mean over the target languages (English excluded) of the seed means [95% t interval over "
        "seeds of the per-seed language mean]; seed std of that per-seed mean [95% chi-square interval]; the "
        "mean English dev score that selected the target models; gain over `none` on each resource group's "
        "languages [95% t interval of the paired per-seed gains]."))]
    for task in sorted(comparison["task"].unique()):
        metric = comparison.loc[comparison["task"] == task, "metric"].iloc[0]
        blocks += [("h", 3, f"{task} ({metric})"), ("table", comparison_frame(comparison, task))]
    if not best.empty:
        blocks += [("h", 3, "Best intermediate per target (English dev selection)"),
                   ("table", best.rename(columns={"best": "best (English dev)", "oracle": "oracle (target langs)"}))]
    return blocks


def build_axis_blocks(results: pd.DataFrame, out_dir: Path, *, title: str, notes: Sequence[str] = (),
                      encoder=None, **options: object) -> list[Block]:
    """Report content for several intermediate settings; draws figures into ``out_dir/figures``."""
    per, comparison, best = analyze_axis(results, **options)
    table = validate_results(results)
    blocks = _front(per, comparison, best, table, title, notes, encoder) + _comparison_blocks(comparison, best)
    for name, analysis in per.items():
        if isinstance(analysis, str):
            continue
        for task in sorted(analysis.metric_by_task):
            blocks += _task_blocks(analysis, task, out_dir, prefix=f"{name}: ")
    first = next((a for a in per.values() if not isinstance(a, str)), None)
    return blocks + (_methods_blocks(first) if first is not None else [])
