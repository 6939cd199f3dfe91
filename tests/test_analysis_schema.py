"""Results-table validation and the Joshi et al. (2020) resource-group mapping."""
from __future__ import annotations

import pandas as pd
import pytest

from xstilts.analysis.resource_groups import (JOSHI_CLASS, read_class_mapping, resource_class,
                                              resource_group)
from xstilts.analysis.schema import RESULT_COLUMNS, select_metric, validate_results
from xstilts.errors import DataFormatError, UnknownNameError, XstiltsError


def _row(**over: object) -> dict[str, object]:
    row = dict(task="panx", language="sw", resource_group="low", condition="en", seed=1,
               intermediate_spec="xnli:en", selection_policy="last", metric="f1", value=61.5,
               model_version="m@1", run_id="r1")
    row.update(over)
    return row


def test_valid_table_is_coerced() -> None:
    table = pd.DataFrame([_row(seed="2", value="61.5"), _row(condition="multi")])
    out = validate_results(table)
    assert out["value"].dtype == float and out["seed"].dtype.kind == "i"
    assert list(out.columns) == list(RESULT_COLUMNS)


def test_an_empty_tuning_column_read_from_csv_becomes_none(tmp_path) -> None:
    """pandas reads an all-empty column as float NaN; filling it with a string must not warn
    (pandas 3 warns that it will raise)."""
    import warnings

    path = tmp_path / "results.csv"
    pd.DataFrame([_row(tuning=""), _row(condition="multi", tuning="")]).to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = validate_results(pd.read_csv(path))
    assert out["tuning"].tolist() == ["none", "none"]


@pytest.mark.parametrize("table, needle", [
    (pd.DataFrame([_row()]).drop(columns=["metric", "run_id"]), "missing column(s) metric, run_id"),
    (pd.DataFrame([_row(), _row(condition="xx", seed=2)]), "row 1, column 'condition': unknown condition 'xx'"),
    (pd.DataFrame([_row(value="n/a")]), "row 0, column 'value': expected a finite number"),
    (pd.DataFrame([_row(seed=1.5)]), "row 0, column 'seed': expected an integer"),
    (pd.DataFrame([_row(), _row()]), "row 1 repeats an earlier row's key"),
    (pd.DataFrame([_row(), _row(seed=2, resource_group="high")]), "language 'sw' has several resource groups"),
    (pd.DataFrame([_row(language="")]), "row 0, column 'language': expected a non-empty name"),
])
def test_bad_tables_name_the_problem(table: pd.DataFrame, needle: str) -> None:
    with pytest.raises(XstiltsError, match="results.csv") as info:
        validate_results(table, source="results.csv")
    assert needle in str(info.value)


def test_select_metric_prefers_f1_and_honours_override() -> None:
    table = validate_results(pd.DataFrame([_row(task="tydiqa", metric="exact_match"), _row(task="tydiqa", metric="f1")]))
    assert set(select_metric(table)["metric"]) == {"f1"}
    assert set(select_metric(table, {"tydiqa": "exact_match"})["metric"]) == {"exact_match"}
    with pytest.raises(XstiltsError, match="no metric 'bleu'"):
        select_metric(table, {"tydiqa": "bleu"})


def test_issue_low_resource_set_is_joshi_class_at_most_two() -> None:
    # Joshi et al. (2020) lang2tax: telugu/burmese/javanese/malayalam 1, marathi/swahili/yoruba 2.
    low = {lang for lang in JOSHI_CLASS if resource_group(lang) == "low"}
    assert {"mr", "sw", "yo", "jv", "ml", "my", "te"} <= low
    assert resource_class("en") == 5 and resource_class("hi") == 4 and resource_class("bn") == 3
    assert resource_group("tel") == "low"  # Tatoeba's ISO 639-3 code
    assert resource_group("sw", low_max_class=1) == "high"


def test_unknown_language_asks_for_its_class() -> None:
    with pytest.raises(XstiltsError, match=r"'xx' has no Joshi et al\. \(2020\) class.*resource_classes"):
        resource_class("xx")
    with pytest.raises(UnknownNameError, match="'xx'"):
        resource_class("xx", mapping={"sw": 2})
    assert resource_group("xx", mapping={"xx": 0}) == "low"


def test_read_class_mapping(tmp_path) -> None:
    good = tmp_path / "classes.csv"
    good.write_text("language,class\nsw,2\n# comment\nde,5\n", encoding="utf-8")
    assert read_class_mapping(good) == {"sw": 2, "de": 5}
    bad = tmp_path / "bad.csv"
    bad.write_text("sw,2\nde,five\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.csv, line 2: expected an integer class"):
        read_class_mapping(bad)
