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

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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


@pytest.fixture(scope="session")
def full_tatoeba_check(default_encoder_dir) -> dict:
    """`xstilts model check --json` on all 36 languages, full sets, run once per session (slow tests)."""
    import json

    from click.testing import CliRunner

    from xstilts.cli import main

    result = CliRunner().invoke(main, ["model", "check", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


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
