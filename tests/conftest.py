"""Shared fixtures: the real tokenizer and small real-weight encoders.

The converted default encoder is prepared once into the user cache
(``XSTILTS_CACHE`` or ``~/.cache/xstilts``); later runs reuse it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _share_the_cores_among_xdist_workers() -> None:
    """Under ``pytest -n N`` give each worker (and the processes its tests start) its share of the cores,
    through ``OMP_NUM_THREADS``, before torch is imported. Each worker taking every core made OpenMP's
    threads spin against each other's: the suite on a 2-core Zen 4 EPYC took as long with 2 workers as
    with one (19 min), its user CPU time 1.66x. A share the caller set stays."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        from xstilts.runtime.cpu import usable_cores  # imports no torch

        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // workers))


_share_the_cores_among_xdist_workers()

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]
#: what tests may leave in the repository's folder: pytest's and hypothesis's caches, screenshots for a person
MAY_APPEAR = {".pytest_cache", ".hypothesis", "test-artifacts", "__pycache__"}


@pytest.fixture(scope="session", autouse=True)
def repository_stays_clean():
    """Fail the session when a test wrote a new file or folder into the repository's top level (an MLflow
    experiment created with the repository as working directory once put every run's artifacts in
    ./mlartifacts there; `mlflow run` runs entry points in the project folder)."""
    before = {p.name for p in REPO.iterdir()}
    yield
    new = {p.name for p in REPO.iterdir()} - before - MAY_APPEAR
    assert not new, f"tests wrote into {REPO}: {sorted(new)}"


@pytest.fixture(scope="session")
def default_encoder_dir() -> Path:
    from xstilts.encoders.default_encoder import prepare_default_encoder

    return prepare_default_encoder()


@pytest.fixture(scope="session")
def xlmr_tokenizer(default_encoder_dir):
    """The exact multilingual-e5-small XLM-R fast tokenizer."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_encoder_dir)


@pytest.fixture(scope="session")
def encoder_2layer(default_encoder_dir):
    """The real checkpoint cut to its first 2 layers: real embeddings, fast forward."""
    from xstilts.encoders.loading import load_encoder

    return load_encoder(default_encoder_dir, num_hidden_layers=2)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real data not vendored into the repo); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present (only on the project's machines and CI)")
    return SHARED_DATA


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """A private MLflow store and checkpoint folder in ``tmp_path`` (also the working directory)."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("XSTILTS_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield tmp_path
    mlflow.set_tracking_uri("")


@pytest.fixture
def mlflow_run(tracking):
    """``mlflow run <this repo> -e ENTRY --env-manager local -P k=v ...`` in ``tracking``'s folder and store, as
    the README runs the phases; returns the finished process (output in ``.stdout`` + ``.stderr``)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        env.pop(key, None)

    def run(entry: str, **params) -> subprocess.CompletedProcess:
        args = [a for k, v in params.items() for a in ("-P", f"{k}={v}")]
        return subprocess.run([sys.executable, "-m", "mlflow", "run", str(root), "-e", entry, "--env-manager",
                               "local", *args], cwd=tracking, env=env, capture_output=True, text=True, timeout=600)

    return run
