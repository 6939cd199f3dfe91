"""The mixed model recovers a planted condition x resource-group effect."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xstilts.analysis.mixed_model import MixedModelWarning, fit_mixed_model
from xstilts.errors import XstiltsError


def _simulate(interaction: float, language_sd: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(12):
        group = "low" if i < 6 else "high"
        level = 55 + rng.normal(0, language_sd) - (8 if group == "low" else 0)
        for cond, effect in [("none", -2.0), ("en", 0.0), ("multi", 1.0 + (interaction if group == "low" else 0.0))]:
            for s in range(5):
                rows.append(dict(task="panx", metric="f1", language=f"l{i}", resource_group=group,
                                 condition=cond, seed=s, value=level + effect + rng.normal(0, 1.0)))
    return pd.DataFrame(rows)


def test_planted_interaction_is_recovered() -> None:
    fit = fit_mixed_model(_simulate(interaction=3.0, language_sd=4.0))
    coef = fit.coefficients.set_index("term")
    inter = coef.loc["condition[T.multi]:resource_group[T.low]"]
    assert inter["ci_low"] < 3.0 < inter["ci_high"]
    assert inter["p_value"] < 1e-6
    main = coef.loc["condition[T.multi]"]
    assert main["ci_low"] < 1.0 < main["ci_high"]
    assert coef.loc["condition[T.none]", "estimate"] == pytest.approx(-2.0, abs=0.6)
    assert fit.language_variance == pytest.approx(16.0, rel=0.8) and not fit.singular
    assert fit.n_languages == 12 and fit.n_observations == 180


def test_singular_fit_warns_clearly() -> None:
    # Every language x condition gets the same five residuals in a shuffled order,
    # so all language means are identical and the language variance is exactly 0.
    rng = np.random.default_rng(3)
    rows = []
    for i in range(10):
        for cond, effect in [("en", 0.0), ("multi", 1.0)]:
            for s, noise in enumerate(rng.permutation([-2.0, -1.0, 0.0, 1.0, 2.0])):
                rows.append(dict(task="panx", metric="f1", language=f"l{i}", resource_group="low" if i < 5 else "high",
                                 condition=cond, seed=s, value=50 + effect + noise))
    data = pd.DataFrame(rows)
    with pytest.warns(MixedModelWarning, match="singular fit"):
        fit = fit_mixed_model(data)
    assert fit.singular and any("singular" in n for n in fit.notes)
    # The planted multi - en effect is 1 exactly in every language.
    assert fit.coefficients.set_index("term").loc["condition[T.multi]", "estimate"] == pytest.approx(1.0, abs=1e-3)


def test_unfittable_inputs_raise() -> None:
    data = _simulate(interaction=0.0, language_sd=1.0)
    with pytest.raises(XstiltsError, match="three or more languages"):
        fit_mixed_model(data[data["language"].isin(["l0", "l1"])])
    with pytest.raises(XstiltsError, match="two or more conditions"):
        fit_mixed_model(data[data["condition"] == "en"])
