"""End-to-end report generation on a synthetic results table."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from xstilts.analysis.report import write_report
from xstilts.analysis.resource_groups import resource_group
from xstilts.analysis.schema import RESULT_COLUMNS
from xstilts.errors import XstiltsError

LANGS = ["en", "de", "hi", "mr", "sw", "yo", "te"]


def _results(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for task, metric in [("panx", "f1"), ("tatoeba", "accuracy")]:
        for lang in LANGS:
            level = 80.0 if lang == "en" else rng.uniform(35, 70)
            low = resource_group(lang) == "low"
            for cond, effect, sd in [("none", -3.0, 1.0), ("en", 0.0, 1.0), ("multi", 2.5 if low else 0.0, 2.0)]:
                for s in range(3):
                    rows.append(dict(task=task, language=lang, resource_group=resource_group(lang), condition=cond,
                                     seed=s, intermediate_spec=f"xnli-dev:{cond}", selection_policy="last",
                                     metric=metric, value=level + effect + rng.normal(0, sd),
                                     model_version="e5-small-q4@3", run_id=f"run-{task}-{cond}-{s}"))
        # A second metric the report must ignore for the headline.
        if task == "panx":
            rows += [dict(r, metric="precision", value=r["value"] - 5) for r in rows if r["task"] == "panx"]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def _expected(table: pd.DataFrame, task: str, metric: str) -> tuple[float, float]:
    """Low-resource gain multi - en and pooled std ratio, computed directly with pandas."""
    part = table[(table["task"] == task) & (table["metric"] == metric) & (table["resource_group"] == "low")]
    means = part.groupby(["language", "condition"])["value"].mean().unstack()
    gain = float((means["multi"] - means["en"]).mean())
    var = part.groupby(["language", "condition"])["value"].var(ddof=1).unstack()
    ratio = float(np.sqrt(var["multi"].mean()) / np.sqrt(var["en"].mean()))
    return gain, ratio


def test_report_end_to_end(tmp_path) -> None:
    table = _results()
    md_path = write_report(table, tmp_path / "rep", title="Synthetic grid", notes=["PAN-X subset: 100 sentences"],
                           n_resamples=400, n_bootstrap=200)
    out = tmp_path / "rep"
    assert md_path == out / "report.md"
    html_text = (out / "report.html").read_text(encoding="utf-8")
    md = md_path.read_text(encoding="utf-8")

    first = md.split("\n\n")[1]  # after the title
    for task, metric in [("panx", "f1"), ("tatoeba", "accuracy")]:
        assert f"On {task}," in first
        gain, ratio = _expected(table, task, metric)
        sentence = first[first.index(f"On {task},"):]
        assert f"by {gain:+.1f} points (95% CI" in sentence
        assert f"pooled over those languages was {ratio:.2f} (95% CI" in sentence
        assert "ASO (tau = 0.2, Bonferroni over 14 language x task comparisons)" in sentence
    assert "3 seeds per language and condition" in first and "e5-small-q4@3" in first
    assert "cannot show" in first
    assert "PAN-X subset: 100 sentences" in md
    assert "precision" not in first

    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == 6
    for rel in images:
        png = out / rel
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'<img src="{rel}"' in html_text
    assert "<table>" in html_text and "<code>multi</code>" in html_text
    assert "## panx (f1)" in md and "Mixed model" in md and "condition[T.multi]" in md
    methods = md[md.index("## Methods"):]
    assert "panx: each word's tag on its first sub-token (tag_alignment first_subtoken" in methods


def test_report_is_deterministic(tmp_path) -> None:
    table = _results(seed=1)
    a = write_report(table, tmp_path / "a", n_resamples=200, n_bootstrap=100).read_text(encoding="utf-8")
    b = write_report(table, tmp_path / "b", n_resamples=200, n_bootstrap=100).read_text(encoding="utf-8")
    assert a == b


def test_report_refuses_table_without_headline_conditions(tmp_path) -> None:
    table = _results()
    with pytest.raises(XstiltsError, match="needs conditions 'multi' and 'en'"):
        write_report(table[table["condition"] != "multi"], tmp_path / "x")
    with pytest.raises(XstiltsError, match="missing column"):
        write_report(table.drop(columns=["run_id"]), tmp_path / "y")


def test_analyze_of_a_one_seed_table_is_one_clear_line(tmp_path) -> None:
    """A one-seed grid's table (the grid itself skips its report) got a KeyError from `xstilts analyze`."""
    from click.testing import CliRunner

    from xstilts.cli import main

    table = _results()
    with pytest.raises(XstiltsError, match="at least 2 seeds of conditions 'multi' and 'en'; the table has seed 0"):
        write_report(table[table["seed"] == 0], tmp_path / "x")
    table[table["seed"] == 0].to_csv(tmp_path / "results.csv", index=False)
    result = CliRunner().invoke(main, ["analyze", "--results", str(tmp_path / "results.csv"), "--out",
                                       str(tmp_path / "rep"), "--no-log-mlflow"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "at least 2 seeds" in result.output and not (tmp_path / "rep").exists()  # no empty report folder


def test_a_one_seed_table_of_several_intermediates_is_refused_the_same_way(tmp_path) -> None:
    from test_intermediate_axis import _axis_results  # its synthetic table of two intermediate settings

    table = _axis_results()
    with pytest.raises(XstiltsError, match="at least 2 seeds"):
        write_report(table[table["seed"] == 0], tmp_path / "rep", n_resamples=100, n_bootstrap=50)
    assert not (tmp_path / "rep").exists()


def test_model_versions_are_grouped_per_registered_name():
    from xstilts.analysis.report import summarise_versions

    refs = ["default"] + [f"models:/xstilts-target-panx/{v}" for v in (3, 1, 2, 10)] + \
        [f"models:/xstilts-intermediate-xnli/{v}" for v in range(1, 11)]
    assert summarise_versions(refs) == ("default, xstilts-intermediate-xnli v1-10, "
                                        "xstilts-target-panx v1, v2, v3, v10")
    assert summarise_versions(["e5-small-q4@3"]) == "e5-small-q4@3"


# -- tables a mutation fuzz of `xstilts analyze` broke (a scratch script, 2026-12-08) --------------------

def test_an_infinite_seed_is_one_error_naming_its_row(tmp_path) -> None:
    table = _results()
    table["seed"] = table["seed"].astype(float)
    table.loc[5, "seed"] = np.inf  # was an IntCastingNaNError traceback
    with pytest.raises(XstiltsError, match="row 5, column 'seed': expected an integer, got inf$"):
        write_report(table, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_missing_model_versions_and_a_task_without_the_headline_pair_still_give_a_report(tmp_path) -> None:
    table = _results()
    table.loc[table.index[:7], "model_version"] = np.nan  # sorted with the strings: a TypeError
    extra = table[(table["task"] == "tatoeba") & (table["condition"] != "multi")].assign(task="udpos")
    path = write_report(pd.concat([table, extra], ignore_index=True), tmp_path / "r")  # udpos: no multi, no gain
    figures = {p.name for p in (tmp_path / "r" / "figures").iterdir()}
    assert "panx_gain.png" in figures and "udpos_gain.png" not in figures and "udpos_seeds.png" in figures
    assert "udpos" in path.read_text()


def test_an_intermediate_setting_scored_on_english_only_gets_a_sentence_not_a_traceback(tmp_path) -> None:
    table = _results().assign(intermediate=lambda t: np.where(t["condition"] == "none", "none", "xnli"))
    english = (table["condition"] != "none") & (table["task"] == "tatoeba") & (table["language"] == "en")
    other = table[english].assign(intermediate="mnli")  # no zero-shot language: empty gain, variance and ASO tables
    path = write_report(pd.concat([table, other], ignore_index=True), tmp_path / "r")  # was KeyError: 'task'
    assert "mnli" in path.read_text()
