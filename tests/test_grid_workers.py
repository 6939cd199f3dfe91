"""Two processes on one grid and one tracking store: every job runs exactly once, the
table is the one a single process gets, and a worker killed with SIGKILL mid-job
leaves a stale claim that the other worker takes over after the timeout.

Small scale: the real encoder cut to 2 layers, real PAN-X and XNLI rows, 1 thread
per process (the reference run uses the same thread count, so numbers are equal).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from xstilts.config import TrainingArgs
from xstilts.grid.config import GridConfig, IntermediateGrid, TargetGrid

TINY = dict(batch_size=8, epochs=1, max_length=48, eval_batch_size=32)
KEY = ["task", "language", "condition", "seed", "metric"]


def _grid_file(root: Path, *, checkpoint_every: int = 0) -> Path:
    target_training = TrainingArgs(**TINY, checkpoint_every=checkpoint_every)
    cfg = GridConfig(
        name="workers", num_hidden_layers=2, seeds=[0, 1], conditions=["none", "en"], threads=1,
        intermediate=IntermediateGrid(size=24, training=TrainingArgs(**TINY)),
        targets=[TargetGrid(task="panx", max_train_examples=96, max_dev_examples=16, eval_langs=["en", "sw"],
                            max_eval_examples=16, training=target_training)],
        experiment="workers")
    path = root / "grid.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path


def _env(store: Path, timeout: float = 120) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{store / 'mlflow.db'}", XSTILTS_CHECKPOINT_DIR=str(store / "ckpt"),
               XSTILTS_CLAIM_TIMEOUT=str(timeout), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_RUN_ID", None)
    return env


def _start(grid: Path, store: Path, out: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xstilts.cli", "grid", "--config", str(grid), "--output-dir",
                             str(store / out), "--no-progress"], cwd=store, env=_env(store, **kw),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _init_store(store: Path) -> None:
    """Create the SQLite schema once, before two processes would both migrate it (in ``store``: the
    experiment's artifacts go to ./mlartifacts of the folder that creates it)."""
    import contextlib

    from xstilts.tracking.store import RunStore

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    try:
        with contextlib.chdir(store):
            RunStore.open("workers")
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")


def _runs(store: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, max_results=1000)


def _versions(store: Path) -> Counter:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    return Counter(v.tags["run_key"] for v in client.search_model_versions(""))


def _values(table_dir: Path) -> pd.Series:
    table = pd.read_csv(table_dir / "results.csv")
    assert not table.duplicated(KEY).any()
    return table.set_index(KEY)["value"].sort_index()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, default_encoder_dir) -> pd.Series:
    """The table of one process alone on its own store."""
    store = tmp_path_factory.mktemp("single")
    _finish(_start(_grid_file(store), store, "out"))
    return _values(store / "out")


def _assert_once(store: Path, n_train: int = 6, n_eval: int = 4) -> None:
    runs = [r for r in _runs(store) if r.info.status == "FINISHED"]
    train = Counter(r.data.tags["run_key"] for r in runs if r.data.tags.get("phase") in ("intermediate", "target"))
    evals = Counter(r.data.tags["eval_key"] for r in runs if "eval_key" in r.data.tags)
    assert len(train) == n_train and set(train.values()) == {1}, train
    assert len(evals) == n_eval and set(evals.values()) == {1}, evals
    versions = _versions(store)
    assert len(versions) == n_train and set(versions.values()) == {1}, versions


@pytest.mark.slow
def test_two_processes_do_every_job_once_and_get_the_single_process_table(tmp_path, reference):
    grid = _grid_file(tmp_path)
    _init_store(tmp_path)
    a, b = _start(grid, tmp_path, "a"), _start(grid, tmp_path, "b")
    log_a, log_b = _finish(a), _finish(b)
    _assert_once(tmp_path)
    assert (tmp_path / "mlartifacts" / "workers").is_dir()  # the store's folder, not the repository's
    pd.testing.assert_series_equal(_values(tmp_path / "a"), reference)
    pd.testing.assert_series_equal(_values(tmp_path / "b"), reference)
    assert "reused" in log_a + log_b  # each found work of the other


def _wait_for_checkpoint(proc: subprocess.Popen, ckpt: Path, deadline_s: float = 600) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and proc.poll() is None:
        if list(ckpt.glob("*/last.pt")):
            return
        time.sleep(0.05)
    raise AssertionError("no job checkpoint appeared before the worker ended: " + (proc.stdout.read() or "")[-2000:])


@pytest.mark.slow
def test_sigkilled_worker_claim_is_taken_over_and_the_job_resumes(tmp_path, reference):
    grid = _grid_file(tmp_path, checkpoint_every=2)
    _init_store(tmp_path)
    victim = _start(grid, tmp_path, "victim", timeout=6)
    _wait_for_checkpoint(victim, tmp_path / "ckpt")
    survivor = _start(grid, tmp_path, "survivor", timeout=6)
    time.sleep(1.0)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    log = _finish(survivor)
    assert "took over the claim" in log
    _assert_once(tmp_path)
    runs = _runs(tmp_path)
    assert not [r for r in runs if r.info.status == "RUNNING"]  # the victim's grid run too is ended
    failed = [r for r in runs if r.info.status == "FAILED" and "run_key" in r.data.tags]
    assert len(failed) == 1
    resumed = [r for r in runs if r.data.tags.get("run_key") == failed[0].data.tags["run_key"]
               and r.info.status == "FINISHED"]
    assert int(resumed[0].data.tags["resumed_from_step"]) >= 2
    pd.testing.assert_series_equal(_values(tmp_path / "survivor"), reference)
