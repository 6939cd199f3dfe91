"""Brown-Forsythe against scipy, pooling across languages, and std-ratio bootstrap CIs."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from xstilts.analysis.variance_tests import (brown_forsythe, pooled_brown_forsythe, pooled_std_ratio_ci,
                                             std_ratio_ci)
from xstilts.errors import XstiltsError


@pytest.mark.parametrize("sizes, scales", [((3, 3), (1, 1)), ((5, 8), (1, 3)), ((4, 6, 7), (1, 2, 0.5)), ((10, 10), (2, 2))])
def test_brown_forsythe_matches_scipy_levene_median(sizes, scales) -> None:
    rng = np.random.default_rng(sum(sizes))
    groups = [rng.normal(50, s, n) for n, s in zip(sizes, scales)]
    ours = brown_forsythe(*groups)
    ref = stats.levene(*groups, center="median")
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-10)
    assert (ours.df_between, ours.df_within) == (len(sizes) - 1, sum(sizes) - len(sizes))


def test_brown_forsythe_needs_two_values_per_group() -> None:
    with pytest.raises(XstiltsError, match="group sizes"):
        brown_forsythe([1.0, 2.0], [3.0])


def test_pooled_brown_forsythe_centres_each_language_on_its_median() -> None:
    rng = np.random.default_rng(0)
    cells = [(rng.normal(0, 2, 5), rng.normal(0, 1, 5)) for _ in range(4)]
    # Reference: one-way ANOVA (scipy f_oneway) on absolute deviations from each cell's median.
    dev = [np.concatenate([np.abs(c[j] - np.median(c[j])) for c in cells]) for j in range(2)]
    ref = stats.f_oneway(*dev)
    ours = pooled_brown_forsythe(cells)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-10)
    # Shifting whole languages (their level) must not change the pooled test.
    shifted = [(a + 10 * k, b - 7 * k) for k, (a, b) in enumerate(cells)]
    assert pooled_brown_forsythe(shifted).statistic == pytest.approx(ours.statistic, rel=1e-10)


def test_std_ratio_ci_value_and_interval() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 3, 40), rng.normal(0, 1, 40)
    out = std_ratio_ci(a, b, n_resamples=2000, rng=0)
    assert out["ratio"] == pytest.approx(a.std(ddof=1) / b.std(ddof=1))
    assert out["ci_low"] < out["ratio"] < out["ci_high"]
    assert out["ci_low"] > 1.5 and out["ci_high"] < 6  # true ratio 3
    assert out["degenerate"] == 0.0


def test_std_ratio_degenerate_share_with_three_seeds() -> None:
    # All three resampled values equal with probability 3 * (1/3)^3 = 1/9.
    out = std_ratio_ci([1.0, 2.0, 4.0], [10.0, 11.0, 13.0], n_resamples=8000, rng=3)
    assert out["degenerate"] == pytest.approx(1 / 9, abs=0.015)
    with pytest.raises(XstiltsError, match="equal sizes"):
        std_ratio_ci([1.0, 2.0, 3.0], [1.0, 2.0], paired=True)


def test_pooled_std_ratio_recovers_planted_ratio() -> None:
    rng = np.random.default_rng(2)
    levels = rng.uniform(30, 70, 6)
    scores = np.stack([levels + rng.normal(0, 2, (30, 6)), levels + rng.normal(0, 1, (30, 6))], axis=-1)
    out = pooled_std_ratio_ci(scores, n_resamples=1000, rng=0)
    # True ratio 2: the interval excludes 1 and brackets the estimate.
    assert 1.3 < out["ci_low"] < out["ratio"] < out["ci_high"] < 3.0
    assert out["ratio"] == pytest.approx(np.sqrt(scores[..., 0].var(axis=0, ddof=1).mean()
                                                 / scores[..., 1].var(axis=0, ddof=1).mean()))
