"""Leakage validator: training splits may never be evaluation splits in the same experiment."""
from __future__ import annotations

import pytest

from xstilts.data.intermediate_spec import english_spec, matched_multilingual
from xstilts.data.leakage import LeakageError, SplitUse, check_no_leakage, find_leaks, uses_from_spec


def test_xnli_dev_used_for_intermediate_training_blocks_xnli_dev_eval() -> None:
    spec = matched_multilingual(english_spec("xnli", 2490, split="dev", kind="human_translated_parallel"),
                                {"sw": 1.0, "ur": 1.0}, kind="human_translated_parallel", include_english=False)
    uses = [*uses_from_spec(spec), SplitUse("xnli", "dev", ("en",), "evaluation")]
    with pytest.raises(LeakageError) as err:
        check_no_leakage(uses)
    msg = str(err.value)
    assert "xnli/dev [en] as evaluation is also used for xnli/dev [sw,ur] as intermediate train" in msg
    assert "translations" in msg


def test_test_split_evaluation_is_fine() -> None:
    spec = english_spec("xnli", 2490, split="dev", kind="human_translated_parallel")
    uses = [*uses_from_spec(spec), SplitUse("xnli", "test", ("en", "sw"), "evaluation"),
            SplitUse("xnli", "train", ("en",), "target_train")]
    check_no_leakage(uses)


def test_non_parallel_task_needs_language_overlap() -> None:
    train = SplitUse("panx", "dev", ("en",), "target_train")
    assert find_leaks([train, SplitUse("panx", "dev", ("sw",), "evaluation")]) == []
    with pytest.raises(LeakageError, match="panx/dev \\[en\\] as model selection"):
        check_no_leakage([train, SplitUse("panx", "dev", ("en",), "model_selection")])


def test_different_tasks_never_conflict() -> None:
    assert find_leaks([SplitUse("mnli", "dev", ("en",), "intermediate_train"),
                       SplitUse("xnli", "dev", ("en",), "evaluation")]) == []
