"""A training run killed with SIGKILL resumes from its last checkpoint and ends
exactly where an uninterrupted run with the same seed ends."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = ["target", "--task", "panx", "--max-examples", "96", "--max-dev-examples", "32", "--num-layers", "2",
        "--batch-size", "8", "--epochs", "2", "--max-length", "48", "--seed", "11", "--threads", "2",
        "--set", "training.checkpoint_every=2", "--set", "training.eval_every=6", "--no-progress", "--json"]


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", XSTILTS_CHECKPOINT_DIR=str(root / "ckpt"),
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def _run(root: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "xstilts.cli", *ARGS], cwd=root, env=_env(root),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_sigkill_mid_training_then_rerun_resumes_and_matches(tmp_path, default_encoder_dir):
    killed = tmp_path / "killed"
    killed.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "xstilts.cli", *ARGS], cwd=killed, env=_env(killed),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if list((killed / "ckpt").glob("*/last.pt")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed: " + proc.stderr.read()[-1000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    resumed = _run(killed)
    assert resumed["resumed_from_step"] > 0
    reference_root = tmp_path / "reference"
    reference_root.mkdir()
    reference = _run(reference_root)
    assert reference["resumed_from_step"] == 0
    assert resumed["dev_scores"] == reference["dev_scores"]
    assert resumed["run_key"] == reference["run_key"]

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{killed / 'mlflow.db'}")
    try:
        statuses = sorted(r.info.status for r in mlflow.search_runs(experiment_names=["xstilts"], output_format="list"))
    finally:
        mlflow.set_tracking_uri("")
    assert statuses == ["FAILED", "FINISHED"]  # the killed attempt is marked FAILED, the rerun finished
