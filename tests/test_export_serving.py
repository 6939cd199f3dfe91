"""ONNX export of every family, the registered ONNX pyfunc and the serving app, at small scale.

2-layer models on the real converted encoder (real embeddings; heads freshly initialised:
parity and serving do not depend on how well a head was trained), real sentences from
``data/`` (Tatoeba lines in 12 languages, PAN-X/XNLI dev rows).
"""
from __future__ import annotations

import json
import threading
import time

import pytest

FAMILY_TASKS = {"panx": ("tagging", 7), "xnli": ("sentence_classification", 3), "squad": ("span_qa", 0),
                "commonsenseqa": ("multiple_choice", 0)}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, default_encoder_dir):
    """One 2-layer xstilts model directory per head family (and the bare encoder for retrieval)."""
    from transformers import AutoTokenizer

    from xstilts.encoders.loading import load_encoder
    from xstilts.models.multitask import HeadSpec, XstiltsModel
    from xstilts.models.persist import save_model

    root = tmp_path_factory.mktemp("export-models")
    tok = AutoTokenizer.from_pretrained(str(default_encoder_dir))
    out = {}
    for task, (family, n) in FAMILY_TASKS.items():
        model = XstiltsModel(load_encoder(str(default_encoder_dir), num_hidden_layers=2),
                             [HeadSpec(task, family, n)], seed=3)
        # span QA: 128-token windows (a 64-token window leaves a long question no room for the stride)
        out[task] = save_model(model, root / task, base_model="default", frozen_word_embeddings=True,
                               tokenizer=tok, max_length=128 if family == "span_qa" else 64)
    out["tatoeba"] = out["panx"]  # retrieval exports the encoder of a model (or a bare encoder)
    return out


@pytest.fixture(scope="module")
def panx_bundle(model_dirs, tmp_path_factory):
    from xstilts.export.exporter import export_model

    out = tmp_path_factory.mktemp("bundle") / "panx"
    return export_model(str(model_dirs["panx"]), precision="fp32", out_dir=out, max_examples=16, parity_per_lang=2)


@pytest.mark.parametrize("model,task", [("xnli", "xnli"), ("squad", "xquad"), ("commonsenseqa", "commonsenseqa"),
                                        ("tatoeba", "tatoeba")])
def test_every_family_exports_with_dynamic_axes_and_fp32_parity(model, task, model_dirs, tmp_path):
    """Span QA: a SQuAD head exported for XQuAD (its metric check has XQuAD's local gold)."""
    import onnx

    from xstilts.export.checks import FP32_TOLERANCE
    from xstilts.export.exporter import export_model

    result = export_model(str(model_dirs[model]), task_name=task, out_dir=tmp_path / "b", max_examples=8,
                          parity_per_lang=1)
    parity, metric = result.manifest["checks"]["parity"], result.manifest["checks"]["metric"]
    assert parity["languages"] >= 10 and parity["max_abs_diff"] <= FP32_TOLERANCE
    assert metric["max_abs_drift"] <= 0.01 and metric["languages"], metric
    graph = onnx.load(str(result.bundle / "model.onnx"), load_external_data=False)
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input]
    assert dims[0][0] == "batch" and dims[0][-1] == "sequence"
    assert graph.opset_import[0].version >= 17
    assert float(result.tags["parity.max_abs_diff"]) <= FP32_TOLERANCE


def test_tagging_export_checks_english_and_two_low_resource_languages(panx_bundle):
    metric = panx_bundle.manifest["checks"]["metric"]
    assert list(metric["languages"])[0] == "en" and len(metric["languages"]) == 3
    assert all(lang in ("jv", "ml", "my", "te", "qu", "mr", "sw", "yo") for lang in list(metric["languages"])[1:])
    assert metric["max_abs_drift"] == 0.0 and panx_bundle.tags["metric.en.onnx"] == panx_bundle.tags["metric.en.torch"]


@pytest.mark.slow
def test_int8_export_is_smaller_and_within_its_drift_tolerance_on_the_argmax(model_dirs, panx_bundle, tmp_path):
    from xstilts.export.exporter import export_model

    result = export_model(str(model_dirs["panx"]), precision="int8", out_dir=tmp_path / "q", max_examples=16,
                          parity_per_lang=1, check=False)
    assert (result.bundle / "model.onnx").stat().st_size < 0.5 * (panx_bundle.bundle / "model.onnx").stat().st_size
    assert result.manifest["precision"] == "int8" and result.tags["precision"] == "int8"


def _panx_rows(langs=("en", "de", "sw"), n=10):
    from xstilts.data.loading import load_examples

    return [{"words": list(ex.words)} for lang in langs for ex in load_examples("panx", lang, "dev")[:n]]


def test_onnx_serving_predicts_as_the_pytorch_model(panx_bundle, model_dirs):
    from xstilts.export.runtime import ServedModel
    from xstilts.models.persist import load_for_inference
    from xstilts.tasks import get_task

    rows = _panx_rows()
    model, tok, manifest, base = load_for_inference(model_dirs["panx"])
    task = get_task("panx")
    ref = task.family.serve(task, model, tok, rows, head="panx", max_length=64, doc_stride=128)
    got = ServedModel(panx_bundle.bundle).predict(rows)
    pairs = [(a, b) for r, g in zip(ref, got) for a, b in zip(r, g)]
    assert len(pairs) == sum(len(r["words"]) for r in rows)
    assert sum(a == b for a, b in pairs) / len(pairs) >= 0.995


@pytest.fixture(scope="module")
def client(panx_bundle):
    from fastapi.testclient import TestClient

    from xstilts.export.runtime import ServedModel
    from xstilts.serving.app import ServeSettings, create_app
    from xstilts.serving.limits import Limits

    served = ServedModel(panx_bundle.bundle, name="xstilts-serve-panx", version="1")
    app = create_app([served], ServeSettings(Limits(max_body_bytes=20_000, max_rows=8, max_text_chars=500)))
    with TestClient(app) as c:
        yield c


def test_scoring_protocol_formats_agree_and_name_the_model(client):
    words = ["Rais", "Samia", "Suluhu", "alizuru", "Nairobi", "."]
    bodies = [{"dataframe_records": [{"words": words}]},
              {"dataframe_split": {"columns": ["words"], "data": [[words]]}},
              {"inputs": [{"words": words}]}, {"instances": [{"words": words}]}, {"inputs": {"words": [words]}}]
    answers = []
    for body in bodies:
        r = client.post("/invocations", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "xstilts-serve-panx" and r.json()["version"] == "1"
        answers.append(r.json()["predictions"])
    assert all(a == answers[0] for a in answers) and len(answers[0][0]) == len(words)
    for path in ("/ping", "/health", "/version", "/models", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path


def test_tag_endpoint_gives_tokens_with_offsets(client):
    text = "Rais  Samia Suluhu alizuru Nairobi ."
    r = client.post("/models/xstilts-serve-panx/tag", json={"inputs": [{"text": text}]})
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"][0]
    assert [t["word"] for t in pred["tokens"]] == text.split()
    assert all(text[t["start"]:t["end"]] == t["word"] for t in pred["tokens"])
    assert all(text[e["start"]:e["end"]] == e["text"] for e in pred["entities"])


BAD = [
    ("/invocations", b"{not json", 400),
    ("/invocations", b"", 422),
    ("/invocations", json.dumps([1, 2]).encode(), 422),
    ("/invocations", json.dumps({"inputs": [{"words": ["a"]}], "instances": []}).encode(), 422),
    ("/invocations", json.dumps({"inputs": [{"wrods": ["a"]}]}).encode(), 422),
    ("/invocations", json.dumps({"inputs": [{"text": 5}]}).encode(), 422),
    ("/invocations", json.dumps({"inputs": [{"text": ""}]}).encode(), 422),
    ("/invocations", json.dumps({"inputs": [{"text": "   "}]}).encode(), 422),
    ("/invocations", json.dumps({"inputs": [{"text": "a\u0000b"}]}).encode(), 422),
    ("/invocations", json.dumps({"inputs": [{"text": "\ud800x"}]}).encode(), 422),
    ("/invocations", json.dumps({"inputs": [{"text": "\U0001F600" * 600}]}).encode(), 422),
    ("/invocations", json.dumps({"inputs": [{"text": "x"}] * 9}).encode(), 413),
    ("/invocations", json.dumps({"inputs": [{"text": "x" * 30_000}]}).encode(), 413),
    ("/invocations", json.dumps({"inputs": []}).encode(), 422),
    ("/invocations?model=nope", json.dumps({"inputs": [{"text": "x"}]}).encode(), 404),
    ("/models/nope/tag", json.dumps({"inputs": [{"text": "x"}]}).encode(), 404),
    ("/models/xstilts-serve-panx/answer", json.dumps({"inputs": [{"text": "x"}]}).encode(), 404),
    ("/models/xstilts-serve-panx/tag", json.dumps({"input": [{"text": "x"}]}).encode(), 422),
    ("/models/xstilts-serve-panx/tag", json.dumps({"inputs": [{"words": "not a list"}]}).encode(), 422),
    ("/models/xstilts-serve-panx/tag", json.dumps({"inputs": [{"words": ["a b"]}]}).encode(), 422),
    ("/models/xstilts-serve-panx/tag", b"[[[", 422),
]


@pytest.mark.parametrize("path,body,status", BAD)
def test_bad_requests_are_4xx_json_naming_the_problem(client, path, body, status):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"]["message"]


def test_concurrent_load_on_loopback_has_no_errors_and_batches(panx_bundle):
    import socket
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import uvicorn

    from xstilts.export.runtime import ServedModel
    from xstilts.serving.app import create_app

    app = create_app([ServedModel(panx_bundle.bundle, name="m", version="1")])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = _panx_rows(("en", "sw"), n=10)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            def one(i):
                return http.post("/invocations", json={"inputs": [rows[i % len(rows)]]}).status_code
            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(one, range(200)))
            stats = http.get("/health").json()["models"]["m"]
        assert codes.count(200) == 200
        assert stats["rows"] == 200 and stats["batches"] < 200  # concurrent requests shared ONNX calls
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_registered_onnx_pyfunc_loads_from_code_with_signature_and_check_tags(panx_bundle, tracking):
    import mlflow
    import pandas as pd

    from xstilts.tracking.store import RunStore

    store = RunStore.open()
    rows = [{"words": ["Angela", "Merkel", "visited", "Paris", "."]}]
    registered = store.register_export(panx_bundle.bundle, name="xstilts-serve-panx", tags=panx_bundle.tags,
                                       input_example=[{"text": "Angela Merkel visited Paris ."}])
    version = store.client.get_model_version(registered.name, registered.version)
    assert version.tags["parity.max_abs_diff"] == panx_bundle.tags["parity.max_abs_diff"]
    pyfunc = mlflow.pyfunc.load_model(registered.uri)
    assert pyfunc.metadata.signature is not None
    assert pyfunc.predict(pd.DataFrame(rows)) == panx_bundle_predict(panx_bundle, rows)
    local = store.fetch_export_bundle(registered.uri)
    assert not list(local.rglob("*.pkl")) and (local / "model.onnx").is_file()


def panx_bundle_predict(bundle, rows):
    from xstilts.export.runtime import ServedModel

    return ServedModel(bundle.bundle).predict(rows)
