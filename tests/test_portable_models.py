"""A registered model loads, evaluates and serves away from where it was trained.

One 2-layer PAN-X model (the real checkpoint cut to 2 layers, a few steps on real
English PAN-X rows) is trained and registered in working directory ``A`` with the
converted default encoder in cache ``A`` (hard links to the shared cache, so the
shared one is never touched). Then the cache is moved to another directory,
``XSTILTS_CACHE`` points at its new place, the working directory changes, and only
the MLflow store (by absolute path) stays: the model must load, predict the same,
evaluate and serve from there.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import xstilts
from xstilts.encoders.default_encoder import NAME as DEFAULT_NAME
from xstilts.errors import XstiltsError

WORDS = ["Angela", "Merkel", "visited", "Paris", "and", "Berlin", "in", "May", "."]


@dataclass
class Moved:
    uri: str
    store: Path            # the MLflow store (sqlite db) directory
    old_cache: Path        # where the encoder cache was at training time (gone now)
    new_cache: Path        # where it is now (XSTILTS_CACHE)
    workdir: Path          # the working directory after the move
    tags_before: list      # pyfunc predictions on WORDS before the move
    logits_before: torch.Tensor


def _link_cache(src_encoder: Path, cache: Path) -> None:
    """A private cache holding the converted default as hard links (a copy where links fail)."""
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src_encoder, cache / "encoders" / DEFAULT_NAME, copy_function=link)


def _logits(model, tokenizer) -> torch.Tensor:
    enc = tokenizer(WORDS, is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        return model("panx", {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}).logits


def _train(root: Path) -> tuple[str, list, torch.Tensor]:
    import mlflow
    import pandas as pd

    from xstilts.config import PhaseConfig, TaskData, TrainingArgs
    from xstilts.models.persist import load_for_inference
    from xstilts.tracking.store import RunStore

    fetch_model_dir = RunStore.open().fetch_model_dir
    from xstilts.training.phase import run_phase

    cfg = PhaseConfig(phase="target", selection="last", num_hidden_layers=2, seed=11,
                      tasks=[TaskData(task="panx", languages=["en"], split="train", max_examples=48)],
                      training=TrainingArgs(batch_size=16, max_steps=4, learning_rate=3e-4, max_length=64))
    result = run_phase(cfg, progress=False)
    tags = mlflow.pyfunc.load_model(result.model_uri).predict(pd.DataFrame([{"words": WORDS}]))
    loaded = load_for_inference(fetch_model_dir(result.model_uri, root / "fetch-a"))
    return result.model_uri, tags, _logits(loaded.model, loaded.tokenizer)


@pytest.fixture(scope="module")
def moved(tmp_path_factory, default_encoder_dir) -> Moved:
    """Train + register in (cache A, dir A); then move the cache and change directory."""
    import mlflow

    root = tmp_path_factory.mktemp("portable")
    store, old_cache, new_cache = root / "store", root / "cache-a", root / "elsewhere" / "cache-b"
    for d in (store, root / "work-a", root / "work-b", new_cache.parent):
        d.mkdir(parents=True)
    _link_cache(default_encoder_dir, old_cache)
    uri_db = f"sqlite:///{store / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri_db)
        for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
            mp.delenv(var, raising=False)
        mp.setenv("XSTILTS_CACHE", str(old_cache))
        mp.setenv("XSTILTS_CHECKPOINT_DIR", str(root / "ckpt"))
        mp.chdir(root / "work-a")
        mlflow.set_tracking_uri(uri_db)
        uri, tags, logits = _train(root)
        shutil.move(str(old_cache), str(new_cache))
        mp.setenv("XSTILTS_CACHE", str(new_cache))
        mp.chdir(root / "work-b")
        yield Moved(uri, store, old_cache, new_cache, root / "work-b", tags, logits)
    mlflow.set_tracking_uri("")


def test_manifest_names_the_base_logically_and_carries_tokenizer_and_lengths(moved, tmp_path):
    from xstilts.models.persist import FORMAT_VERSION, read_manifest
    from xstilts.tracking.store import RunStore

    fetch_model_dir = RunStore.open().fetch_model_dir

    model_dir = fetch_model_dir(moved.uri, tmp_path)
    manifest = read_manifest(model_dir)
    assert manifest["format_version"] == FORMAT_VERSION == 2
    assert manifest["base_model"] == "default"
    assert len(manifest["base_word_embeddings"]) == 32
    assert (manifest["max_length"], manifest["doc_stride"], manifest["num_hidden_layers"]) == (64, 128, 2)
    assert str(moved.old_cache) not in (model_dir / "xstilts_model.json").read_text()
    # the very files training tokenized with, byte for byte
    base = moved.new_cache / "encoders" / DEFAULT_NAME
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (model_dir / "tokenizer" / name).read_bytes() == (base / name).read_bytes()


def test_registered_model_loads_and_predicts_the_same_after_the_move(moved):
    import mlflow
    import pandas as pd

    assert not moved.old_cache.exists() and Path.cwd() == moved.workdir
    pyfunc = mlflow.pyfunc.load_model(moved.uri)
    assert pyfunc.predict(pd.DataFrame([{"words": WORDS}])) == moved.tags_before
    inner = pyfunc.unwrap_python_model()
    assert (inner.max_length, inner.doc_stride) == (64, 128)
    assert Path(inner.tokenizer.name_or_path).parent == Path(inner.model_dir)  # not the base's
    assert inner.base_model == str(moved.new_cache / "encoders" / DEFAULT_NAME)
    assert torch.equal(_logits(inner.model, inner.tokenizer), moved.logits_before)


def test_evaluate_model_after_the_move_uses_the_training_length(moved, tmp_path):
    from xstilts.evaluation.runner import evaluate_model

    report = evaluate_model(moved.uri, "panx", langs=["en", "de", "sw"], split="dev", max_examples=8,
                            batch_size=16, out_dir=tmp_path, progress=False)
    assert [r.lang for r in report.languages] == ["en", "de", "sw"]
    assert all(r.num_examples == 8 for r in report.languages)
    assert report.settings["max_length"] == 64  # the model's, not XTREME's 128
    assert report.settings["base_model"] == str(moved.new_cache / "encoders" / DEFAULT_NAME)
    explicit = evaluate_model(moved.uri, "panx", langs=["en"], split="dev", max_examples=8, max_length=128,
                              out_dir=tmp_path / "explicit", progress=False, log_to_mlflow=False)
    assert explicit.settings["max_length"] == 128  # a caller's length still wins


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow models serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"mlflow models serve not ready after {timeout:.0f} s")


def test_mlflow_models_serve_serves_it_after_the_move(moved, tmp_path):
    port = _free_port()
    src = str(Path(xstilts.__file__).resolve().parents[1])  # this checkout's code, in the server too
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(mlflow_bin), "models", "serve", "-m", moved.uri, "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=moved.workdir,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, port)
        body = json.dumps({"dataframe_records": [{"words": WORDS}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            predictions = json.loads(r.read())["predictions"]
        assert predictions == moved.tags_before and len(predictions[0]) == len(WORDS)
    except AssertionError:
        log.flush()
        print((tmp_path / "serve.log").read_text()[-4000:])
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: the group we started
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _local_copy(moved: Moved, dst: Path) -> Path:
    from xstilts.tracking.store import RunStore

    fetch_model_dir = RunStore.open().fetch_model_dir

    return Path(shutil.copytree(fetch_model_dir(moved.uri, dst / "fetch"), dst / "model"))


def _edit_manifest(model_dir: Path, **changes) -> None:
    path = model_dir / "xstilts_model.json"
    manifest = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            manifest.pop(k, None)
        else:
            manifest[k] = v
    path.write_text(json.dumps(manifest))


def test_other_base_weights_are_refused_naming_dir_and_fingerprints(moved, tmp_path):
    from xstilts.models.persist import load_model

    model_dir = _local_copy(moved, tmp_path)
    stored = json.loads((model_dir / "xstilts_model.json").read_text())["base_word_embeddings"]
    _edit_manifest(model_dir, base_word_embeddings="0" * 32)
    with pytest.raises(XstiltsError) as err:
        load_model(model_dir)
    message = str(err.value)
    assert str(model_dir) in message and "0" * 32 in message and stored in message
    assert "expected fingerprint" in message and "found" in message


def test_explicit_base_path_wins_and_a_missing_base_says_what_to_do(moved, tmp_path, monkeypatch):
    from xstilts.encoders import loading
    from xstilts.models.persist import load_model

    def no_default(*args, **kwargs):
        raise XstiltsError("the default encoder is not prepared here")

    monkeypatch.setattr(loading, "prepare_default_encoder", no_default)
    model_dir = _local_copy(moved, tmp_path)
    with pytest.raises(XstiltsError, match="base_model="):
        load_model(model_dir)
    model = load_model(model_dir, base_model=str(moved.new_cache / "encoders" / DEFAULT_NAME))
    assert model.config.num_hidden_layers == 2


def test_format_1_directories_still_load_and_unknown_formats_are_refused(moved, tmp_path):
    from xstilts.models.persist import load_for_inference, read_manifest

    model_dir = _local_copy(moved, tmp_path)
    base = str(moved.new_cache / "encoders" / DEFAULT_NAME)
    shutil.rmtree(model_dir / "tokenizer")
    _edit_manifest(model_dir, format_version=1, base_model=base, tokenizer=None, max_length=None,
                   doc_stride=None)
    manifest = json.loads((model_dir / "xstilts_model.json").read_text())
    manifest["config"]["training"]["doc_stride"] = 128  # format-1 configs always spelled it out
    (model_dir / "xstilts_model.json").write_text(json.dumps(manifest))
    loaded = load_for_inference(model_dir)
    assert (loaded.manifest["max_length"], loaded.manifest["doc_stride"]) == (64, 128)  # from the run config
    assert loaded.tokenizer.name_or_path == base
    assert torch.equal(_logits(loaded.model, loaded.tokenizer), moved.logits_before)
    _edit_manifest(model_dir, format_version=99)
    with pytest.raises(XstiltsError, match=r"xstilts_model.json: format_version 99.*retrain"):
        read_manifest(model_dir)


def test_a_tokenizer_from_no_local_directory_is_written_and_reloads_identically(xlmr_tokenizer, tmp_path):
    """A Hub tokenizer has no directory to copy: ``save_pretrained`` writes it, checked on reload."""
    import copy

    from transformers import AutoTokenizer

    from xstilts.data.feature_cache import tokenizer_fingerprint
    from xstilts.models.persist import store_tokenizer

    hub = copy.deepcopy(xlmr_tokenizer)
    hub.name_or_path = "intfloat/multilingual-e5-small"  # as if read from the Hub cache
    store_tokenizer(hub, tmp_path / "tok")
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert tokenizer_fingerprint(reloaded) == tokenizer_fingerprint(xlmr_tokenizer)
