"""Registry: the 18 tasks, XTREME language lists, lookups and `xstilts tasks list`."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from xstilts.errors import UnknownNameError
from xstilts.tasks import get_task, list_tasks, task_names
from xstilts.tasks.commands import tasks_group

# Language counts per XTREME task (Hu et al. 2020, Table 1 / google-research/xtreme scripts).
XTREME_LANGUAGE_COUNTS = {"xnli": 15, "pawsx": 7, "udpos": 33, "panx": 40, "xquad": 11, "mlqa": 7,
                          "tydiqa": 9, "bucc2018": 4, "tatoeba": 36}
INTERMEDIATE = {"anli", "mnli", "qqp", "sst2", "squad", "squad_v2", "hellaswag", "commonsenseqa", "cosmosqa"}


def test_eighteen_tasks_with_xtreme_language_counts() -> None:
    assert set(task_names("target")) == set(XTREME_LANGUAGE_COUNTS)
    assert set(task_names("intermediate")) == INTERMEDIATE
    for name, n in XTREME_LANGUAGE_COUNTS.items():
        langs = get_task(name).languages
        assert len(langs) == n == len(set(langs)), name
    assert all(get_task(n).languages == ("en",) for n in INTERMEDIATE)


def test_xtreme_language_lists_spot_checks() -> None:
    assert get_task("xnli").languages == ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr",
                                          "ur", "vi", "zh")
    assert set(get_task("tydiqa").languages) == {"en", "ar", "bn", "fi", "id", "ko", "ru", "sw", "te"}
    assert set(get_task("bucc2018").languages) == {"de", "fr", "ru", "zh"}
    # XTREME-R additions are not part of XTREME's lists.
    assert not {"lt", "pl", "uk", "ro", "wo"} & set(get_task("udpos").languages)
    assert "en" not in get_task("tatoeba").languages and "ms" in get_task("panx").languages


def test_families_and_metrics_declared() -> None:
    fam = {t.name: t.family.name for t in list_tasks()}
    assert fam["udpos"] == fam["panx"] == "tagging"
    assert {fam[n] for n in ("xquad", "mlqa", "tydiqa", "squad", "squad_v2")} == {"span_qa"}
    assert {fam[n] for n in ("hellaswag", "commonsenseqa", "cosmosqa")} == {"multiple_choice"}
    assert fam["tatoeba"] == fam["bucc2018"] == "retrieval"
    assert all(t.metric for t in list_tasks())
    assert get_task("xquad").train_task == "squad" and get_task("tatoeba").train_languages == ()


def test_unknown_task_lists_choices() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_task("xnly")
    assert "xnli" in str(err.value) and "tatoeba" in str(err.value)


def test_unknown_language_lists_choices() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_task("pawsx").check_language("sw")
    msg = str(err.value)
    assert "'sw'" in msg and "de, en, es, fr, ja, ko, zh" in msg


def test_cli_list_json() -> None:
    result = CliRunner().invoke(tasks_group, ["list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data) == 18
    by_name = {d["name"]: d for d in data}
    assert len(by_name["panx"]["languages"]) == 40 and by_name["panx"]["family"] == "tagging"
    assert by_name["xnli"]["metric"] == "accuracy"


def test_cli_list_table() -> None:
    result = CliRunner().invoke(tasks_group, ["list"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:4] == ["task", "kind", "family", "metric"] and len(lines) == 19
