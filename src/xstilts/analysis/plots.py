"""Report figures (PNG), drawn with matplotlib's object API and the Agg canvas.

No pyplot: figures are never registered globally, so plotting from a worker or
a test never needs a display and never leaks open figures.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CONDITION_ORDER = ("none", "en", "multi", "en+mlm")
_COLOURS = {"none": "#7f7f7f", "en": "#1f77b4", "multi": "#d62728", "en+mlm": "#2ca02c"}


def _language_order(frame: pd.DataFrame) -> list[str]:
    """Low-resource languages first, then the rest, alphabetical within each group."""
    langs = frame.drop_duplicates("language")[["language", "resource_group"]]
    langs = langs.assign(_low=langs["resource_group"] != "low").sort_values(["_low", "language"])
    return list(langs["language"])


def _save(fig: Figure, path: str | PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


def plot_seed_distributions(results: pd.DataFrame, path: str | PathLike[str], *, task: str, metric: str) -> Path:
    """Strip plot: every seed's score per language, one colour per condition, mean as a bar."""
    cell = results[(results["task"] == task) & (results["metric"] == metric)]
    langs = _language_order(cell)
    conds = [c for c in CONDITION_ORDER if c in set(cell["condition"])]
    width = 0.8 / max(len(conds), 1)
    fig = Figure(figsize=(max(6.0, 0.45 * len(langs) * max(len(conds), 1) / 2 + 2), 4.0))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # jitter only; fixed so reruns give identical files
    for k, cond in enumerate(conds):
        for i, lang in enumerate(langs):
            vals = cell.loc[(cell["language"] == lang) & (cell["condition"] == cond), "value"].to_numpy(float)
            if vals.size == 0:
                continue
            x = i - 0.4 + width * (k + 0.5)
            ax.scatter(x + rng.uniform(-width / 4, width / 4, vals.size), vals, s=12,
                       color=_COLOURS.get(cond, "black"), alpha=0.8, label=cond if i == 0 else None)
            ax.hlines(vals.mean(), x - width / 2.5, x + width / 2.5, color=_COLOURS.get(cond, "black"), lw=2)
    ax.set_xticks(range(len(langs)), langs, rotation=90 if len(langs) > 12 else 0)
    n_low = int((cell.drop_duplicates("language")["resource_group"] == "low").sum())
    if 0 < n_low < len(langs):
        ax.axvline(n_low - 0.5, color="black", lw=0.8, ls=":")
    ax.set_ylabel(metric)
    ax.set_title(f"{task}: {metric} per seed (low-resource languages left of the dotted line)")
    ax.legend(title="condition", fontsize=8)
    return _save(fig, path)


def plot_std_ratios(variance: pd.DataFrame, path: str | PathLike[str], *, task: str,
                    treatment: str, control: str) -> Path:
    """Seed-std ratio treatment/control per language with bootstrap CIs, log scale, line at 1."""
    rows = variance[(variance["task"] == task) & (variance["scope"] == "language")]
    langs = _language_order(rows)
    rows = rows.set_index("language").loc[langs]
    ratio = rows["std_ratio"].to_numpy(float)
    finite = np.isfinite(ratio) & (ratio > 0)
    lo = rows["ratio_ci_low"].to_numpy(float)
    hi = rows["ratio_ci_high"].to_numpy(float)
    # Unbounded or zero CI ends (a resample with zero spread) are drawn at the
    # plot edge so the reader sees an open interval instead of a missing bar.
    shown = np.concatenate([ratio[finite], lo[np.isfinite(lo) & (lo > 0)], hi[np.isfinite(hi) & (hi > 0)]])
    floor, ceil = (shown.min() / 2, shown.max() * 2) if shown.size else (0.1, 10.0)
    lo_c = np.where(np.isfinite(lo) & (lo > 0), lo, floor)
    hi_c = np.where(np.isfinite(hi) & (hi > 0), hi, ceil)
    mid = np.where(finite, ratio, np.nan)
    fig = Figure(figsize=(max(6.0, 0.35 * len(langs) + 2), 3.8))
    ax = fig.add_subplot()
    colours = ["#d62728" if g == "low" else "#1f77b4" for g in rows["resource_group"]]
    for i in range(len(langs)):
        ax.vlines(i, lo_c[i], hi_c[i], color=colours[i], lw=1.5)
        if np.isfinite(mid[i]):
            ax.plot(i, mid[i], "o", color=colours[i])
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylim(floor, ceil)
    ax.set_xticks(range(len(langs)), langs, rotation=90 if len(langs) > 12 else 0)
    ax.set_ylabel(f"std({treatment}) / std({control})")
    ax.set_title(f"{task}: seed-std ratio with 95% bootstrap CI (red = low-resource)")
    return _save(fig, path)


def plot_gain_by_group(summary: pd.DataFrame, path: str | PathLike[str], *, task: str, metric: str,
                       treatment: str, control: str, classes: dict[str, int] | None = None) -> Path:
    """Per-language gain (mean treatment - mean control) against resource group or Joshi class.

    English is left out: it is the source language, not a zero-shot target.
    """
    cell = summary[(summary["task"] == task) & (summary["metric"] == metric) & (summary["language"] != "en")]
    wide = cell.pivot_table(index=["language", "resource_group"], columns="condition", values="mean")
    if treatment not in wide or control not in wide:
        raise ValueError(f"plot_gain_by_group: {task} lacks condition {treatment!r} or {control!r}")
    gain = (wide[treatment] - wide[control]).dropna().reset_index(name="gain")
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    if classes is not None:
        gain["x"] = [classes.get(lang, np.nan) for lang in gain["language"]]
        ax.set_xlabel("Joshi et al. (2020) class (0 = least resourced)")
        ax.set_xticks(range(0, 6))
    else:
        order = sorted(gain["resource_group"].unique(), key=lambda g: (g != "low", g))
        gain["x"] = [order.index(g) for g in gain["resource_group"]]
        ax.set_xticks(range(len(order)), order)
        ax.set_xlabel("resource group")
    gain = gain.dropna(subset=["x"])
    for _, row in gain.iterrows():
        ax.annotate(row["language"], (row["x"], row["gain"]), xytext=(4, 0), textcoords="offset points", fontsize=7)
    ax.scatter(gain["x"], gain["gain"], color=["#d62728" if g == "low" else "#1f77b4" for g in gain["resource_group"]])
    means = gain.groupby("x")["gain"].mean()
    ax.plot(means.index, means.to_numpy(), "k_", markersize=25, mew=2)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylabel(f"{metric}: {treatment} - {control} (mean over seeds)")
    ax.set_title(f"{task}: gain of {treatment} over {control} by resource level (bar = mean)")
    return _save(fig, path)
