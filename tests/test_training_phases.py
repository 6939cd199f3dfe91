"""Intermediate -> target chaining, registry tags, reuse, failure handling and determinism.

All runs use the real encoder cut to 2 layers and real data rows (XNLI English
dev rows for the intermediate task, PAN-X English rows for the target task).
"""
from __future__ import annotations

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from xstilts.config import PhaseConfig, TaskData, TrainingArgs
from xstilts.errors import XstiltsError
from xstilts.models.persist import load_model
from xstilts.tracking.store import RunStore
from xstilts.training import phase as phase_mod
from xstilts.training.phase import run_phase

TINY = dict(batch_size=8, epochs=1, max_length=48, eval_batch_size=32)


def intermediate_config(seed=0, **kw) -> PhaseConfig:
    return PhaseConfig(phase="intermediate", condition="en", seed=seed, selection="last", num_hidden_layers=2,
                       tasks=[TaskData(task="xnli", languages=["en"], split="dev", max_examples=48)],
                       training=TrainingArgs(**TINY), **kw)


def target_config(init_from, seed=0, **kw) -> PhaseConfig:
    return PhaseConfig(phase="target", condition="en" if init_from else "none", seed=seed, init_from=init_from,
                       num_hidden_layers=2,
                       tasks=[TaskData(task="panx", languages=["en"], max_examples=48, max_dev_examples=32)],
                       training=TrainingArgs(**TINY), **kw)


def test_chain_registers_two_tagged_models_and_target_starts_from_intermediate(tracking, encoder_2layer, tmp_path):
    inter = run_phase(intermediate_config(), progress=False)
    target = run_phase(target_config(inter.model_uri), progress=False)
    client = MlflowClient()
    for uri, phase, task in ((inter.model_uri, "intermediate", "xnli"), (target.model_uri, "target", "panx")):
        name, version = uri[len("models:/"):].rsplit("/", 1)
        tags = client.get_model_version(name, version).tags
        assert tags["phase"] == phase and tags["task"] == task
        for key in ("condition", "data_spec_hash", "seed", "base_encoder", "code_version", "selection_policy",
                    "run_key"):
            assert tags[key], key
    target_tags = client.get_model_version("xstilts-target-panx", target.model_uri.rsplit("/", 1)[1]).tags
    assert target_tags["selection_policy"] == "english_dev" and target_tags["init_from"] == inter.model_uri
    assert client.get_run(target.run_id).data.params["selection"] == "english_dev"
    assert "dev.panx.en" in target.dev_scores

    # The target phase's encoder starts from the intermediate encoder, not the base.
    inter_dir = RunStore.open().fetch_model_dir(inter.model_uri, tmp_path / "inter")
    model = phase_mod.build_model(target_config(inter.model_uri), init_dir=inter_dir)
    inter_model = load_model(inter_dir)
    name = "encoder.encoder.layer.1.output.dense.weight"
    start = dict(model.named_parameters())[name]
    torch.testing.assert_close(start, dict(inter_model.named_parameters())[name])
    base = dict(encoder_2layer.named_parameters())["encoder.layer.1.output.dense.weight"]
    assert not torch.allclose(start, base)
    assert set(model.heads) == {"panx"}  # the NLI head was dropped, a fresh tagging head added


def test_same_config_and_seed_reuses_the_registered_model(tracking):
    first = run_phase(intermediate_config(seed=3), progress=False)
    again = run_phase(intermediate_config(seed=3), progress=False)
    assert again.reused and again.model_uri == first.model_uri
    other_seed = run_phase(intermediate_config(seed=4), progress=False)
    assert not other_seed.reused and other_seed.model_uri != first.model_uri


def test_exception_marks_run_failed_and_registers_nothing(tracking, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(phase_mod, "build_dev_sets", boom)
    cfg = target_config(None, seed=5)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_phase(cfg, progress=False)
    runs = mlflow.search_runs(experiment_names=["xstilts"], output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert MlflowClient().search_model_versions("name = 'xstilts-target-panx'") == []
    monkeypatch.undo()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tracking / 'mlflow.db'}")
    monkeypatch.setenv("XSTILTS_CHECKPOINT_DIR", str(tracking / "ckpt"))
    result = run_phase(cfg, progress=False)  # a rerun starts cleanly
    assert not result.reused and result.model_uri.endswith("/1")


def test_same_config_and_seed_give_the_same_metrics(tracking):
    a = run_phase(target_config(None, seed=7, register=False), progress=False)
    b = run_phase(target_config(None, seed=7, register=False), progress=False)
    assert a.dev_scores and a.dev_scores == b.dev_scores
    assert a.loop.history == b.loop.history


def test_leakage_is_refused_before_anything_runs(tracking):
    cfg = PhaseConfig(phase="intermediate", selection="english_dev", num_hidden_layers=2,
                      tasks=[TaskData(task="xnli", languages=["en"], split="dev", dev_split="dev")])
    with pytest.raises(XstiltsError, match="leakage"):
        run_phase(cfg, progress=False)
    assert mlflow.search_runs(experiment_names=["xstilts"], output_format="list") == []


def test_mixture_of_families_with_mlm_trains_every_head(tracking, tmp_path):
    """Multiple choice + NLI + masked LM in one intermediate run (temperature sampling)."""
    from xstilts.config import MLMConfig

    cfg = PhaseConfig(phase="intermediate", condition="en+mlm", selection="last", num_hidden_layers=2,
                      mixture="temperature", temperature=2.0,
                      tasks=[TaskData(task="commonsenseqa", languages=["en"], split="dev", max_examples=16),
                             TaskData(task="xnli", languages=["en"], split="dev", max_examples=32)],
                      mlm=MLMConfig(languages=["sw", "hi"], max_examples=16),
                      training=TrainingArgs(batch_size=4, max_steps=12, max_length=48))
    result = run_phase(cfg, progress=False)
    model = load_model(RunStore.open().fetch_model_dir(result.model_uri, tmp_path / "mixed"))
    assert set(model.heads) == {"commonsenseqa", "xnli", "mlm"}
    history = mlflow.MlflowClient().get_metric_history(result.run_id, "train.loss")
    assert history and all(h.value == h.value and h.value < 20 for h in history)  # finite losses
    assert result.model_uri.startswith("models:/xstilts-intermediate-commonsenseqa-xnli-mlm/")


def test_span_qa_target_trains_on_real_tydiqa_rows(tracking, tmp_path):
    cfg = PhaseConfig(phase="target", condition="none", selection="last", num_hidden_layers=2,
                      tasks=[TaskData(task="tydiqa", languages=["en"], max_examples=24)],
                      training=TrainingArgs(batch_size=4, max_steps=6, max_length=128, doc_stride=64))
    result = run_phase(cfg, progress=False)
    assert not result.reused and result.loop.steps == 6
    assert set(load_model(RunStore.open().fetch_model_dir(result.model_uri, tmp_path / "fetched")).heads) == {"tydiqa"}


def test_evaluation_callback_sees_every_dev_score_and_can_stop_the_run(tmp_path, default_encoder_dir):
    """The per-evaluation hook Optuna's pruning uses: a work function, no MLflow needed."""
    from xstilts.training.phase import NullTracker, train_phase

    seen = []

    def stop_after_first(step, score):
        seen.append((step, score))
        return True

    cfg = target_config(None, seed=9, register=False)
    cfg.training.epochs = 3
    cfg.training.eval_every = 2
    result = train_phase(cfg, NullTracker(), model_dir=tmp_path / "model", progress=False,
                         on_evaluation=stop_after_first)
    assert len(seen) == 1 and seen[0][0] == 2
    assert result.loop.stopped_early and result.loop.steps == 2
    assert (tmp_path / "model" / "xstilts_model.json").is_file()
