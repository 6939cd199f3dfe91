"""The MLflow Project: entry points exist, name real scripts, and params reach the CLI intact."""
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipelines"))

from _params import cli_args  # noqa: E402


def test_mlproject_entry_points_name_existing_scripts():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    assert {"main", "intermediate", "target", "evaluate", "analyze", "check"} <= set(project["entry_points"])
    for name, entry in project["entry_points"].items():
        script = entry["command"].split()[1]
        assert (ROOT / script).is_file(), (name, script)
        for param in entry.get("parameters", {}):
            assert "{" + param + "}" in entry["command"], (name, param)
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert "-c constraints.txt" in pip and "-e ." in pip


def test_mlflow_params_become_cli_flags():
    argv = ["--task", "panx", "--init-from", "", "--max-examples", "0", "--seed", "1.0", "--batch-size", "32.0",
            "--num-layers", "", "--config", "none", "--no-progress"]
    assert cli_args(argv) == ["--task", "panx", "--seed", "1", "--batch-size", "32", "--no-progress"]
    assert cli_args(["--max-examples", "400.0"]) == ["--max-examples", "400"]


def test_embedded_default_grid_config_loads_and_bad_files_fail_clearly(tmp_path):
    import pytest

    from xstilts.errors import XstiltsError
    from xstilts.grid.config import GridConfig

    cfg = GridConfig.from_file(ROOT / "configs" / "default.yaml")
    assert cfg.conditions == ["none", "en", "multi"] and len(cfg.seeds) >= 5  # issue 16: 5 paired seeds
    with pytest.raises(XstiltsError, match="nope.yaml: grid config file not found"):
        GridConfig.from_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nseedz: [1]\n")
    with pytest.raises(XstiltsError, match="unknown field"):
        GridConfig.from_file(bad)
