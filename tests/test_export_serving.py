"""ONNX export of every family, the registered ONNX pyfunc and the serving app, at small scale.

2-layer models on the real converted encoder (real embeddings; heads freshly initialised:
parity and serving do not depend on how well a head was trained), real sentences from
``data/`` (Tatoeba lines in 12 languages, PAN-X/XNLI dev rows).
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

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
    out["tatoeba"] = out["panx"]  # retrieval exports the encoder of a model, or a bare encoder:
    out["bare"] = root / "bare-encoder"  # what `xstilts export --model default --task tatoeba` loads, cut to 2 layers
    load_encoder(str(default_encoder_dir), num_hidden_layers=2).save_pretrained(out["bare"])
    tok.save_pretrained(out["bare"])
    return out


@pytest.fixture(scope="module")
def panx_bundle(model_dirs, tmp_path_factory):
    from xstilts.export.exporter import export_model

    out = tmp_path_factory.mktemp("bundle") / "panx"
    return export_model(str(model_dirs["panx"]), precision="fp32", out_dir=out, max_examples=16, parity_per_lang=2)


@pytest.fixture(scope="module")
def qa_bundle(model_dirs, tmp_path_factory):
    """The SQuAD head exported for XQuAD (its metric check has XQuAD's local gold)."""
    from xstilts.export.exporter import export_model

    out = tmp_path_factory.mktemp("bundle") / "xquad"
    return export_model(str(model_dirs["squad"]), task_name="xquad", out_dir=out, max_examples=8, parity_per_lang=1)


def _check_export(result):
    import onnx

    from xstilts.export.checks import FP32_TOLERANCE

    parity, metric = result.manifest["checks"]["parity"], result.manifest["checks"]["metric"]
    assert parity["languages"] >= 10 and parity["max_abs_diff"] <= FP32_TOLERANCE
    assert metric["max_abs_drift"] <= 0.01 and metric["languages"], metric
    graph = onnx.load(str(result.bundle / "model.onnx"), load_external_data=False)
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input]
    assert dims[0][0] == "batch" and dims[0][-1] == "sequence"
    assert graph.opset_import[0].version >= 17 and result.manifest["opset"] == graph.opset_import[0].version
    assert not [n for n in graph.graph.node if n.op_type == "IsNaN"]  # eager attention: no SDPA guards
    assert float(result.tags["parity.max_abs_diff"]) <= FP32_TOLERANCE


def test_export_traces_eager_attention_and_gives_the_model_its_own_back(default_encoder_dir):
    from xstilts.encoders.loading import load_encoder
    from xstilts.export.graphs import eager_attention

    encoder = load_encoder(str(default_encoder_dir), num_hidden_layers=1)
    encoder.set_attn_implementation("sdpa")
    with eager_attention(encoder):
        assert encoder.config._attn_implementation == "eager"
    assert encoder.config._attn_implementation == "sdpa"


def test_span_qa_exports_with_dynamic_axes_and_fp32_parity(qa_bundle):
    _check_export(qa_bundle)


@pytest.mark.parametrize("model,task", [("xnli", "xnli"), ("commonsenseqa", "commonsenseqa"),
                                        ("tatoeba", "tatoeba"), ("bare", "tatoeba")])
def test_every_family_exports_with_dynamic_axes_and_fp32_parity(model, task, model_dirs, tmp_path):
    from xstilts.export.exporter import export_model

    _check_export(export_model(str(model_dirs[model]), task_name=task, out_dir=tmp_path / "b", max_examples=8,
                               parity_per_lang=1))


@pytest.mark.slow
@pytest.mark.parametrize("model,task", [("xnli", "xnli"), ("squad", "squad"), ("commonsenseqa", "commonsenseqa"),
                                        ("tatoeba", "tatoeba")])
def test_every_family_exports_calibrated_int8(model, task, model_dirs, tmp_path):
    """The int8 calibration runs on each family's own request rows (sentence pairs, question and
    context, choices, bare sentences; span-QA questions too long for a 128-token window left out,
    where the tokenizer panicked): every int8 MatMul gets its fp32 outlier Gemm, and the graph
    answers the parity sentences of 12 languages close to PyTorch."""
    import onnx

    from xstilts.export.exporter import export_model

    result = export_model(str(model_dirs[model]), task_name=task, precision="int8", out_dir=tmp_path / "b",
                          max_examples=8, parity_per_lang=1, check=False)
    q = onnx.load(str(result.bundle / "model.onnx"))
    ops = [n.op_type for n in q.graph.node]
    fp32_parts = [n for n in q.graph.node if n.op_type == "Gemm" and n.input[0].startswith("rq_out")]  # not a head's
    assert len(fp32_parts) == ops.count("MatMulIntegerToFloat") > 0
    parity = result.manifest["checks"]["parity"]
    print(task, "int8 parity", parity["max_abs_diff"])
    assert parity["languages"] == 12 and 0 < parity["max_abs_diff"] < 0.1, parity  # measured 6.6e-5 to 0.018
    assert result.manifest["int8_calibration"]["outliers"] == 8


def test_a_failed_export_leaves_out_as_it_was_and_a_foreign_folder_is_never_deleted(model_dirs, panx_bundle,
                                                                                     tmp_path):
    """The bundle is built beside ``--out`` and renamed in only when it passed: a failing export
    (a PAN-X head asked for XNLI) leaves an earlier bundle whole and no partial folder behind; a
    folder that is not a bundle is refused before anything is loaded, its files untouched."""
    import shutil

    from xstilts.errors import XstiltsError
    from xstilts.export.exporter import export_model

    out = tmp_path / "b"
    shutil.copytree(panx_bundle.bundle, out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(XstiltsError):
        export_model(str(model_dirs["panx"]), task_name="xnli", out_dir=out, max_examples=8, parity_per_lang=1)
    assert sorted(p.name for p in out.iterdir()) == before and [p.name for p in tmp_path.iterdir()] == ["b"]
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    with pytest.raises(XstiltsError, match="not an xstilts export bundle"):
        export_model(str(model_dirs["panx"]), out_dir=mine, max_examples=8, parity_per_lang=1)
    assert (mine / "thesis.tex").read_text() == "keep me"


def test_tagging_export_checks_english_and_two_low_resource_languages(panx_bundle):
    metric = panx_bundle.manifest["checks"]["metric"]
    assert list(metric["languages"])[0] == "en" and len(metric["languages"]) == 3
    assert all(lang in ("jv", "ml", "my", "te", "qu", "mr", "sw", "yo") for lang in list(metric["languages"])[1:])
    assert metric["max_abs_drift"] == 0.0 and panx_bundle.tags["metric.en.onnx"] == panx_bundle.tags["metric.en.torch"]


def test_drift_check_takes_low_resource_languages_whose_gold_resolves_the_limit():
    """PAN-X jv and my dev hold 100 sentences (one entity ~0.9 F1 point): with 1,000 examples asked,
    the check takes the next lowest-resource languages with >= 500 (ml, te) and says why it
    skipped them; with 50 asked, every set fills the subset and the lowest classes come first."""
    from xstilts.export.checks import _drift_sets
    from xstilts.tasks import get_task

    task = get_task("panx")
    loaded, skipped = _drift_sets(task, "dev", 1000, 2)
    assert list(loaded) == ["en", "ml", "te"] and [len(v) for v in loaded.values()] == [1000, 1000, 1000]
    assert skipped == {"jv": "100 examples, fewer than 500", "my": "100 examples, fewer than 500"}
    loaded, skipped = _drift_sets(task, "dev", 50, 2)
    assert list(loaded) == ["en", "jv", "ml"] and not skipped


@pytest.mark.slow
def test_int8_export_is_rowwise_int8_and_tagged_int8(model_dirs, panx_bundle, tmp_path):
    """Every MatMul with a constant weight becomes an int8 MatMulIntegerToFloat (int8 weights with one
    scale per output channel, uint8 activations with zero point 128) and an fp32 Gemm of its
    input's 8 outlier channels adding onto it (their int8 rows 0); the word-embedding Gather stays fp32, so the
    file shrinks by the MatMul weights only. The calibration is in the manifest and the tags."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from xstilts.export.exporter import export_model

    result = export_model(str(model_dirs["panx"]), precision="int8", out_dir=tmp_path / "q", max_examples=16,
                          parity_per_lang=1, check=False)
    fp32 = onnx.load(str(panx_bundle.bundle / "model.onnx"))
    weights = {i.name for i in fp32.graph.initializer}
    weight_matmuls = [n for n in fp32.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    q = onnx.load(str(result.bundle / "model.onnx"))
    inits = {i.name: i for i in q.graph.initializer}
    ops = [n for n in q.graph.node if n.op_type == "MatMulIntegerToFloat"]
    assert len(ops) == len(weight_matmuls) > 0
    assert not [n for n in q.graph.node if n.op_type == "MatMulNBits"]
    outlier_matmuls = [n for n in q.graph.node if n.op_type == "Gemm" and n.input[0].startswith("rq_out")]
    assert not [n for n in q.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    assert len(outlier_matmuls) == len(ops)
    for node, fp32_part in zip(ops, outlier_matmuls):
        w, scales = (numpy_helper.to_array(inits[node.input[i]]) for i in (1, 3))
        kept = numpy_helper.to_array(inits[fp32_part.input[1]])
        assert w.dtype == np.int8 and 100 <= np.abs(w).max() <= 127 and scales.shape == (w.shape[1],)
        assert kept.dtype == np.float32 and kept.shape == (8, w.shape[1])
        assert (~w.any(axis=1)).sum() >= 8  # the outlier channels' int8 rows are 0
        assert numpy_helper.to_array(inits[node.input[4]]) == 128
    assert (result.bundle / "model.onnx").stat().st_size < (panx_bundle.bundle / "model.onnx").stat().st_size
    assert result.manifest["precision"] == "int8" and result.tags["precision"] == "int8"
    assert result.manifest["int8_method"] == "rowwise" == result.tags["int8_method"]
    assert result.manifest["int8_calibration"] == {"outliers": 8, "gptq": True, "sentences": 512,
                                                   "source": "tatoeba de-en test, English side, from line 100"}
    assert result.tags["int8_calibration.outliers"] == "8" and result.tags["int8_calibration.gptq"] == "True"
    act7 = result.manifest["int8_act7"]  # the form CPUs without VNNI serve when it passes, checked on its own
    assert act7["activation_bits"] == 7 and act7["zero_point"] == 64
    assert act7["parity"]["languages"] == result.manifest["checks"]["parity"]["languages"]
    assert act7["parity"]["max_abs_diff"] != result.manifest["checks"]["parity"]["max_abs_diff"]
    main_langs = result.manifest["checks"]["metric"]["languages"]
    torch_scores = {k: r["torch"] for k, r in act7["metric"]["languages"].items()}
    assert torch_scores == {k: r["torch"] for k, r in main_langs.items()}  # scored once, reused
    assert act7["passed"] is (act7["refused"] is None)
    assert result.tags["int8_act7.passed"] == str(act7["passed"]).lower()


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


def _real_rows(task: str, n: int) -> list[dict]:
    """Serving rows made of real dev examples: XNLI pairs, CommonsenseQA questions (multi-word choices
    among them), Tatoeba sentences."""
    from xstilts.data.loading import load_examples, load_parallel

    if task == "xnli":
        return [{"text": e.text_a, "text_pair": e.text_b} for e in load_examples("xnli", "sw", "dev", max_examples=n)]
    if task == "commonsenseqa":
        return [{"question": e.question, "choices": list(e.choices)}
                for e in load_examples("commonsenseqa", "en", "dev", max_examples=n)]
    return [{"text": t} for t in load_parallel("tatoeba", "sw", "test").source[:n]]


@pytest.fixture(scope="module")
def other_bundles(model_dirs, tmp_path_factory) -> dict:
    """fp32 exports of the families ``panx_bundle`` and ``qa_bundle`` leave out: sentence-pair classification
    (XNLI), multiple choice (CommonsenseQA), retrieval (Tatoeba, the PAN-X model's encoder)."""
    from xstilts.export.exporter import export_model

    root = tmp_path_factory.mktemp("other-bundles")
    return {task: export_model(str(model_dirs[task]), task_name=task, out_dir=root / task, max_examples=8,
                               parity_per_lang=1).bundle for task in ("xnli", "commonsenseqa", "tatoeba")}


@pytest.mark.slow
def test_classify_choose_and_embed_endpoints_answer_real_rows_as_pytorch_does(model_dirs, other_bundles):
    """The three families the other tests do not serve, through their task endpoints and /invocations,
    against the PyTorch model on the same rows (choices of several words were once refused, and rows with
    different numbers of choices in one request were a 500)."""
    import numpy as np
    from fastapi.testclient import TestClient

    from xstilts.export.runtime import ServedModel
    from xstilts.models.persist import load_for_inference
    from xstilts.serving.app import create_app
    from xstilts.tasks import get_task

    served = [ServedModel(b, name=f"xstilts-serve-{t}", version="1") for t, b in other_bundles.items()]
    rows = {task: _real_rows(task, 6) for task in other_bundles}
    assert any(" " in c for r in rows["commonsenseqa"] for c in r["choices"])
    rows["commonsenseqa"][1]["choices"] = rows["commonsenseqa"][1]["choices"][:2]  # 5 and 2 choices: two batches
    with TestClient(create_app(served)) as client:
        for m in served:
            task, endpoint = m.manifest["task"], m.manifest["endpoint"]
            r = client.post(f"/models/{m.name}/{endpoint}", json={"inputs": rows[task]})
            assert r.status_code == 200, r.text
            plain = client.post(f"/invocations?model={m.name}", json={"dataframe_records": rows[task]})
            assert plain.status_code == 200, plain.text
            model, tok, manifest, base = load_for_inference(model_dirs[task])
            t = get_task(task)
            ref = t.family.serve(t, model, tok, rows[task], head=None if task == "tatoeba" else task,
                                 max_length=m.manifest["max_length"], doc_stride=128, base_model=base or "")
            got, described = plain.json()["predictions"], r.json()["predictions"]
            if task == "tatoeba":
                assert np.allclose(np.array(got), np.array(ref), atol=1e-4)
                assert len(described[0]["embedding"]) == 384
            else:
                assert got == ref, task
                key = "choice" if task == "commonsenseqa" else "label"
                assert [d[key] for d in described] == ref


def test_a_closed_app_lets_go_of_its_models(panx_bundle):
    """FastAPI keeps every endpoint function it has seen in a process-wide cache: routes that closed
    over the served models kept every app's ONNX Runtime sessions for good (after this file: 11, 6 GB)."""
    import gc
    import weakref

    from fastapi.testclient import TestClient

    from xstilts.export.runtime import ServedModel
    from xstilts.serving.app import create_app

    served = ServedModel(panx_bundle.bundle, name="xstilts-serve-panx", version="1")
    alive = weakref.ref(served)
    with TestClient(create_app([served])) as c:
        for path in ("/health", "/version", "/models"):
            assert c.get(path).status_code == 200
        answer = c.post("/models/xstilts-serve-panx/tag", json={"inputs": [{"words": ["Nairobi", "."]}]})
        assert answer.status_code == 200
        assert c.post("/invocations", json={"inputs": [{"words": ["Nairobi"]}]}).status_code == 200
    del served, c
    gc.collect()
    assert alive() is None


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
    listed = client.get("/models").json()["models"][0]
    assert listed["precision"] == "fp32" and listed["int8_form"] is None  # how an int8 graph runs on this CPU


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


@contextlib.contextmanager
def _loopback(app):
    """``app`` served by a real uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import socket

    import uvicorn

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
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_concurrent_load_on_loopback_has_no_errors_and_batches(panx_bundle):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from xstilts.export.runtime import ServedModel
    from xstilts.serving.app import create_app

    app = create_app([ServedModel(panx_bundle.bundle, name="m", version="1")])
    with _loopback(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        rows = _panx_rows(("en", "sw"), n=10)

        def one(i):
            return http.post("/invocations", json={"inputs": [rows[i % len(rows)]]}).status_code
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(one, range(200)))
        stats = http.get("/health").json()["models"]["m"]
    assert codes.count(200) == 200
    assert stats["rows"] == 200 and stats["batches"] < 200  # concurrent requests shared ONNX calls


@pytest.mark.slow
def test_registered_onnx_pyfunc_loads_from_code_and_mlflow_models_serve_serves_it(panx_bundle, tracking,
                                                                                   monkeypatch):
    """The registered version has its check tags and a signature, holds no pickle, and
    ``mlflow models serve -m models:/xstilts-serve-panx/1 --env-manager local`` answers as the app."""
    import tempfile

    import mlflow
    import pandas as pd

    from xstilts.serving.commands import load_served
    from xstilts.tracking.store import RunStore

    store = RunStore.open()
    rows = [{"words": ["Angela", "Merkel", "visited", "Paris", "."]}]
    registered = store.register_export(panx_bundle.bundle, name="xstilts-serve-panx", tags=panx_bundle.tags,
                                       input_example=[{"text": "Angela Merkel visited Paris ."}])
    version = store.client.get_model_version(registered.name, registered.version)
    assert version.tags["parity.max_abs_diff"] == panx_bundle.tags["parity.max_abs_diff"]
    pyfunc = mlflow.pyfunc.load_model(registered.uri)
    assert pyfunc.metadata.signature is not None
    expected = panx_bundle_predict(panx_bundle, rows + _panx_rows(("yo",), n=3))
    assert pyfunc.predict(pd.DataFrame(rows)) == expected[:1]
    with store.fetched(registered.uri, bundle=True) as local:
        assert not list(local.rglob("*.pkl")) and (local / "model.onnx").is_file()
    assert not local.exists()  # the temporary download is gone with the block
    # `xstilts serve` of the registered version loads it whole and leaves no copy in the temporary folder
    # (each start once left hundreds of MB behind)
    monkeypatch.setattr(tempfile, "tempdir", str(tracking / "tmp"))
    (tracking / "tmp").mkdir()
    served = load_served([registered.uri], store=store)[0]
    assert (served.name, served.version) == (registered.name, registered.version)
    assert served.predict(rows) == expected[:1] and not list((tracking / "tmp").iterdir())

    with _mlflow_models_serve(f"models:/xstilts-serve-panx/{registered.version}", tracking) as url:
        import httpx

        r = httpx.post(f"{url}/invocations", json={"dataframe_records": rows + _panx_rows(("yo",), n=3)}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == expected


@pytest.mark.slow
def test_mlflow_run_export_entry_point_registers_the_model_it_reads_the_task_from(model_dirs, mlflow_run):
    """`mlflow run <repo> -e export -P model=...` as the README has it: MLflow logs the entry point's own
    params first (``task=''``: read from the model), which the export's params must not try to change."""
    from mlflow.tracking import MlflowClient

    proc = mlflow_run("export", model=model_dirs["panx"], max_examples=8)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    client = MlflowClient()
    version = client.get_latest_versions("xstilts-serve-panx")[0]
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.project.entryPoint"] == "export"
    assert run.data.params["task"] in ("", "''")  # the entry point's empty default, as MLflow logs it
    assert run.data.params["resolved.task"] == "panx"
    assert run.data.params["precision"] == "fp32"


@pytest.mark.slow
def test_the_champions_export_is_served_by_the_champion_alias(model_dirs, tracking):
    """The issue's path: `xstilts champion`, `xstilts export --model models:/xstilts-target-panx@champion`,
    then `xstilts serve --model models:/xstilts-serve-panx@champion`."""
    from click.testing import CliRunner

    from xstilts.cli import main
    from xstilts.serving.commands import load_served
    from xstilts.tracking.store import RunStore

    store = RunStore.open()
    for score in (40.0, 55.0):
        with store.job_run(f"target-{score}", {"phase": "target"}) as run:
            run.log_metrics({"selected.dev_score": score})
            run.register(model_dirs["panx"], name="xstilts-target-panx", tags={"run_key": str(score)})
    assert CliRunner().invoke(main, ["champion", "--task", "panx"]).exit_code == 0
    other = CliRunner().invoke(main, ["export", "--model", "models:/xstilts-target-panx/1", "--max-examples", "8"])
    assert other.exit_code == 0, other.output
    assert '"alias"' not in other.output  # version 1 is not the champion
    result = CliRunner().invoke(main, ["export", "--model", "models:/xstilts-target-panx@champion",
                                       "--max-examples", "8"])
    assert result.exit_code == 0, result.output
    assert '"alias": "models:/xstilts-serve-panx@champion"' in result.output
    served = load_served(["models:/xstilts-serve-panx@champion"], store=store)[0]
    assert (served.name, served.version) == ("xstilts-serve-panx", "2")
    assert served.manifest["source_model"] == "models:/xstilts-target-panx@champion"


@pytest.mark.slow
def test_a_discarded_export_leaves_no_version_run_or_files(panx_bundle, tracking):
    """``RunStore.discard_version`` (what the serving benchmark does with its two exports) removes the
    version from the registry and the run's files from disk, and leaves the other versions alone."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.file_utils import local_file_uri_to_path

    from xstilts.tracking.store import RunStore

    store = RunStore.open()
    kept, gone = (store.register_export(panx_bundle.bundle, name="xstilts-serve-panx", tags=panx_bundle.tags,
                                        input_example=[{"text": "Angela Merkel visited Paris ."}]) for _ in range(2))
    kept_files, gone_files = (Path(local_file_uri_to_path(store.client.get_run(m.run_id).info.artifact_uri))
                              for m in (kept, gone))
    assert (gone_files / "model" / "MLmodel").is_file()
    store.discard_version(gone)
    with pytest.raises(MlflowException):
        store.client.get_model_version(gone.name, gone.version)
    assert store.client.get_run(gone.run_id).info.lifecycle_stage == "deleted"
    assert not gone_files.exists() or not any(gone_files.iterdir())
    assert (kept_files / "model" / "MLmodel").is_file()
    assert store.client.get_model_version(kept.name, kept.version).status == "READY"


@contextlib.contextmanager
def _mlflow_models_serve(model_uri: str, root):
    """``mlflow models serve`` of ``model_uri`` on 127.0.0.1 (a free port), stopped afterwards."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", model_uri, "--env-manager",
           "local", "-h", "127.0.0.1", "-p", str(port)]
    log = open(root / "mlflow-serve.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, (root / "mlflow-serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError("mlflow models serve did not come up: " + (root / "mlflow-serve.log").read_text()[-3000:])
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def panx_bundle_predict(bundle, rows):
    from xstilts.export.runtime import ServedModel

    return ServedModel(bundle.bundle).predict(rows)


# -- span QA answers and the window limit --------------------------------------------------------

def test_answer_spans_take_offsets_from_the_offset_mapping_and_score_in_the_window(xlmr_tokenizer):
    """The answer text occurs twice and the logits point at the second: the offsets are the second's."""
    import numpy as np

    from xstilts.data.examples import SpanQAExample
    from xstilts.data.featurize.span_qa import answer_spans, best_spans, featurize_span_qa

    context = "Nairobi ni kubwa. Mombasa ni ya zamani. Nairobi ni mpya."
    ex = SpanQAExample("q", "sw", "Mji gani ni mpya?", context, ())
    [f] = featurize_span_qa([ex], xlmr_tokenizer, max_length=64, doc_stride=16)
    at = context.rindex("Nairobi")
    first = next(i for i in range(len(f.input_ids)) if f.offsets[i, 0] == at)
    last = next(i for i in range(len(f.input_ids)) if f.offsets[i, 1] == at + len("Nairobi"))
    start, end = np.zeros(len(f.input_ids)), np.zeros(len(f.input_ids))
    start[first] = end[last] = 8.0
    span = answer_spans([start], [end], [f], [ex])["q"]
    assert (span.text, span.start, span.end) == ("Nairobi", at, at + len("Nairobi"))
    candidates = int((f.offsets[:, 0] >= 0).sum()) + 1  # context tokens and CLS
    p = np.exp(8.0) / (np.exp(8.0) + candidates - 1)
    assert span.score == pytest.approx(p * p)
    assert best_spans([start], [end], [f], [ex]) == {"q": "Nairobi"}


@pytest.fixture(scope="module")
def qa_client(panx_bundle, qa_bundle):
    """Two models in one app: PAN-X tagging and XQuAD span QA (128-token windows)."""
    from fastapi.testclient import TestClient

    from xstilts.export.runtime import ServedModel
    from xstilts.serving.app import ServeSettings, create_app

    served = [ServedModel(panx_bundle.bundle, name="xstilts-serve-panx", version="1"),
              ServedModel(qa_bundle.bundle, name="xstilts-serve-xquad", version="1")]
    with TestClient(create_app(served, ServeSettings())) as c:
        yield c


CONTEXT = "Angela Merkel besuchte im Mai Paris. Dort traf sie den Präsidenten Frankreichs."


def test_answer_endpoint_gives_character_offsets_and_a_score(qa_client):
    body = {"inputs": [{"question": "Wer besuchte Paris?", "context": CONTEXT},
                       {"question": "Wann?", "context": "  " + CONTEXT}]}
    r = qa_client.post("/models/xstilts-serve-xquad/answer", json=body)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    for row, pred in zip(body["inputs"], preds):
        assert pred["answer"] and row["context"][pred["start"]:pred["end"]] == pred["answer"]
        assert 0 < pred["score"] <= 1
    plain = qa_client.post("/invocations?model=xstilts-serve-xquad", json=body)
    assert plain.status_code == 200 and plain.json()["predictions"] == [p["answer"] for p in preds]


def test_a_question_too_long_for_its_window_is_a_422_naming_the_limit(qa_client, qa_bundle):
    m = qa_bundle.manifest
    room = m["max_length"] - 4 - min(m["doc_stride"], m["max_length"] // 2) - 1  # XLM-R: 4 pair specials
    context = " ".join([CONTEXT] * 20)  # longer than a window: the tokenizer must stride it
    fits, too_long = " ".join(["word"] * room), " ".join(["word"] * (room + 1))  # one token a word
    for path in ("/models/xstilts-serve-xquad/answer", "/invocations?model=xstilts-serve-xquad"):
        r = qa_client.post(path, json={"inputs": [{"question": fits, "context": context},
                                                  {"question": too_long, "context": context}]})
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        assert "row 1" in message and f"{room + 1} tokens" in message and f"at most {room}" in message
        r = qa_client.post(path, json={"inputs": [{"question": fits, "context": context}]})
        assert r.status_code == 200, r.text


def test_a_requests_cost_is_its_longest_rows_tokens_over_several_windows_too(panx_bundle, qa_bundle):
    """What the batcher groups requests by ("word" is one token of this tokenizer, 2 specials a row);
    a text of several windows costs more than a one-window sentence, so the two do not share a call."""
    from xstilts.export.runtime import ServedModel

    panx, qa = ServedModel(panx_bundle.bundle), ServedModel(qa_bundle.bundle)
    assert panx.cost([{"words": ["word"] * 3}, {"words": ["word"] * 10}]) == 12
    assert panx.cost([{"text": "word word word"}]) == 5
    assert panx.cost([{"words": ["word"] * 300}]) == 302 and panx.max_length == 64
    assert qa.cost([{"question": "word word", "context": " ".join(["word"] * 5)}]) == 9


OK = (200, 422)  # either answered or refused naming the problem; never a 500
MORE_BAD = [
    ("/invocations?model=xstilts-serve-panx", b"[" * 100_000, 400),                    # nested past the JSON parser's recursion limit
    ("/models/xstilts-serve-panx/tag", b"[" * 100_000, 400),
    ("/invocations?model=xstilts-serve-panx", b"\xff\xfe{}", 400),                       # not UTF-8
    ("/models/xstilts-serve-panx/tag", b"\xff\xfe{}", (400, 422)),
    ("/invocations?model=xstilts-serve-panx", b"null", 422),
    ("/invocations?model=xstilts-serve-panx", json.dumps({"inputs": "text"}).encode(), 422),
    ("/invocations?model=xstilts-serve-panx", json.dumps({"inputs": [[1, 2]]}).encode(), 422),
    ("/invocations?model=xstilts-serve-panx", json.dumps({"dataframe_split": {"columns": ["words"], "data": [1]}}).encode(), 422),
    ("/invocations?model=xstilts-serve-panx", json.dumps({"inputs": [{"words": ["\u200b"]}]}).encode(), OK),   # a word with no tokens
    ("/invocations?model=xstilts-serve-panx", json.dumps({"inputs": [{"text": "\ufeff\u200b"}]}).encode(), OK),
    ("/invocations?model=xstilts-serve-panx", json.dumps({"inputs": [{"words": ["\U0001F600" * 200, "\u0301", "\ufdfd" * 50]}]}).encode(), OK),
    ("/invocations?model=xstilts-serve-panx", json.dumps({"inputs": [{"words": ["a"] * 300}]}).encode(), 422),
    ("/invocations?model=xstilts-serve-panx", json.dumps({"inputs": [{"text": 10 ** 400}]}).encode(), 422),
    ("/models/xstilts-serve-panx/tag", json.dumps({"inputs": [{"text": "x", "words": ["x"]}], "x": 1}).encode(), 422),
    ("/models/xstilts-serve-panx/tag", json.dumps({"inputs": "x"}).encode(), 422),
    ("/models/xstilts-serve-xquad/answer", json.dumps({"inputs": [{"question": "Wer?"}]}).encode(), 422),
    ("/models/xstilts-serve-xquad/answer", json.dumps({"inputs": [{"question": "", "context": "x"}]}).encode(), 422),
    ("/models/xstilts-serve-xquad/answer",
     json.dumps({"inputs": [{"question": "\u0007?", "context": "x"}]}).encode(), 422),
    ("/invocations", json.dumps({"inputs": [{"text": "x"}]}).encode(), 422),   # two models: which one
]


@pytest.mark.parametrize("path,body,status", MORE_BAD)
def test_more_bad_requests_are_4xx_json_naming_the_problem(qa_client, path, body, status):
    r = qa_client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code in (status if isinstance(status, tuple) else (status,)), (r.status_code, r.text[:300])
    assert r.status_code == 200 or r.json()["error"]["message"]


def test_wrong_method_content_type_and_path_are_4xx_json(qa_client):
    for r in (qa_client.get("/invocations"), qa_client.put("/models/xstilts-serve-panx/tag"),
              qa_client.get("/nowhere"),
              qa_client.post("/models/xstilts-serve-panx/tag", content=b"words=a", headers={"content-type": "text/plain"})):
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        assert r.json()["error"]["message"]


# -- schemathesis against the served schema ------------------------------------------------------

@pytest.mark.slow
def test_schemathesis_finds_no_server_error_in_the_served_openapi_schema(panx_bundle, qa_bundle):
    """Generated valid and invalid requests (bounded: 40 each mode, 45 s) to a real uvicorn on loopback."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    from xstilts.export.runtime import ServedModel
    from xstilts.serving.app import ServeSettings, create_app
    from xstilts.serving.limits import Limits

    served = [ServedModel(panx_bundle.bundle, name="xstilts-serve-panx", version="1"),
              ServedModel(qa_bundle.bundle, name="xstilts-serve-xquad", version="1")]
    app = create_app(served, ServeSettings(Limits(max_body_bytes=50_000, max_rows=8, max_text_chars=300)))
    calls, problems = [], []
    stop_at = time.monotonic() + 45
    with _loopback(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            @settings(max_examples=40, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=schema.as_strategy(mode))
            def run(case):
                if time.monotonic() > stop_at:
                    return
                r = case.call(base_url=url, timeout=60)
                calls.append((case.method, case.path, r.status_code))
                if r.status_code >= 500 or (r.status_code >= 400 and "error" not in r.json()):
                    problems.append((case.method, case.formatted_path, case.body, r.status_code, r.text[:300]))
            run()
    assert not problems, problems[:5]
    assert len(calls) >= 40
    assert {p for _, p, _ in calls} >= {"/invocations", "/models/{name}/{endpoint}"}
    assert any(code == 200 for m, p, code in calls if m == "POST"), "no generated request reached a model"


# -- generated rows of every family, concurrently ----------------------------------------------------

#: what a client may put in a text: scripts with and without spaces, combining marks, emoji and flags,
#: zero-width and bidi controls, a byte-order mark, non-characters; lone surrogates and C0/C1 controls
FUZZ_CHARS = ["a", "Z", " ", "\t", "\n", "\u200b", "\u200d", "\u0301", "\u0300\u0301\u0302", "\u202e", "\ufeff",
              "\U0001F600", "\U0001F1F0\U0001F1EA", "中", "ひ", "ก", "ำ", "\u0bcd", "ಕ್ಷ", "﷽", "ǅ", "ß", "İ", "ﬃ", "١",
              "𝔘", "\u3000", "\u00a0", ".", ",", "(", ")", "'", '"', "\\", "-", "—", "…", "0", "\uffff", "\U0010FFFF"]
FUZZ_BAD_CHARS = ["\ud800", "\udfff", "\x00", "\x07", "\x7f", "\u0085"]


def _fuzz_text(rng) -> str:
    pool = FUZZ_CHARS + (FUZZ_BAD_CHARS if rng.random() < 0.2 else [])
    n = rng.choice([1, 2, 3, 5, 8, 20, 40, 80, 150, 290] + ([0, 310] if rng.random() < 0.1 else []))
    return "".join(rng.choice(pool) for _ in range(n))


def _fuzz_row(rng, endpoint: str) -> dict:
    """A row with the fields of ``endpoint`` (GET /models), their contents generated."""
    t = lambda: _fuzz_text(rng)  # noqa: E731
    if endpoint == "tag":
        words = ["".join(c for c in t() if not c.isspace()) or "x" for _ in range(rng.randint(1, 12))]
        return rng.choice([{"text": t()}, {"words": words}])
    if endpoint == "classify":
        return rng.choice([{"text": t()}, {"text": t(), "text_pair": t()}])
    if endpoint == "answer":
        return {"question": t(), "context": t()}
    if endpoint == "choose":
        return {"question": t(), "choices": [t() for _ in range(rng.randint(1, 5))],
                **({"context": t()} if rng.random() < 0.5 else {})}
    return {"text": t()}


def _fuzz_client(url: str, served: list, seed: int, n: int, record) -> None:
    """``n`` requests of 1-9 generated rows to random models, through the task endpoints and /invocations;
    ``record(endpoint, status, answer or None, request)`` for each."""
    import random

    import httpx

    rng = random.Random(seed)
    with httpx.Client(timeout=60) as client:
        for _ in range(n):
            m = rng.choice(served)
            endpoint = m.manifest["endpoint"]
            rows = [_fuzz_row(rng, endpoint) for _ in range(rng.randint(1, 8 if rng.random() < 0.95 else 9))]
            if rng.random() < 0.5:
                path, body = f"/models/{m.name}/{endpoint}", {"inputs": rows}
            else:
                path, body = f"/invocations?model={m.name}", {"dataframe_records": rows}
            content = json.dumps(body, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
            try:
                r = client.post(url + path, content=content, headers={"content-type": "application/json"})
            except httpx.TransportError as exc:  # the server dropped the connection (after a 500, say)
                record(endpoint, 0, None, (path, rows, repr(exc)))
                continue
            try:
                answer = r.json()
            except ValueError:
                answer = None
            record(endpoint, r.status_code, answer, (path, rows))


@pytest.mark.slow
def test_generated_rows_of_every_family_get_a_200_or_a_json_4xx_never_a_500(panx_bundle, qa_bundle, other_bundles):
    """400 requests of generated rows (each family's fields, any script, combining marks, emoji, bidi and
    zero-width characters, lone surrogates, controls, 1-9 rows, 1-5 choices) from 8 concurrent clients to a real
    uvicorn on loopback, where the batcher may join them. Schemathesis's generated bodies seldom reach a model;
    these found two bugs it missed: multi-word choices refused, and rows with different numbers of choices
    collated into one batch (a 500)."""
    import threading
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from xstilts.export.runtime import ServedModel
    from xstilts.serving.app import ServeSettings, create_app
    from xstilts.serving.limits import Limits

    served = [ServedModel(panx_bundle.bundle, name="xstilts-serve-panx", version="1"),
              ServedModel(qa_bundle.bundle, name="xstilts-serve-xquad", version="1"),
              *(ServedModel(b, name=f"xstilts-serve-{t}", version="1") for t, b in other_bundles.items())]
    app = create_app(served, ServeSettings(Limits(max_body_bytes=50_000, max_rows=8, max_text_chars=300)))
    codes, problems, lock = Counter(), [], threading.Lock()

    def record(endpoint, status, answer, request):
        with lock:
            codes[endpoint, status] += 1
            if status >= 500 or answer is None or (status >= 400 and "error" not in answer):  # 0: no answer
                problems.append((status, answer, request))

    with _loopback(app) as url, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: _fuzz_client(url, served, seed=k, n=50, record=record), range(8)))
    assert not problems, problems[:3]
    assert sum(codes.values()) == 400 and {s for (_, s) in codes} <= {200, 413, 422}, codes
    assert {e for (e, s) in codes if s == 200} == {"tag", "answer", "classify", "choose", "embed"}, codes


# -- the server against `xstilts evaluate`, fp32 and int8 (a trained head) -----------------------

def _evaluate(model_dir, out, langs, n) -> dict:
    """`xstilts evaluate` (fp32, untracked) of a PAN-X model: its report, predictions under ``out``."""
    from click.testing import CliRunner

    from xstilts.cli import main

    result = CliRunner().invoke(main, ["evaluate", "--model", str(model_dir), "--task", "panx", "--split", "dev",
                                       "--langs", ",".join(langs), "--max-examples", str(n), "--fp32",
                                       "--no-track", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _prediction_file(out, lang) -> list[list[str]]:
    text = (out / "predictions" / "panx" / f"dev-{lang}.tsv").read_text()
    return [block.split("\n") for block in text.strip("\n").split("\n\n")]


def _served(bundle, rows) -> list[list[str]]:
    """Tags for ``rows`` from the app over HTTP (/invocations, at most 8 rows per request)."""
    from fastapi.testclient import TestClient

    from xstilts.export.runtime import ServedModel
    from xstilts.serving.app import create_app

    out = []
    with TestClient(create_app([ServedModel(bundle, name="m", version="1")])) as c:
        for i in range(0, len(rows), 8):
            r = c.post("/invocations", json={"inputs": rows[i:i + 8]})
            assert r.status_code == 200, r.text
            out += r.json()["predictions"]
    return out


def test_served_tags_equal_xstilts_evaluate_predictions_fp32(panx_bundle, model_dirs, tmp_path):
    from xstilts.data.loading import load_examples

    langs, n = ("en", "de", "sw", "yo"), 20
    _evaluate(model_dirs["panx"], tmp_path, langs, n)
    same = total = 0
    for lang in langs:
        rows = [{"words": list(ex.words)} for ex in load_examples("panx", lang, "dev")[:n]]
        for ref, got in zip(_prediction_file(tmp_path, lang), _served(panx_bundle.bundle, rows), strict=True):
            assert len(ref) == len(got)
            same += sum(a == b for a, b in zip(ref, got))
            total += len(ref)
    assert total > 500 and same / total >= 0.995, (same, total)


@pytest.fixture(scope="module")
def trained_panx(tmp_path_factory, default_encoder_dir):
    """A 2-layer PAN-X model trained 150 steps on real English rows (a head that has learnt entities,
    unlike the fresh heads above), as a model directory; trained in a private MLflow store."""
    import mlflow

    from xstilts.config import PhaseConfig, TaskData, TrainingArgs
    from xstilts.tracking.store import RunStore
    from xstilts.training.phase import run_phase

    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.setenv("XSTILTS_CHECKPOINT_DIR", str(root / "ckpt"))
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        cfg = PhaseConfig(phase="target", selection="last", num_hidden_layers=2, seed=1,
                          tasks=[TaskData(task="panx", languages=["en"], split="train", max_examples=960,
                                          max_dev_examples=100)],
                          training=TrainingArgs(batch_size=16, max_steps=150, learning_rate=5e-4, max_length=64,
                                                bf16=False))  # fp32: the same model on every CPU kind
        result = run_phase(cfg, progress=False)
        model_dir = RunStore.open().fetch_model_dir(result.model_uri, root / "model")
        mlflow.set_tracking_uri("")
    return model_dir, result.dev_scores


@pytest.fixture(scope="module")
def trained_int8(trained_panx, tmp_path_factory):
    """The int8 export of the trained model, checked on 200 examples per language (not enforced here)."""
    from xstilts.export.exporter import export_model

    model_dir, _ = trained_panx
    return export_model(str(model_dir), precision="int8", out_dir=tmp_path_factory.mktemp("q") / "b",
                        max_examples=1000, parity_per_lang=1, check=False)


@pytest.mark.slow
def test_int8_export_check_of_a_trained_head_measures_drift_and_refuses_over_the_limit(trained_int8):
    """On a trained head the check is meaningful (a fresh head's near-ties moved F1 by 3.3 points):
    English and two low-resource languages with 1,000 dev sentences each are scored both ways,
    the row-wise int8 export stays within 0.5 point on each, and an export over the limit is
    refused by name."""
    from xstilts.errors import XstiltsError
    from xstilts.export.checks import INT8_MAX_DRIFT, require_passed

    checks = trained_int8.manifest["checks"]
    metric = checks["metric"]
    print("int8 drift on a trained head:", metric["languages"])
    assert list(metric["languages"])[0] == "en" and len(metric["languages"]) == 3
    assert metric["languages"]["en"]["torch"] > 10, metric  # the head has learnt entities
    assert all(v["examples"] == 1000 for v in metric["languages"].values()), metric
    assert metric["max_abs_drift"] == max(abs(v["drift"]) for v in metric["languages"].values())
    assert metric["max_abs_drift"] <= INT8_MAX_DRIFT, metric
    require_passed(checks["parity"], metric, "int8")
    act7 = trained_int8.manifest["int8_act7"]["metric"]
    print("its 7-bit-activation form:", act7["languages"], trained_int8.manifest["int8_act7"]["refused"])
    assert list(act7["languages"]) == list(metric["languages"]) and act7["max_examples"] == 1000
    assert act7["max_abs_drift"] == max(abs(v["drift"]) for v in act7["languages"].values())
    assert trained_int8.manifest["int8_act7"]["passed"] is (act7["max_abs_drift"] <= INT8_MAX_DRIFT)
    over = {**metric, "max_abs_drift": INT8_MAX_DRIFT + 0.01}
    with pytest.raises(XstiltsError, match=r"the int8 export moves the task metric by .* \(limit 0.5\)"):
        require_passed(checks["parity"], over, "int8")


def test_a_refused_export_names_each_languages_scores_and_drift():
    """Hand-made check figures: the refusal says the limit, each language's PyTorch and ONNX score
    with the drift, and for int8 where an export that keeps the metric comes from."""
    from xstilts.errors import XstiltsError
    from xstilts.export.checks import require_passed

    rows = {"en": {"torch": 64.2857, "onnx": 64.4118, "drift": 0.1261, "examples": 1000},
            "te": {"torch": 38.2193, "onnx": 38.8403, "drift": 0.621, "examples": 1000}}
    drift = {"split": "dev", "languages": rows, "max_abs_drift": 0.621}
    with pytest.raises(XstiltsError) as err:
        require_passed({"max_abs_diff": 0.23}, drift, "int8")
    assert "moves the task metric by 0.62 points (limit 0.5): not registered (the fp32 export" in str(err.value)
    assert str(err.value).endswith("on dev: en 64.29 -> 64.41 (+0.13), te 38.22 -> 38.84 (+0.62)")
    require_passed({"max_abs_diff": 0.23}, {**drift, "max_abs_drift": 0.5}, "int8")  # at the limit: passes


@pytest.mark.slow
def test_served_int8_answers_do_not_depend_on_what_shares_their_batch(trained_int8):
    """Row-wise int8 scales each token's activations alone, so the int8 model is served batched and
    a row's tags are the same alone, in a batch of short rows and beside a long one."""
    from xstilts.export.runtime import ServedModel

    served = ServedModel(trained_int8.bundle)
    assert not served.model.row_wise
    rows = _panx_rows(("en", "sw"), n=6)
    long_row = {"words": [w for r in rows for w in r["words"]][:50]}
    alone = [served.predict([r])[0] for r in rows]
    assert served.predict(rows) == alone
    assert served.predict([long_row, *rows])[1:] == alone


@pytest.mark.slow
def test_served_int8_f1_is_the_export_checks_int8_f1(trained_panx, trained_int8, tmp_path):
    """Served in requests of 8 through the app, the int8 model scores exactly what the export
    check measured for it on the same 1,000 English sentences (each token scaled alone, so batching cannot
    move it), within 0.5 F1 of `xstilts evaluate` (fp32 PyTorch) on them."""
    from xstilts.data.loading import load_examples
    from xstilts.evaluation.metrics.registry import get_metric
    from xstilts.export.runtime import int8_form

    model_dir, _ = trained_panx
    n = 1000  # the check's max_examples: the same sentences
    report = _evaluate(model_dir, tmp_path / "eval", ("en",), n)
    fp32 = report["languages"][0]["scores"]["f1"]
    examples = load_examples("panx", "en", "dev")[:n]
    served = _served(trained_int8.bundle, [{"words": list(ex.words)} for ex in examples])
    got = get_metric("seqeval_f1").compute([list(ex.tags) for ex in examples], served)["f1"]
    # the figures of the form this CPU serves: without VNNI, the 7-bit-activation form's own check where it passed
    form = int8_form(trained_int8.manifest)
    checks = trained_int8.manifest["int8_act7"] if form == "act7" else trained_int8.manifest["checks"]
    checked = checks["metric"]["languages"]["en"]
    print(f"served int8 ({form}) F1 {got:.2f}, export check int8 {checked['onnx']:.2f}, "
          f"xstilts evaluate fp32 {fp32:.2f}")
    assert got == pytest.approx(checked["onnx"], abs=1e-9)
    assert fp32 == pytest.approx(checked["torch"], abs=1e-6)
    assert abs(got - fp32) <= 0.5
