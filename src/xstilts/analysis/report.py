"""The analysis report: ``report.md`` and ``report.html`` from one results table.

Everything in the report is computed here from the table; nothing is typed in.
The first paragraph answers the question for every task in plain words with its
uncertainty and says what the data can and cannot show; the rest holds the
tables, the tests and the figures it rests on.
"""
from __future__ import annotations

import html
import re
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from xstilts.analysis import plots
from xstilts.analysis.aso import DEFAULT_BOOTSTRAP, DEFAULT_TAU, aso_table
from xstilts.analysis.dispersion import language_dispersion
from xstilts.analysis.mixed_model import MixedModelResult, MixedModelWarning, fit_mixed_model
from xstilts.analysis.resource_groups import JOSHI_CLASS, LOW
from xstilts.analysis.schema import select_metric, validate_results
from xstilts.analysis.seeds import DEFAULT_RESAMPLES, group_gain_ci, seed_summary
from xstilts.analysis.small_sample import MAX_EXACT_SEEDS
from xstilts.analysis.variance_tests import variance_comparison
from xstilts.errors import XstiltsError

CONDITION_WORDS = {
    "none": "no intermediate training",
    "en": "English-only intermediate training",
    "multi": "multilingual intermediate training",
    "en+mlm": "English intermediate training plus MLM",
}
COMPARISONS: tuple[tuple[str, str], ...] = (("multi", "en"), ("multi", "none"), ("en", "none"), ("en+mlm", "en"))
"""Treatment-vs-control pairs analysed when both conditions are in the table."""


@dataclass
class Analysis:
    """All derived tables for a results table; :func:`write_report` renders them."""

    results: pd.DataFrame
    metric_by_task: dict[str, str]
    treatment: str
    control: str
    tau: float
    alpha: float
    summary: pd.DataFrame
    dispersion: pd.DataFrame
    comparisons: list[tuple[str, str]]
    variance: dict[tuple[str, str], pd.DataFrame]
    aso: dict[tuple[str, str], pd.DataFrame]
    gains: pd.DataFrame
    mixed: dict[str, MixedModelResult | str] = field(default_factory=dict)


def analyze(results: pd.DataFrame, *, metric_by_task: dict[str, str] | None = None, treatment: str = "multi",
            control: str = "en", tau: float = DEFAULT_TAU, alpha: float = 0.05,
            n_resamples: int = DEFAULT_RESAMPLES, n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> Analysis:
    """Validate ``results``, keep one metric per task, and compute every table of the report."""
    table = select_metric(validate_results(results), metric_by_task)
    present = set(table["condition"])
    if not {treatment, control} <= present:
        raise XstiltsError(f"results table: the headline comparison needs conditions {treatment!r} and "
                           f"{control!r}; the table has {', '.join(sorted(present))}")
    seeds = sorted(set(table.loc[table["condition"].isin([treatment, control]), "seed"]))
    if len(seeds) < 2:
        raise XstiltsError(f"results table: seed spreads and variance tests need at least 2 seeds of conditions "
                           f"{treatment!r} and {control!r}; the table has seed {seeds[0]} only (a grid with "
                           f"`seeds: [0]` writes no report for this reason)")
    chosen = dict(table.drop_duplicates("task").set_index("task")["metric"])
    summary = seed_summary(table, n_resamples=n_resamples, seed=seed)
    comparisons = [(treatment, control)] + [p for p in COMPARISONS if p != (treatment, control) and set(p) <= present]
    variance = {p: variance_comparison(table, treatment=p[0], control=p[1], n_resamples=n_resamples, seed=seed)
                for p in comparisons}
    aso_tables = {p: aso_table(table, treatment=p[0], control=p[1], tau=tau, alpha=alpha,
                               n_bootstrap=n_bootstrap, seed=seed) for p in comparisons}
    gains = []
    for task, metric in sorted(chosen.items()):
        langs = table[table["task"] == task].drop_duplicates("language")
        targets = langs[langs["language"] != "en"]
        for group, members in [("all", targets)] + list(targets.groupby("resource_group", sort=True)):
            try:
                g = group_gain_ci(table, task, metric, list(members["language"]), treatment=treatment,
                                  control=control, n_resamples=n_resamples, seed=seed)
            except XstiltsError:
                continue
            gains.append({"task": task, "metric": metric, "resource_group": group, **g})
    mixed: dict[str, MixedModelResult | str] = {}
    for task, metric in sorted(chosen.items()):
        rows = table[table["task"] == task]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MixedModelWarning)  # kept in result.notes for the report
                mixed[task] = fit_mixed_model(rows, control=control)
        except XstiltsError as exc:
            mixed[task] = str(exc)
    gain_table = pd.DataFrame(gains, columns=None if gains else ["task", "metric", "resource_group"])
    return Analysis(table, chosen, treatment, control, tau, alpha, summary, language_dispersion(summary),
                    comparisons, variance, aso_tables, gain_table, mixed)  # no gain: still a table with columns


# ----------------------------------------------------------------------------- text

def _decimals(analysis: Analysis, task: str) -> int:
    """1 decimal for scores on a 0-100 scale, 3 for scores in [0, 1]."""
    vals = analysis.results.loc[analysis.results["task"] == task, "value"].abs()
    return 1 if vals.max() > 1.0 else 3


def _num(x: float, d: int, signed: bool = False) -> str:
    if not np.isfinite(x):
        return "unbounded" if np.isinf(x) else "n/a"
    return f"{x:+.{d}f}" if signed else f"{x:.{d}f}"


def _std_factor(n: int) -> tuple[float, float]:
    """95 % chi-square interval of sigma / s for n normal values: how well one std is known."""
    df = n - 1
    return float(np.sqrt(df / stats.chi2.ppf(0.975, df))), float(np.sqrt(df / stats.chi2.ppf(0.025, df)))


def task_sentence(analysis: Analysis, task: str) -> str:
    """One plain-words sentence with the headline numbers for ``task``."""
    t, c = analysis.treatment, analysis.control
    metric = analysis.metric_by_task[task]
    d = _decimals(analysis, task)
    unit = " points" if d == 1 else ""
    gains = analysis.gains[analysis.gains["task"] == task].set_index("resource_group")
    group = LOW if LOW in gains.index else "all"
    res = analysis.results[(analysis.results["task"] == task) & (analysis.results["resource_group"] == LOW)]
    # Only languages scored under both conditions enter the comparison (and the list).
    both = res[res["condition"].isin([t, c])].groupby("language")["condition"].nunique()
    langs = sorted(both[both == 2].index)
    if group == LOW:
        who = f"the {len(langs)} low-resource languages ({', '.join(langs)})"
    else:
        who = "the evaluated non-English languages (none of them is low-resource)"
    if group not in gains.index:
        return f"On {task}, no seed has scores for both `{t}` and `{c}` on every language, so no comparison is possible."
    g = gains.loc[group]
    n_seeds = int(g["n_seeds"])
    test = (f"; exact sign-flip p = {g['p_sign_flip']:.2g}, where {n_seeds} seeds allow no p below "
            f"{2 / 2 ** n_seeds:.2g}" if n_seeds > 1 and n_seeds <= MAX_EXACT_SEEDS and np.isfinite(g["p_sign_flip"])
            else f"; sign-flip p = {g['p_sign_flip']:.2g}" if np.isfinite(g["p_sign_flip"]) else "")
    text = (f"On {task}, {CONDITION_WORDS.get(t, t)} (`{t}`) changed the mean {metric} on {who} by "
            f"{_num(g['gain'], d, True)}{unit} (95% CI {_num(g['ci_low'], d, True)} to {_num(g['ci_high'], d, True)}, "
            f"t interval over {n_seeds} paired seeds{test}) "
            f"relative to {CONDITION_WORDS.get(c, c)} (`{c}`)")
    var = analysis.variance[(t, c)]
    pooled = var[(var["task"] == task) & (var["scope"] == "pooled") & (var["resource_group"] == group)]
    if not pooled.empty:
        p = pooled.iloc[0]
        text += (f"; the seed std ratio {t}/{c} pooled over those languages was {_num(p['std_ratio'], 2)} "
                 f"(95% CI {_num(p['ratio_ci_low'], 2)} to {_num(p['ratio_ci_high'], 2)}, conservative F interval; "
                 f"Brown-Forsythe p = {p['bf_pvalue']:.2g})")
    aso_rows = analysis.aso[(t, c)]
    aso_rows = aso_rows[aso_rows["task"] == task]
    if group == LOW:
        aso_rows = aso_rows[aso_rows["resource_group"] == LOW]
    else:
        aso_rows = aso_rows[aso_rows["language"] != "en"]
    if not aso_rows.empty:
        verdicts = aso_rows["verdict"].value_counts()
        k = int(aso_rows["num_comparisons"].iloc[0])
        text += (f"; ASO (tau = {analysis.tau:g}, Bonferroni over {k} language x task comparisons) found `{t}` "
                 f"better on {int(verdicts.get(f'{t} better', 0))}, `{c}` better on "
                 f"{int(verdicts.get(f'{c} better', 0))} and no order on {int(verdicts.get('no order', 0))} "
                 f"of these {len(aso_rows)} languages")
    return text + "."


def summarise_versions(versions) -> str:
    """``models:/NAME/V`` references grouped per registered name ("NAME v1-15"), others as they are.

    A grid of 40 models would otherwise put 40 references into the report's first paragraph.
    """
    by_name: dict[str, list[int]] = {}
    other: list[str] = []
    for v in sorted(set(versions)):
        parts = v.split("/")
        if v.startswith("models:/") and len(parts) == 3 and parts[2].isdigit():
            by_name.setdefault(parts[1], []).append(int(parts[2]))
        else:
            other.append(v)
    grouped = []
    for name, nums in sorted(by_name.items()):
        nums.sort()
        span = f"v{nums[0]}" if len(nums) == 1 else (
            f"v{nums[0]}-{nums[-1]}" if nums == list(range(nums[0], nums[-1] + 1))
            else "v" + ", v".join(map(str, nums)))
        grouped.append(f"{name} {span}")
    return ", ".join(other + grouped)


def limits_sentence(analysis: Analysis) -> str:
    """What this table can and cannot show, from its own seed counts and metadata."""
    res = analysis.results
    per_cell = res.groupby(["task", "language", "condition"])["seed"].nunique()
    n_min, n_max = int(per_cell.min()), int(per_cell.max())
    seeds = f"{n_min}" if n_min == n_max else f"{n_min}-{n_max}"
    models = summarise_versions(res["model_version"].unique())
    text = (f"These numbers come from {seeds} seeds per language and condition, with model version(s) {models}, "
            f"on the evaluation subsets used by this run (sizes in the run notes), so they describe this encoder "
            f"and these subsets, not XLM-R-large on the full XTREME test sets.")
    if n_min >= 2:
        lo, hi = _std_factor(n_min)
        text += (f" With {n_min} seeds one std is known only to within a factor of {lo:.2f} to {hi:.2f} "
                 f"(95% chi-square interval for normal scores), and no paired test over {n_min} seeds can give "
                 f"p below {2 / 2 ** n_min:.2g} (exact sign-flip); the intervals are t, chi-square and F intervals, "
                 f"which keep their 95% at this seed count (a percentile bootstrap over so few seeds would not), "
                 f"so they are wide: only large changes in mean or spread can be told apart from seed noise; "
                 f"an interval that includes 0 (gain) or 1 (std ratio) means the data cannot show an effect, "
                 f"not that there is none.")
    else:
        text += " With a single seed no spread, interval or test can be computed."
    return text


# ----------------------------------------------------------------------------- rendering

Block = tuple


def _fmt_cell(value: object) -> str:
    """Floats to about three significant digits; infinities spelled out; NaN blank."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if np.isnan(v):
            return ""
        if np.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v != 0 and (abs(v) < 0.01 or abs(v) >= 1e4):
            return f"{v:.3g}"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"
    return str(value)


def _md_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(_fmt_cell(v).replace("|", "\\|") for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _html_inline(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt_cell(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_markdown(blocks: Sequence[Block]) -> str:
    """Markdown for blocks ``("h", level, text)``, ``("p", text)``, ``("ul", items)``,
    ``("table", frame)`` and ``("img", relative_path, alt)``."""
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append("#" * block[1] + " " + block[2])
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            out.append(_md_table(block[1]))
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})")
    return "\n\n".join(out) + "\n"


def render_html(blocks: Sequence[Block], title: str) -> str:
    """The same blocks as a self-contained HTML page (images by relative path)."""
    parts = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{_html_inline(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{_html_inline(block[1])}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            parts.append(_html_table(block[1]))
        elif kind == "img":
            parts.append(f'<p><img src="{html.escape(block[1])}" alt="{html.escape(block[2])}"></p>')
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


# ----------------------------------------------------------------------------- report

def _language_table(analysis: Analysis, task: str) -> pd.DataFrame:
    s = analysis.summary[analysis.summary["task"] == task]
    conds = [c for c in plots.CONDITION_ORDER if c in set(s["condition"])]
    d = _decimals(analysis, task)
    rows = []
    for (lang, group), part in s.groupby(["language", "resource_group"], sort=True):
        row = {"language": lang, "group": group}
        for cond in conds:
            cell = part[part["condition"] == cond]
            if cell.empty:
                row[cond] = ""
                continue
            c = cell.iloc[0]
            row[cond] = (f"{c['mean']:.{d}f} ± {_num(c['std'], d)} [{_num(c['ci_low'], d)}, {_num(c['ci_high'], d)}] "
                         f"(n={int(c['n_seeds'])})")
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values(["group", "language"], key=lambda col: col.map(lambda v: (v != LOW, v))
                             if col.name == "group" else col).reset_index(drop=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def encoder_sentence(encoder, tasks) -> list[str]:
    """The first paragraph's sentence on the encoder (an ``EncoderInfo``; none without one)."""
    from xstilts.tasks import get_task

    if encoder is None:
        return []
    return [encoder.sentence(has_retrieval=any(not get_task(t).family.needs_head for t in tasks))]


def _front_blocks(analysis: Analysis, title: str, notes: Sequence[str], encoder=None) -> list[Block]:
    """Title, the plain-words first paragraph and the "About this run" list."""
    tasks = sorted(analysis.metric_by_task)
    blocks: list[Block] = [("h", 1, title)]
    blocks.append(("p", " ".join([task_sentence(analysis, task) for task in tasks] + [limits_sentence(analysis)]
                                 + encoder_sentence(encoder, tasks))))

    res = analysis.results
    about = [f"Tasks and headline metric: {', '.join(f'{k} ({v})' for k, v in sorted(analysis.metric_by_task.items()))}",
             f"Conditions: {', '.join(sorted(res['condition'].unique()))}; seeds: "
             f"{', '.join(map(str, sorted(res['seed'].unique())))}",
             f"Languages: {res['language'].nunique()} ({', '.join(sorted(res.loc[res['resource_group'] == LOW, 'language'].unique())) or 'none'} low-resource)",
             f"Intermediate specs: {', '.join(sorted(res['intermediate_spec'].unique()))}",
             f"Checkpoint selection: {', '.join(sorted(res['selection_policy'].unique()))}",
             f"Model versions: {summarise_versions(res['model_version'].unique())}; runs: {res['run_id'].nunique()}",
             *notes]
    blocks += [("h", 2, "About this run"), ("ul", about)]
    return blocks


def _gain_and_language_blocks(analysis: Analysis, task: str, metric: str) -> list[Block]:
    """The headline gain table (when there is one), the per-language table and the dispersion table."""
    t, c = analysis.treatment, analysis.control
    blocks: list[Block] = []
    gains = analysis.gains[analysis.gains["task"] == task]
    if not gains.empty:
        blocks += [("h", 3, f"Gain of `{t}` over `{c}` in mean {metric}"),
                   ("p", "Mean over languages of the per-language seed-mean difference; 95% t interval "
                         "of the per-seed gains (one seed = one model, paired across conditions and "
                         "languages; n-1 df) and the exact sign-flip test of those gains (all 2^n sign "
                         "patterns)."),
                   ("table", gains.drop(columns=["task", "metric"]))]
    blocks += [("h", 3, "Per language and condition"),
               ("p", "mean ± std over seeds (ddof=1) [95% t interval of the mean, n-1 df] (seeds)."),
               ("table", _language_table(analysis, task))]
    disp = analysis.dispersion[analysis.dispersion["task"] == task].drop(columns=["task", "metric"])
    blocks += [("h", 3, "Dispersion of per-language means (English excluded)"), ("table", disp)]
    return blocks


def _comparison_blocks(analysis: Analysis, task: str, pair: tuple[str, str]) -> list[Block]:
    """Seed-variance and Almost Stochastic Order tables of one treatment-vs-control pair."""
    blocks: list[Block] = []
    var = analysis.variance[pair]
    var = var[var["task"] == task] if not var.empty else var
    if not var.empty:
        blocks += [("h", 3, f"Seed variance: `{pair[0]}` vs `{pair[1]}`"),
                   ("p", "std ratio with a 95% F interval (ratio_ci_method): per language F(n-1, n-1), "
                         "exact for independent seeds and conservative for these paired seeds; pooled, "
                         "F(n-1, n-1) on the pooled variances, conservative because a seed's languages "
                         "share one model. Brown-Forsythe test per language and pooled per group (each "
                         "language centred on its own median; conservative at 3 seeds)."),
                   ("table", var.drop(columns=["task", "metric"]))]
    asot = analysis.aso[pair]
    asot = asot[asot["task"] == task] if not asot.empty else asot
    if not asot.empty:
        blocks += [("h", 3, f"Almost Stochastic Order: `{pair[0]}` vs `{pair[1]}`"),
                   ("p", f"eps_min < tau = {analysis.tau:g} means the first condition is almost "
                         f"stochastically better; alpha = {analysis.alpha:g} Bonferroni-corrected."),
                   ("table", asot.drop(columns=["task", "metric", "tau"]))]
    return blocks


def _mixed_model_blocks(analysis: Analysis, task: str) -> list[Block]:
    """The mixed-model fit of ``task`` with its notes, or why it was not fitted."""
    mm = analysis.mixed.get(task)
    blocks: list[Block] = [("h", 3, "Mixed model")]
    if isinstance(mm, MixedModelResult):
        blocks += [("p", f"`{mm.formula}`, REML; {mm.n_observations} scores, {mm.n_languages} languages; "
                         f"language variance {mm.language_variance:.3g}, residual variance "
                         f"{mm.residual_variance:.3g}."),
                   ("table", mm.coefficients)]
        if mm.notes:
            blocks.append(("ul", mm.notes))
    else:
        blocks.append(("p", f"Not fitted: {mm}"))
    return blocks


def _figure_blocks(analysis: Analysis, task: str, metric: str, out_dir: Path, prefix: str = "") -> list[Block]:
    """Draws the seed, std-ratio and gain figures of ``task`` into ``out_dir/figures`` and links them
    (``prefix`` keeps the figures of several intermediate settings apart)."""
    t, c = analysis.treatment, analysis.control
    res = analysis.results
    fig_dir = out_dir / "figures"
    stem = _slug(prefix + task)
    figs = [(plots.plot_seed_distributions(res, fig_dir / f"{stem}_seeds.png", task=task, metric=metric),
             f"{task}: scores per seed")]
    var = analysis.variance[(t, c)]
    if not var.empty and (var["task"] == task).any():
        figs.append((plots.plot_std_ratios(var, fig_dir / f"{stem}_std_ratio.png", task=task,
                                           treatment=t, control=c), f"{task}: std ratio {t}/{c}"))
    cell = analysis.summary[(analysis.summary["task"] == task) & (analysis.summary["metric"] == metric)
                            & (analysis.summary["language"] != "en")]
    if {t, c} <= set(cell["condition"]):  # a task scored under one of the two has no gain to draw
        figs.append((plots.plot_gain_by_group(analysis.summary, fig_dir / f"{stem}_gain.png", task=task,
                                              metric=metric, treatment=t, control=c,
                                              classes=JOSHI_CLASS if set(res['language']) <= set(JOSHI_CLASS) else None),
                     f"{task}: gain by resource level"))
    return [("h", 3, "Figures")] + [("img", path.relative_to(out_dir).as_posix(), alt) for path, alt in figs]


def _task_blocks(analysis: Analysis, task: str, out_dir: Path, prefix: str = "") -> list[Block]:
    """One task's section: gains, per-language tables, each comparison, the mixed model and the figures
    (``prefix``: the intermediate setting it belongs to, in the heading and the figure names)."""
    metric = analysis.metric_by_task[task]
    blocks: list[Block] = [("h", 2, f"{prefix}{task} ({metric})")]
    blocks += _gain_and_language_blocks(analysis, task, metric)
    for pair in analysis.comparisons:
        blocks += _comparison_blocks(analysis, task, pair)
    blocks += _mixed_model_blocks(analysis, task)
    blocks += _figure_blocks(analysis, task, metric, out_dir, prefix)
    return blocks


def task_method_notes(tasks: Sequence[str]) -> list[str]:
    """Each task family's sentence on how its scores were produced (tag alignment, ...)."""
    from xstilts.errors import UnknownNameError
    from xstilts.tasks import get_task

    notes = []
    for name in sorted(set(tasks)):
        try:
            task = get_task(name)
        except UnknownNameError:  # a results table from a run whose declared tasks are not registered here
            continue
        note = task.family.method_note(task)
        if note:
            notes.append(note)
    return notes


def _methods_blocks(analysis: Analysis) -> list[Block]:
    """The closing "Methods" list: which test or interval each table uses, then how tasks were scored."""
    return [("h", 2, "Methods"), ("ul", [
        "Resource groups: Joshi et al. (2020) classes, low = class <= 2 unless the table says otherwise.",
        "Seed statistics: mean and std (ddof=1) per language x condition; 95% t interval of the mean "
        "(n-1 df) and chi-square interval of the std (seeds.py, small_sample.py).",
        "Gains: t interval of the per-seed gains (seeds paired across conditions and languages) and the exact "
        "sign-flip test of those gains (all 2^n patterns up to 12 seeds, random flips above).",
        "Variance: Brown-Forsythe (Levene, median-centred) test; std ratio with an F interval, F(n-1, n-1) per "
        "language (exact for independent seeds, conservative for paired ones) and on the pooled variances "
        "(conservative: the languages of one seed are not independent).",
        "Means: Almost Stochastic Order (del Barrio et al. 2018; Dror et al. 2019), own implementation, "
        f"tau = {analysis.tau:g}, Bonferroni over languages x tasks; its sigma_hat is a bootstrap, part of the "
        "published method, which at 3-5 seeds pushes eps_min towards 0.5 (no order).",
        "Mixed model: statsmodels MixedLM, score ~ condition * resource_group + (1 | language); Wald (normal) "
        "intervals, which rest on the number of scores (languages x seeds), not on the seeds alone.",
    ] + task_method_notes(list(analysis.metric_by_task)))]


def build_blocks(analysis: Analysis, out_dir: Path, *, title: str, notes: Sequence[str], encoder=None) -> list[Block]:
    """Report content as blocks; draws the figures into ``out_dir/figures``."""
    blocks = _front_blocks(analysis, title, notes, encoder)
    for task in sorted(analysis.metric_by_task):
        blocks += _task_blocks(analysis, task, out_dir)
    return blocks + _methods_blocks(analysis)


def write_report(results: pd.DataFrame, out_dir: str | PathLike[str], *, title: str = "X-STILTs: accuracy and seed variance",
                 notes: Sequence[str] = (), encoder=None, **analysis_options: object) -> Path:
    """Analyse ``results`` and write ``report.md``, ``report.html`` and ``figures/`` under ``out_dir``.

    ``analysis_options`` go to :func:`analyze` (metric_by_task, treatment, control,
    tau, alpha, n_resamples, n_bootstrap, seed); ``encoder`` (an
    :class:`~xstilts.encoders.describe.EncoderInfo`) is named in the first paragraph. A
    table with several intermediate settings gets the comparison of
    :mod:`xstilts.analysis.axis_report`. Returns the path of ``report.md``.
    """
    from xstilts.analysis.intermediates import intermediate_names

    out = Path(out_dir)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XstiltsError(f"cannot create report directory {out}: {exc.strerror}") from exc
    try:
        if len(intermediate_names(validate_results(results))) > 1:
            from xstilts.analysis.axis_report import build_axis_blocks

            blocks = build_axis_blocks(results, out, title=title, notes=notes, encoder=encoder, **analysis_options)
        else:
            analysis = analyze(results, **analysis_options)  # type: ignore[arg-type]
            blocks = build_blocks(analysis, out, title=title, notes=notes, encoder=encoder)
    except BaseException:
        if created:  # a refused table (or a crash) leaves no half-made report folder
            shutil.rmtree(out, ignore_errors=True)
        raise
    md_path = out / "report.md"
    md_path.write_text(render_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(render_html(blocks, title), encoding="utf-8")
    return md_path
