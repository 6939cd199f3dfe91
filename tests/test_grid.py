"""The grid at small scale: cells, reuse after a crash, the tidy table, the report, leakage."""
from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from xstilts.config import TrainingArgs
from xstilts.data.leakage import LeakageError
from xstilts.grid import jobs as grid_jobs
from xstilts.grid.config import GridConfig, IntermediateGrid, TargetGrid
from xstilts.analysis.schema import RESULT_COLUMNS
from xstilts.grid.runner import run_grid

TINY = dict(batch_size=8, epochs=1, max_length=48, eval_batch_size=32)


def small_grid(out, seeds=(0, 1)) -> GridConfig:
    return GridConfig(
        name="small", num_hidden_layers=2, seeds=list(seeds), conditions=["none", "en", "multi"],
        intermediate=IntermediateGrid(size=24, languages=["en", "sw", "ur", "hi"], training=TrainingArgs(**TINY)),
        targets=[TargetGrid(task="panx", max_train_examples=32, max_dev_examples=16, eval_langs=["en", "sw", "yo"],
                            max_eval_examples=16, training=TrainingArgs(**TINY))],
        output_dir=str(out), experiment="grid-test").validate()


def test_small_grid_table_report_and_mlflow_structure(tracking, default_encoder_dir):
    result = run_grid(small_grid(tracking / "out"), progress=False)
    table = pd.read_parquet(result.table_parquet)
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert pd.read_csv(result.table_csv).shape == table.shape
    # 2 seeds x 3 conditions x 3 languages x (f1, precision, recall)
    assert len(table) == 2 * 3 * 3 * 3
    assert set(table["condition"]) == {"none", "en", "multi"}
    assert set(table.loc[table.language == "yo", "resource_group"]) == {"low"}
    assert set(table.loc[table.language == "en", "resource_group"]) == {"high"}
    assert (table.loc[table.condition == "none", "intermediate_spec"] == "none").all()
    assert result.trained == 4 + 6 and result.reused == 0 and result.evaluated == 6
    assert result.report is not None and result.report.is_file()
    assert "panx" in result.report.read_text().split("\n\n", 2)[1].lower()
    client = mlflow.MlflowClient()
    parent = client.get_run(result.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["kind"] == "grid"
    children = mlflow.search_runs(experiment_names=["grid-test"], output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert {(r.data.tags["phase"], r.data.tags["condition"]) for r in children} == {
        ("intermediate", "en"), ("intermediate", "multi"), ("target", "none"), ("target", "en"), ("target", "multi")}
    # where the time went: every category measured, summing to the wall time, on the parent run
    metrics = parent.data.metrics
    assert metrics["time.train_steps.seconds"] > 0 and metrics["time.eval_forward.seconds"] > 0
    assert metrics["time.data.seconds"] > 0 and metrics["time.model_load.seconds"] > 0
    assert metrics["time.tracking.seconds"] > 0
    parts = sum(v for k, v in metrics.items() if k.startswith("time.") and k.endswith(".seconds")
                and k != "time.wall.seconds")
    assert parts == pytest.approx(metrics["time.wall.seconds"], rel=1e-6)
    assert metrics["time.wall.seconds"] <= result.seconds + 60
    assert "training steps" in (tracking / "out" / "timing.md").read_text()
    assert "training steps" in result.timing_table
    assert {a.path for a in client.list_artifacts(result.run_id, "timing")} == {"timing/timing.md",
                                                                                 "timing/timing.json"}


def test_crashed_grid_rerun_does_only_the_missing_cells(tracking, default_encoder_dir, monkeypatch):
    cfg = small_grid(tracking / "out", seeds=(0,))
    real = grid_jobs.run_eval
    calls = {"n": 0}

    def crash_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(grid_jobs, "run_eval", crash_on_second)
    with pytest.raises(RuntimeError, match="power cut"):
        run_grid(cfg, progress=False)
    failed = mlflow.search_runs(experiment_names=["grid-test"], output_format="list",
                                filter_string="tags.kind = 'grid'")
    assert [r.info.status for r in failed] == ["FAILED"]
    monkeypatch.setattr(grid_jobs, "run_eval", real)
    again = run_grid(cfg, progress=False)
    # before the crash: none's target, en's intermediate and target were trained and none's evaluation done
    assert again.reused == 3 and again.trained == 2  # multi: intermediate + target
    assert again.eval_reused == 1 and again.evaluated == 2


def test_grid_refuses_to_evaluate_on_intermediate_training_data(tracking):
    cfg = small_grid(tracking / "out")
    cfg.targets.append(TargetGrid(task="xnli", eval_split="dev", eval_langs=["sw"]))
    with pytest.raises(LeakageError, match="xnli/dev"):
        run_grid(cfg, progress=False)
