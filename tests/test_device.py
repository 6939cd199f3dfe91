"""The device setting: how it resolves, the one error a missing GPU gives, that no key
includes it, and that naming the CPU changes nothing on the CPU path.

The CUDA path itself runs only where torch sees a GPU (tests/test_paper_configs.py);
here the GPU's absence is checked, with ``torch.cuda.is_available`` forced to False so
these tests mean the same on a GPU machine.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from xstilts.config import PhaseConfig, TaskData, TrainingArgs
from xstilts.errors import XstiltsError
from xstilts.runtime.device import check_device_setting, resolve_device, to_cpu, to_device, training_precision

TINY = dict(batch_size=8, epochs=1, max_length=48, eval_batch_size=32)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def target_config(**training) -> PhaseConfig:
    return PhaseConfig(phase="target", condition="none", seed=3, num_hidden_layers=2, register=False,
                       tasks=[TaskData(task="panx", languages=["en"], max_examples=32, max_dev_examples=16)],
                       training=TrainingArgs(**TINY, **training))


def test_auto_is_the_gpu_when_torch_sees_one_else_the_cpu(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_here():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("value", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_a_gpu_is_one_error_naming_the_setting(no_gpu, value):
    with pytest.raises(XstiltsError, match=rf"^training\.device: '{value}' asks for a CUDA GPU, but torch sees none"):
        resolve_device(value, "training.device")


@pytest.mark.parametrize("value", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", ""])
def test_values_that_are_no_device_are_refused(value):
    with pytest.raises(XstiltsError, match="is not a device; valid: auto, cpu, cuda, cuda:N"):
        check_device_setting(value, "device")


def test_configs_check_the_device_when_validated():
    with pytest.raises(XstiltsError, match="config field training.device: 'gpu' is not a device"):
        target_config(device="gpu").validate()
    from xstilts.grid.config import GridConfig, TargetGrid

    with pytest.raises(XstiltsError, match="grid config: device: 'gpu' is not a device"):
        GridConfig(targets=[TargetGrid(task="panx")], device="gpu").validate()


def test_the_device_is_in_no_key():
    keys = {target_config(device=d).run_key() for d in ("auto", "cpu", "cuda", "cuda:1")}
    assert len(keys) == 1
    from xstilts.grid.config import GridConfig, TargetGrid
    from xstilts.paths import repo_root

    cfg = GridConfig.from_file(repo_root() / "configs" / "default.yaml")
    cfg.seeds = cfg.seeds[:1]
    moved = replace(cfg, device="cuda",
                    targets=[replace(t, training=replace(t.training, device="cuda:1")) for t in cfg.targets],
                    intermediate=[replace(i, training=replace(i.training, device="cuda")) for i in cfg.intermediates])
    assert moved.grid_hash() == cfg.grid_hash()
    from xstilts.grid.plan import plan_grid

    assert sorted(plan_grid(moved).jobs) == sorted(plan_grid(cfg).jobs)  # same run_keys, same evaluation keys
    job = next(j for j in plan_grid(moved).jobs.values() if hasattr(j, "config"))
    assert job.config.training.device == "cuda"  # and every phase trains where the grid says


def test_cpu_precision_is_what_it_was(monkeypatch):
    from xstilts.runtime import cpu

    for native in (True, False):
        monkeypatch.setattr(cpu, "cpu_supports_bf16", lambda native=native: native)
        for setting in (None, True, False):
            for mode in ("weights", "autocast"):
                p = training_precision(torch.device("cpu"), setting, mode)
                assert (p.bf16, p.bf16_mode) == (cpu.resolve_bf16(setting), mode)


def test_cpu_tensors_stay_as_they_are():
    t = torch.arange(4)
    batch = {"input_ids": t}
    assert to_device(batch, torch.device("cpu")) is batch
    nested = to_cpu({"a": [t, (t, 1)], "b": "x"})
    assert nested["a"][0] is t and nested["a"][1][0] is t and nested["b"] == "x"


class RecordingTracker:
    def __init__(self):
        self.params, self.tags = {}, {}

    def log_params(self, params): self.params.update(params)
    def log_metrics(self, metrics, step=0): pass
    def set_tags(self, tags): self.tags.update(tags)
    def log_text(self, text, artifact_file): pass


def test_a_phase_asking_for_a_missing_gpu_fails_before_anything_loads(no_gpu, tmp_path, monkeypatch):
    from xstilts.training import phase

    def not_reached(*a, **kw):
        raise AssertionError("the model was built")

    monkeypatch.setattr(phase, "build_model", not_reached)
    tracker = RecordingTracker()
    with pytest.raises(XstiltsError, match="training.device: 'cuda' asks for a CUDA GPU"):
        phase.train_phase(target_config(device="cuda"), tracker, model_dir=tmp_path / "m", progress=False)
    assert tracker.params == {}
    with pytest.raises(XstiltsError, match="training.device: 'cuda:0' asks for a CUDA GPU"):
        phase.run_phase(target_config(device="cuda:0"), progress=False, store=object())  # no store touched


def _files(model_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(model_dir.iterdir()) if p.is_file()}


def test_device_cpu_trains_and_evaluates_exactly_as_the_default(tmp_path, default_encoder_dir):
    """On this CPU-only machine ``auto`` is the CPU; naming it must not change a bit."""
    from xstilts.evaluation.runner import evaluate_model
    from xstilts.training.phase import train_phase

    runs = {}
    for device in ("auto", "cpu"):
        tracker = RecordingTracker()
        result = train_phase(target_config(device=device), tracker, model_dir=tmp_path / device / "model",
                             progress=False)
        runs[device] = result
        assert tracker.params["device"] == "cpu" and tracker.tags["device"] == "cpu"
        assert tracker.params["training.device"] == device
    assert runs["auto"].loop.history == runs["cpu"].loop.history
    assert runs["auto"].dev_scores == runs["cpu"].dev_scores
    files = [_files(Path(r.model_dir)) for r in runs.values()]
    weights = [{k: v for k, v in f.items() if k.endswith(".safetensors")} for f in files]
    assert weights[0] and weights[0] == weights[1]
    model_dir = runs["cpu"].model_dir
    reports = {d: evaluate_model(model_dir, "panx", langs=["de"], split="dev", max_examples=6, device=d,
                                 out_dir=tmp_path / f"eval-{d}", log_to_mlflow=False, progress=False)
               for d in (None, "auto", "cpu")}
    assert reports["cpu"].settings["device"] == "cpu"
    assert len({json_of(r.languages) for r in reports.values()}) == 1
    predictions = {Path(r.languages[0].predictions_file).read_bytes() for r in reports.values()}
    assert len(predictions) == 1


def test_retrieval_on_the_cpu_is_the_same_with_the_device_named(tmp_path):
    from xstilts.evaluation.runner import evaluate_model

    scores = [evaluate_model("default", "tatoeba", langs=["de"], max_examples=24, num_hidden_layers=2, device=d,
                             out_dir=tmp_path / str(d), log_to_mlflow=False, progress=False).languages[0].scores
              for d in ("auto", "cpu")]
    assert scores[0] == scores[1]


def json_of(languages) -> str:
    import json

    return json.dumps([(r.lang, r.scores, r.num_examples) for r in languages], sort_keys=True)
