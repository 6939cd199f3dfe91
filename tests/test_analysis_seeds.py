"""Seed summaries and bootstrap confidence intervals."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xstilts.analysis.dispersion import gap_to_reference, language_dispersion
from xstilts.analysis.seeds import bootstrap_mean_ci, group_gain_ci, seed_summary


def test_bootstrap_ci_coverage_on_a_simulated_normal() -> None:
    rng = np.random.default_rng(0)
    reps, n, mu = 300, 25, 5.0
    hits = 0
    for i in range(reps):
        low, high = bootstrap_mean_ci(rng.normal(mu, 2.0, n), n_resamples=1000, rng=i)
        hits += low <= mu <= high
    # Percentile bootstrap of a mean at n=25 covers slightly under 95%; binomial sd ~1.3%.
    assert 0.89 <= hits / reps <= 0.98


def test_bootstrap_ci_edge_cases() -> None:
    assert bootstrap_mean_ci([3.0]) == (3.0, 3.0)
    low, high = bootstrap_mean_ci([1.0, 2.0, 3.0], rng=0)
    assert 1.0 <= low <= 2.0 <= high <= 3.0  # cannot leave the observed range


def _table(gain_low: float = 4.0) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for lang, group, level in [("en", "high", 80), ("de", "high", 70), ("sw", "low", 50), ("yo", "low", 45)]:
        for seed in range(5):
            run = rng.normal(0, 1)  # one model per seed: shared by languages and conditions
            for cond in ("en", "multi"):
                extra = gain_low if (cond == "multi" and group == "low") else 0.0
                rows.append(dict(task="panx", metric="f1", language=lang, resource_group=group, condition=cond,
                                 seed=seed, value=level + extra + run + rng.normal(0, 0.3)))
    return pd.DataFrame(rows)


def test_seed_summary_matches_pandas() -> None:
    table = _table()
    summary = seed_summary(table, n_resamples=500)
    ref = table.groupby(["language", "condition"])["value"].agg(["mean", "std", "size"])
    ref.columns = ["mean_ref", "std_ref", "size"]
    merged = summary.set_index(["language", "condition"]).join(ref)
    assert np.allclose(merged["mean"], merged["mean_ref"]) and np.allclose(merged["std"], merged["std_ref"])
    assert (merged["n_seeds"] == merged["size"]).all()
    assert (merged["ci_low"] <= merged["mean"]).all() and (merged["mean"] <= merged["ci_high"]).all()


def test_group_gain_ci_recovers_planted_gain() -> None:
    table = _table(gain_low=4.0)
    low = group_gain_ci(table, "panx", "f1", ["sw", "yo"], treatment="multi", control="en")
    high = group_gain_ci(table, "panx", "f1", ["de"], treatment="multi", control="en")
    assert low["ci_low"] < 4.0 < low["ci_high"] and low["n_seeds"] == 5 and low["n_languages"] == 2
    assert high["ci_low"] < 0.0 < high["ci_high"]
    # Pairing by seed removes the shared run effect, so the interval is narrow.
    assert low["ci_high"] - low["ci_low"] < 1.0


def test_dispersion_and_gap_to_english() -> None:
    summary = seed_summary(_table(), n_resamples=200)
    disp = language_dispersion(summary).set_index(["condition", "resource_group"])
    en_means = summary[summary["condition"] == "en"].set_index("language")["mean"]
    targets = en_means.drop("en")
    row = disp.loc[("en", "all")]
    assert row["n_languages"] == 3
    assert row["std_of_means"] == pytest.approx(targets.std(ddof=1))
    assert row["range"] == pytest.approx(targets.max() - targets.min())
    assert row["gap_to_en"] == pytest.approx(en_means["en"] - targets.mean())
    assert disp.loc[("en", "low"), "n_languages"] == 2
    gaps = gap_to_reference(summary).set_index(["language", "condition"])["gap_to_en"]
    assert gaps[("sw", "en")] == pytest.approx(en_means["en"] - en_means["sw"])
