"""Almost Stochastic Order on cases with a known answer."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from xstilts.analysis.aso import aso, aso_table, bonferroni_alpha, violation_ratio


def test_violation_ratio_by_hand() -> None:
    # Quantile differences A-B on thirds: 1, 1, -2 -> violation 4 / (1 + 1 + 4).
    assert violation_ratio([1, 2, 3], [0, 1, 5]) == pytest.approx(2 / 3)
    # Unequal sizes: pieces (0,1/3] d=0, (1/3,1/2] d=-1, (1/2,2/3] d=2, (2/3,1] d=1
    # -> (1/6) / (1/6 + 4/6 + 1/3) = 1/7.
    assert violation_ratio([0, 3], [0, 1, 2]) == pytest.approx(1 / 7)
    assert violation_ratio([0, 1], [0, 1, 2]) == 1.0
    assert violation_ratio([5.0, 6.0], [5.0, 6.0]) == 0.5  # equal quantile functions


def test_clearly_separated_and_reversed() -> None:
    rng = np.random.default_rng(0)
    better, worse = rng.normal(1.0, 1.0, 500), rng.normal(0.0, 1.0, 500)
    assert aso(better, worse, rng=1).eps_min < 0.05
    assert aso(worse, better, rng=1).eps_min > 0.95


def test_same_distribution_gives_no_order() -> None:
    rng = np.random.default_rng(3)
    ratios, claims = [], 0
    for i in range(40):
        a, b = rng.normal(0, 1, 200), rng.normal(0, 1, 200)
        fwd, bwd = aso(a, b, n_bootstrap=300, rng=i), aso(b, a, n_bootstrap=300, rng=i)
        ratios.append(fwd.violation_ratio)
        claims += (fwd.eps_min < 0.2) + (bwd.eps_min < 0.2)
    assert np.mean(ratios) == pytest.approx(0.5, abs=0.1)
    assert claims / 80 <= 0.1  # dominance is (rarely) claimed only by chance


def test_population_value_for_normals_with_different_spread() -> None:
    # A ~ N(0.5, 1), B ~ N(0, 2^2): F^-1 - G^-1 = 0.5 - z_t, violation where z_t > 0.5;
    # eps_W2 = int_{z>0.5} (0.5-z)^2 phi(z) dz / (0.25 + 1).
    expected = integrate.quad(lambda z: (0.5 - z) ** 2 * stats.norm.pdf(z), 0.5, np.inf)[0] / 1.25
    rng = np.random.default_rng(4)
    assert violation_ratio(rng.normal(0.5, 1, 40_000), rng.normal(0, 2, 40_000)) == pytest.approx(expected, abs=0.02)
    # Equal means, different spread: symmetric, so exactly half the distance violates.
    assert violation_ratio(rng.normal(0, 1, 40_000), rng.normal(0, 2, 40_000)) == pytest.approx(0.5, abs=0.02)


def test_bonferroni_makes_eps_min_larger() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.3, 1, 30), rng.normal(0, 1, 30)
    one, many = aso(a, b, rng=0), aso(a, b, num_comparisons=20, rng=0)
    assert many.alpha == pytest.approx(bonferroni_alpha(0.05, 20)) == pytest.approx(0.0025)
    assert many.eps_min >= one.eps_min
    assert one.violation_ratio == many.violation_ratio


def test_aso_table_verdicts() -> None:
    import pandas as pd
    rows = []
    for lang, shift in [("sw", 5.0), ("de", 0.0)]:
        for cond, extra in [("multi", shift), ("en", 0.0)]:
            for seed, noise in enumerate([0.1, -0.2, 0.3, 0.0, -0.1]):
                rows.append(dict(task="panx", metric="f1", language=lang, resource_group="low" if lang == "sw" else "high",
                                 condition=cond, seed=seed, value=50 + extra + noise + (0.05 * seed if cond == "en" else 0)))
    table = aso_table(pd.DataFrame(rows), treatment="multi", control="en", n_bootstrap=300)
    verdict = dict(zip(table["language"], table["verdict"]))
    assert verdict["sw"] == "multi better"
    assert verdict["de"] == "no order"
    assert set(table["num_comparisons"]) == {2}
