"""`xstilts evaluate`: every language in one process, prediction files, MLflow metrics, refusals.

One 2-layer PAN-X model (the real checkpoint cut to 2 layers, trained a few steps
on real English PAN-X rows) is trained and registered once per session; its
scores are low, but every path (loading from the registry, head resolution,
prediction files, per-language metrics, the parent run) is the real one.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from xstilts.cli import main
from xstilts.data.loading import available_local, load_examples, load_parallel
from xstilts.errors import XstiltsError
from xstilts.evaluation.gold_check import require_gold
from xstilts.evaluation.metrics.registry import get_metric
from xstilts.evaluation.predictions import read_tag_predictions
from xstilts.evaluation.runner import evaluate_model, resolve_split
from xstilts.tasks import get_task


@pytest.fixture(scope="session")
def tracking_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval-mlflow")


def _use_tracking(mp: pytest.MonkeyPatch, root: Path) -> None:
    import mlflow

    uri = f"sqlite:///{root / 'mlflow.db'}"
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.delenv("MLFLOW_RUN_ID", raising=False)
    mp.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(uri)  # another test may have set a global URI that beats the env
    if mlflow.get_experiment_by_name("xstilts") is None:  # keep artifacts out of the working dir
        mlflow.create_experiment("xstilts", artifact_location=(root / "mlartifacts").as_uri())


@pytest.fixture(scope="session")
def panx_model(tracking_dir, default_encoder_dir):
    """``models:/xstilts-target-panx/1``: 2 layers, 6 steps on 96 real English PAN-X rows."""
    from xstilts.config import PhaseConfig, TaskData, TrainingArgs
    from xstilts.training.phase import run_phase

    with pytest.MonkeyPatch.context() as mp:
        _use_tracking(mp, tracking_dir)
        cfg = PhaseConfig(phase="target", selection="last", num_hidden_layers=2, seed=3,
                          tasks=[TaskData(task="panx", languages=["en"], split="train", max_examples=96)],
                          training=TrainingArgs(batch_size=16, max_steps=6, learning_rate=3e-4, max_length=64))
        result = run_phase(cfg, progress=False)
    return result


@pytest.fixture
def tracking(tracking_dir, monkeypatch):
    _use_tracking(monkeypatch, tracking_dir)
    return tracking_dir


def test_panx_every_vendored_language_gets_predictions_and_logged_scores(panx_model, tracking, tmp_path):
    import mlflow

    langs = sorted(lang for lang, split in available_local("panx") if split == "dev")
    assert len(langs) >= 39
    report = evaluate_model(panx_model.model_uri, "panx", split="dev", max_examples=6, batch_size=32,
                            out_dir=tmp_path, progress=False)
    assert sorted(r.lang for r in report.languages) == langs
    # the model was trained at max_length 64: evaluation defaults to its training length
    assert report.settings["head"] == "panx" and report.settings["max_length"] == 64
    seqeval = get_metric("seqeval_f1")
    for r in report.languages:
        path = tmp_path / "predictions" / "panx" / f"dev-{r.lang}.tsv"
        assert Path(r.predictions_file) == path
        predicted = read_tag_predictions(path)
        gold = [list(ex.tags) for ex in load_examples("panx", r.lang, "dev", max_examples=6)]
        assert [len(p) for p in predicted] == [len(g) for g in gold]  # one tag per word
        # the file, read back the way XTREME's evaluate.py does, gives the reported scores
        assert seqeval.compute(gold, predicted) == pytest.approx(r.scores)
    run = mlflow.get_run(report.run_id)
    assert run.data.tags["mlflow.parentRunId"] == panx_model.run_id  # a child of the training run
    assert run.data.params["eval.split"] == "dev"
    metrics = run.data.metrics
    for r in report.languages:
        for name in ("f1", "precision", "recall"):
            assert metrics[f"panx.{name}.{r.lang}"] == pytest.approx(r.scores[name])
    n = len(report.languages)
    assert metrics["panx.f1.avg"] == pytest.approx(sum(r.scores["f1"] for r in report.languages) / n)
    no_en = [r.scores["f1"] for r in report.languages if r.lang != "en"]
    assert metrics["panx.f1.avg_no_en"] == pytest.approx(sum(no_en) / len(no_en))
    assert metrics["panx.score"] == pytest.approx(metrics["panx.f1.avg"])
    artifacts = {Path(a.path).name for a in mlflow.MlflowClient().list_artifacts(report.run_id, "predictions/panx")}
    assert artifacts == {f"dev-{lang}.tsv" for lang in langs}
    saved = json.loads((tmp_path / "eval-panx-dev.json").read_text())
    assert saved["metrics"]["panx.f1.de"] == pytest.approx(metrics["panx.f1.de"])


def test_tatoeba_through_evaluate_equals_the_encoder_check(panx_model, tracking, tmp_path, monkeypatch):
    import tempfile

    from xstilts.encoders.check import run_check
    from xstilts.evaluation.runner import load_eval_model

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    model = load_eval_model(panx_model.model_uri, needs_head=False)
    assert not list((tmp_path / "tmp").iterdir())  # the registered model was loaded whole, its download removed
    corpora = [load_parallel("tatoeba", lang, "test") for lang in ("de", "sw")]
    check = run_check(model.encoder, model.tokenizer, corpora, model_name="2l", layer=-1, bf16=False,
                      max_pairs=80, progress=False)
    report = evaluate_model(panx_model.model_uri, "tatoeba", langs=["de", "sw"], max_examples=80, bf16=False,
                            out_dir=tmp_path, log_to_mlflow=False, progress=False, model=model)
    assert report.split == "test" and report.settings["layer"] == -1  # E5: mean-pooled last layer
    # the encoder check reports xx->en; evaluate's headline is XTREME's en->xx, xx->en beside it
    assert {r.lang: r.scores["accuracy_xx_to_en"] for r in report.languages} == check.accuracy
    assert report.summary["tatoeba.accuracy_xx_to_en.avg"] == pytest.approx(check.mean)
    assert all(0 <= r.scores["accuracy"] <= 100 for r in report.languages)
    lines = (tmp_path / "predictions" / "tatoeba" / "test-de.tsv").read_text().split()
    correct = sum(int(x) == i for i, x in enumerate(lines))
    de = next(r for r in report.languages if r.lang == "de")
    assert len(lines) == 80 and 100 * correct / 80 == pytest.approx(de.scores["accuracy"])


def test_bucc_dev_tuned_on_the_other_half_of_the_only_gold_split(panx_model, tracking, tmp_path):
    from xstilts.evaluation.runner import load_eval_model

    model = load_eval_model(panx_model.model_uri, needs_head=False)
    kw = dict(langs=["zh"], max_examples=1000, log_to_mlflow=False, progress=False, model=model)
    tuned = evaluate_model("2l", "bucc2018", out_dir=tmp_path / "tuned", **kw)
    oracle = evaluate_model("2l", "bucc2018", bucc_threshold_policy="same_split", out_dir=tmp_path / "oracle", **kw)
    (zh,), (zh_oracle,) = tuned.languages, oracle.languages
    assert tuned.split == "dev" and tuned.settings["bucc_threshold_policy"] == "dev_tuned"
    assert "other half" in zh.details["threshold_tuned_on"] and len(zh.details["fold_thresholds"]) == 2
    # the oracle threshold is F1-optimal on the scored pairs, so nothing tuned elsewhere beats it
    assert zh_oracle.scores["f1"] >= zh.scores["f1"]
    corpus = load_parallel("bucc2018", "zh", "dev")
    kept = set(corpus.source_ids[:1000])
    sample_gold = {p for p in corpus.gold if p[0] in kept}
    assert len(sample_gold) == zh.details["gold_pairs"] >= 10
    mined = {tuple(line.split("\t")) for line in
             (tmp_path / "tuned" / "predictions" / "bucc2018" / "dev-zh.tsv").read_text().splitlines()}
    assert get_metric("bucc_f1").compute(sample_gold, mined) == pytest.approx(zh.scores)


def test_refuses_tydiqa_dev_whose_answers_are_all_empty(panx_model, tracking, tmp_path):
    # XTREME redistributes TyDiQA-GoldP dev without answers; checked before any model work
    with pytest.raises(XstiltsError, match=r"task tydiqa, language sw, split dev \(.*tydiqa\.goldp\.sw\.dev\.json"
                                           r".*499 of 499 questions have no gold answer"):
        evaluate_model(panx_model.model_uri, "tydiqa", langs=["sw"], out_dir=tmp_path, log_to_mlflow=False)
    assert not (tmp_path / "predictions").exists()


def test_placeholder_and_missing_labels_are_refused_on_real_rows():
    pawsx = get_task("pawsx")
    rows = load_examples("pawsx", "de", "dev", max_examples=200)
    require_gold(pawsx, "de", "dev", rows)  # real labels pass
    placeholder = [dataclasses.replace(ex, label="0") for ex in rows]  # XTREME's held-out test files
    with pytest.raises(XstiltsError, match=r"pawsx, language de, split dev .*all 200 examples carry the same "
                                           r"label '0'"):
        require_gold(pawsx, "de", "dev", placeholder)
    unlabelled = rows[:150] + [dataclasses.replace(ex, label=None) for ex in rows[150:]]
    with pytest.raises(XstiltsError, match="50 of 200 examples have no gold label"):
        require_gold(pawsx, "de", "dev", unlabelled)
    panx = get_task("panx")
    sentences = load_examples("panx", "sw", "dev", max_examples=30)
    require_gold(panx, "sw", "dev", sentences)
    all_o = [dataclasses.replace(ex, tags=("O",) * len(ex.words)) for ex in sentences]
    with pytest.raises(XstiltsError, match="every word of all 30 sentences is tagged 'O'"):
        require_gold(panx, "sw", "dev", all_o)


def test_default_split_prefers_the_split_with_more_vendored_languages():
    assert resolve_split(get_task("panx"), None, None) == "dev"       # no PAN-X test vendored
    assert resolve_split(get_task("xquad"), None, None) == "test"
    assert resolve_split(get_task("xnli"), None, None) == "dev"       # test is only the HF dummy sample
    assert resolve_split(get_task("pawsx"), None, ["de", "zh"]) == "test"  # tie: test
    assert resolve_split(get_task("pawsx"), None, None) == "dev"


@pytest.mark.parametrize("args, message", [
    (["--model", "default", "--task", "nope"], "unknown task 'nope'; valid choices:"),
    (["--model", "default", "--task", "panx", "--langs", "de,xx"], "unknown language for task panx 'xx'"),
    (["--model", "default", "--task", "panx", "--langs", "de"], "has no task head"),
    (["--model", "default", "--task", "tatoeba", "--out", ""], "--out '' keeps the files only in MLflow"),
])
def test_cli_prints_one_line_errors(args, message, tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--no-track", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xstilts: error: ") and message in lines[0]


def test_cli_table_and_json(panx_model, tracking, tmp_path):
    args = ["evaluate", "--model", panx_model.model_uri, "--task", "panx", "--langs", "de,en,sw",
            "--max-examples", "5", "--no-track", "--out", str(tmp_path)]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line[:3] in ("de ", "en ", "sw ")}
    assert set(rows) == {"de", "en", "sw"} and all(r[1] == "5" for r in rows.values())
    assert "no en" in table.stdout and "score" in table.stdout
    payload = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    assert [r["lang"] for r in payload["languages"]] == ["de", "en", "sw"]
    assert payload["metrics"]["panx.f1.de"] == pytest.approx(float(rows["de"][2]), abs=0.006)


def test_bf16_evaluation_runs_a_bf16_copy_and_agrees_with_autocast(panx_model, tracking, tmp_path):
    import torch

    from xstilts.data.task_features import task_features
    from xstilts.evaluation.predict import EvalData, predict
    from xstilts.evaluation.runner import load_eval_model

    em = load_eval_model(panx_model.model_uri, needs_head=True)
    fast = em.bf16_model()
    assert fast is em.bf16_model()  # made once per loaded model
    assert {p.dtype for p in fast.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in em.model.parameters()} == {torch.float32}  # the original is untouched
    task = get_task("panx")
    examples = load_examples("panx", "de", "dev", max_examples=60)
    data = EvalData(task, "de", "dev", examples, task_features(task, examples, em.tokenizer, lang="de",
                                                                   split="dev", max_length=128))
    autocast = predict(em.model, "panx", data, bf16=True, max_tokens=1024)
    weights = predict(fast, "panx", data, bf16=True, max_tokens=1024)
    tags = [(a, w) for ra, rw in zip(autocast, weights) for a, w in zip(ra, rw, strict=True)]
    assert sum(a == w for a, w in tags) / len(tags) >= 0.97  # bf16 rounding may flip a near-tie
    report = evaluate_model(panx_model.model_uri, "panx", langs=["de"], split="dev", max_examples=60, bf16=True,
                            max_length=128, out_dir=tmp_path, progress=False, log_to_mlflow=False)
    assert report.settings["bf16_mode"] == "weights"
    assert read_tag_predictions(tmp_path / "predictions" / "panx" / "dev-de.tsv") == weights
