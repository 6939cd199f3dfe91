"""Config files with slips people make: each is one error naming the field, before anything runs.

The cases are those a mutation fuzz of `configs/*.yaml` found getting through the loader (a scratch
script, 2026-12-08: 16,000 mutated files): an AttributeError or TypeError later, or a run that would
fail only once training started. `3e-5` is a float here, as people mean it (PyYAML reads it as a string).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xstilts.config import PhaseConfig, yaml_load
from xstilts.errors import XstiltsError
from xstilts.grid.config import GridConfig

DEFAULT = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"


def _grid_with(tmp_path, change) -> Path:
    data = yaml_load(DEFAULT.read_text())
    change(data)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _set(path: str, value):
    def change(data):
        node = data
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return change


@pytest.mark.parametrize("path, value, message", [
    ("targets.0.training.learning_rate", {"task": "panx"},
     "targets[0].training.learning_rate: expected float, got dict"),
    ("targets.0.training.batch_size", "16", "targets[0].training.batch_size: expected int, got str '16'"),
    ("targets.0.training.freeze_word_embeddings", "yes", "freeze_word_embeddings: expected bool, got str"),
    ("seeds", 0, "seeds: expected list, got int 0"),
    ("seeds", [0, "a"], "seeds[1]: expected int, got str 'a'"),
    ("targets.0.eval_langs", "sw", "targets[0].eval_langs: expected list or null, got str 'sw'"),
    ("targets", ["panx"], "targets[0]: expected a mapping of TargetGrid fields, got str 'panx'"),
    ("targets", {"task": "panx"}, "targets: expected a list of mappings, got dict"),
    ("intermediate", ["xnli"], "intermediate[0]: expected a mapping of IntermediateGrid fields, got str"),
    ("intermediate.training", [1], "intermediate.training: expected a mapping of TrainingArgs fields, got list"),
    ("mlm", 5, "mlm: expected a mapping of MLMConfig fields, got int 5"),
    ("tuning", True, "tuning: expected a mapping of TuningConfig fields, got bool True"),
    ("targets.0.training.learning_rate", -1.0, "targets[0].training.learning_rate: -1.0 is out of range (must be > 0)"),
    ("targets.0.training.warmup_ratio", 3, "targets[0].training.warmup_ratio: 3 is out of range (must be between"),
    ("targets.0.training.epochs", float("inf"), "must be finite numbers"),
    ("intermediate.training.batch_size", 0, "intermediate[0] (xnli): training.batch_size: 0 is out of range"),
    ("targets.0.selection", "englsh_dev", "targets[0].selection: 'englsh_dev'; valid: english_dev, last"),
    ("intermediate.selection", "best", "intermediate[0] (xnli): selection: 'best'; valid:"),
])
def test_a_slip_in_a_grid_config_is_one_error_naming_the_field(tmp_path, path, value, message):
    config = _grid_with(tmp_path, _set(path, value))
    with pytest.raises(XstiltsError) as err:
        GridConfig.from_file(config)
    assert message in str(err.value) and str(err.value).startswith(str(config))


def test_a_tuning_range_written_as_a_string_is_one_error():
    from xstilts.tuning.space import parse_space

    with pytest.raises(XstiltsError, match="tuning.space.learning_rate: high: expected float or null, got str"):
        parse_space({"learning_rate": {"low": 1e-5, "high": "1e-4"}}, "tuning.space")


def test_exponent_notation_without_a_dot_is_a_number(tmp_path):
    text = DEFAULT.read_text().replace("learning_rate: 1.0e-4", "learning_rate: 1e-4")
    assert "learning_rate: 1e-4" in text
    assert yaml.safe_load("lr: 1e-4") == {"lr": "1e-4"}  # what PyYAML alone makes of it
    (tmp_path / "g.yaml").write_text(text)
    cfg = GridConfig.from_file(tmp_path / "g.yaml")
    assert cfg.targets[0].training.learning_rate == 1e-4 and cfg.intermediates[0].training.learning_rate == 1e-4
    assert yaml_load("a: 3e-5\nb: -2E+3\nc: e5\nd: 1e\n") == {"a": 3e-5, "b": -2000.0, "c": "e5", "d": "1e"}
    # and the grid is the same grid as with 1.0e-4 (its hash)
    assert cfg.grid_hash() == GridConfig.from_file(DEFAULT).grid_hash()


def test_set_on_the_command_line_reads_3e_5_as_a_number_and_a_phase_config_checks_types():
    from xstilts.training.commands import build_config

    common = dict(config_file=None, task="panx", langs=None, split=None, max_examples=None, max_dev_examples=None,
                  condition=None, seed=None, selection=None, epochs=None, max_steps=None, learning_rate=None,
                  batch_size=None, max_length=None, num_layers=None, threads=None)
    cfg = build_config("target", sets=["training.learning_rate=3e-5"], **common)
    assert cfg.training.learning_rate == 3e-5
    with pytest.raises(XstiltsError, match="command line: training.batch_size: expected int, got str 'many'"):
        build_config("target", sets=["training.batch_size=many"], **common)
    with pytest.raises(XstiltsError, match="tasks.0.languages|tasks\\[0\\].languages: expected list, got str"):
        PhaseConfig.from_dict({"phase": "target", "tasks": [{"task": "panx", "languages": "en"}]})
    with pytest.raises(XstiltsError, match="^c.yaml: tasks\\[0\\]: expected a mapping of TaskData fields, got str"):
        PhaseConfig.from_dict({"phase": "target", "tasks": ["panx"]}, source="c.yaml")
