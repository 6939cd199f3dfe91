"""The grid as a user follows and browses it: progress lines, quiet third-party output, one
named experiment under `mlflow run .`, tags and metrics to filter by, the environment of
every run, and the MLflow UI itself rendered in headless Chromium (Debian's `chromium`)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import mlflow
import pytest
import yaml

from xstilts.grid.browse import UI_QUERY, group_metrics, ui_url
from xstilts.grid.heartbeat import Heartbeat, tap
from xstilts.runtime.environment import CPU_FLAGS, cpu_info
from xstilts.runtime.quiet import QUIET_ENV, drop_harmless, quiet_third_party
from xstilts.tracking.store import (EXPERIMENT_KIND_TAG, TRAINING_KIND, ProjectExperimentProvider, RunStore,
                                    launch_experiment_name)

ROOT = Path(__file__).resolve().parents[1]


# -- units -------------------------------------------------------------------------------------

def test_group_metrics_average_each_resource_group_without_english():
    scores = {"en": {"f1": 90.0}, "de": {"f1": 70.0}, "fr": {"f1": 60.0}, "sw": {"f1": 40.0}, "yo": {"f1": 20.0}}
    metrics, tags = group_metrics("panx", scores)
    assert metrics == {"panx.f1.avg_low": 30.0, "panx.f1.avg_high_no_en": 65.0}
    assert tags == {"languages.low": "sw,yo", "languages.high": "de,fr"}


def test_ui_url_opens_the_runs_table_in_the_ml_view():
    assert ui_url("sqlite:///x/mlflow.db", "3") == f"http://127.0.0.1:5000/#/experiments/3/runs?{UI_QUERY}"
    assert ui_url("http://tracking:8080/", "3", "abc") == f"http://tracking:8080/#/experiments/3/runs/abc?{UI_QUERY}"


def test_quiet_third_party_keeps_user_settings_and_real_warnings():
    env = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "true"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party(env)
        warnings.warn("\x1b[33mAdd type hints to the `predict` method to enable data validation", UserWarning)
        warnings.warn("a real problem", UserWarning)
    assert env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "true"  # the user's choice stays
    assert all(env[k] == v for k, v in QUIET_ENV.items() if k != "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    assert [str(w.message) for w in caught] == ["a real problem"]
    # under a filter put in front of ours (MLflow's log_model shows UserWarnings "once"),
    # what is shown goes through showwarning, which drops only the harmless one
    shown = []
    show = drop_harmless(lambda message, *rest: shown.append(str(message)))
    show(UserWarning("\x1b[33mAdd type hints to the `predict` method"), UserWarning, "f.py", 1)
    show(UserWarning("a real problem"), UserWarning, "f.py", 2)
    show(DeprecationWarning("Add type hints to the `predict` method"), DeprecationWarning, "f.py", 3)
    assert shown == ["a real problem", "Add type hints to the `predict` method"]


def test_cpu_info_reads_model_and_flags():
    text = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 fma avx512f amx_tile\n\nprocessor\t: 1\n"
    info = cpu_info(text)
    assert info["model"] == "Some CPU" and info["logical_cpus"] == 2
    assert {f for f, on in info["flags"].items() if on} == {"avx2", "fma", "avx512f", "amx_tile"}
    assert set(info["flags"]) == set(CPU_FLAGS)


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


class _Run:
    def __init__(self):
        self.logged = []

    def log_metrics(self, metrics, step=0):
        self.logged.append((step, metrics))


def test_heartbeat_reports_the_running_job_and_its_last_training_step():
    logger = logging.getLogger("xstilts.test.heartbeat")
    lines = _Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    beat = Heartbeat(interval=0.05, logger=logger)
    try:
        beat.begin("[2/5 running] intermediate xnli en s0")
        run = _Run()
        tap(run, beat).log_metrics({"train.loss": 0.75, "train.lr": 1e-4}, step=40)
        deadline = time.time() + 5
        while not any("step 40" in line for line in lines.lines) and time.time() < deadline:
            time.sleep(0.02)
        beat.end()
        assert run.logged == [(40, {"train.loss": 0.75, "train.lr": 1e-4})]  # passed on unchanged
        assert any(line.startswith("[2/5 running] intermediate xnli en s0: ") and "step 40, train.loss 0.750"
                   in line for line in lines.lines), lines.lines
        n = len(lines.lines)
        time.sleep(0.2)
        assert len(lines.lines) == n  # nothing running: silent
        assert beat.line() is None
    finally:
        beat.close()
        logger.removeHandler(lines)
    assert tap(run, None) is run
    slow = Heartbeat(interval=1.0, logger=logger)
    logger.addHandler(lines)
    try:
        lines.lines.clear()
        slow.begin("short job")
        time.sleep(0.5)
        assert lines.lines == []  # a job shorter than one interval gets no heartbeat line
    finally:
        slow.close()
        logger.removeHandler(lines)


def test_mlflow_run_of_this_project_defaults_to_the_grids_experiment(tracking, tmp_path):
    """MLflow asks its default-experiment providers when `mlflow run` was given no experiment:
    ours answers inside `mlflow run` of an xstilts project only, from the command's own params."""
    from importlib.metadata import entry_points

    import click
    from mlflow.cli import run as mlflow_run

    provider = ProjectExperimentProvider()
    assert not provider.in_context()  # not inside `mlflow run`
    config = tmp_path / "g.yaml"
    config.write_text("name: mine\nseeds: [0]\ntargets: [{task: tatoeba}]\n")
    with click.Context(mlflow_run) as ctx:
        ctx.params.update(uri=str(ROOT), entry_point="main", param_list=(f"config={config}",))
        assert launch_experiment_name() == "xstilts-mine"
        exp = mlflow.MlflowClient().get_experiment(provider.get_experiment_id())
        ctx.params.update(param_list=())
        assert launch_experiment_name() == "xstilts-default"  # the embedded grid
        ctx.params.update(entry_point="intermediate")
        assert launch_experiment_name() == "xstilts"
        ctx.params.update(uri=str(tmp_path))  # another project
        assert not provider.in_context()
    assert exp.name == "xstilts-mine" and exp.tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    assert Path(exp.artifact_location.removeprefix("file://")) == tracking / "mlartifacts" / "xstilts-mine"
    registered = [e.value for e in entry_points(group="mlflow.default_experiment_provider") if e.name == "xstilts"]
    assert registered == ["xstilts.tracking.store:ProjectExperimentProvider"], "reinstall: pip install -e ."


def test_every_started_run_logs_its_environment(tracking):
    store = RunStore.open("env-test")
    run_id = store.start_run("r", {})
    env = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="environment.json",
                                                              dst_path=str(tracking / "env"))).read_text())
    assert env["packages"]["mlflow"] == mlflow.__version__ and "avx512f" in env["cpu"]["flags"]
    assert env["torch"]["version"].startswith("2.") and env["cpu"]["model"]


# -- the whole path: `mlflow run .`, its log, its store, the UI in Chromium ----------------------

def _tiny_grid(out: Path) -> dict:
    tiny = {"batch_size": 8, "epochs": 1, "max_length": 32, "eval_batch_size": 32}
    return {"name": "ui-tiny", "num_hidden_layers": 2, "seeds": [0, 1], "conditions": ["en", "multi"],
            "output_dir": str(out),
            "intermediate": {"task": "xnli", "split": "dev", "size": 16, "languages": ["en", "sw"],
                             "selection": "last", "training": tiny},
            "targets": [{"task": "tatoeba", "eval_langs": ["de", "sw", "jv"], "max_eval_examples": 16}]}


@pytest.fixture(scope="module")
def launched_grid(tmp_path_factory, default_encoder_dir):
    """`mlflow run <repo> -P config=<a tiny grid>` in a temp folder with its own SQLite store."""
    work = tmp_path_factory.mktemp("ui-grid")
    config = work / "tiny.yaml"
    config.write_text(yaml.safe_dump(_tiny_grid(work / "out")))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "XSTILTS_CHECKPOINT_DIR": str(work / "ckpt"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", "local",
                           "-P", f"config={config}", "-P", f"output_dir={work / 'out'}"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    (work / "mlflow-run.log").write_text(log)
    assert proc.returncode == 0, log[-4000:]
    return work, uri, log


@pytest.mark.slow
def test_mlflow_run_log_is_one_line_per_job_without_third_party_noise(launched_grid):
    _, _, log = launched_grid
    jobs = [line for line in log.splitlines() if " [" in line and "/8] " in line]
    assert len(jobs) == 8, log[-3000:]  # 4 intermediate trainings, 4 evaluations
    assert "min left" in jobs[0] and "over 3 languages" in jobs[-1]
    for noise in ("Downloading artifacts", "Loading weights", "Add type hints", "it/s]"):
        assert noise not in log, noise
    assert "browse: `mlflow ui` here, then http://127.0.0.1:5000/#/experiments/" in log
    assert "report: " in log


@pytest.mark.slow
def test_mlflow_run_puts_every_run_of_the_grid_in_its_named_experiment(launched_grid):
    work, uri, _ = launched_grid
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("xstilts-ui-tiny")
    assert exp.tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    runs = client.search_runs([exp.experiment_id])
    assert client.search_runs(["0"]) == []  # nothing in Default: `mlflow run` made its run in the grid's
    assert {e.name for e in client.search_experiments()} == {"xstilts-ui-tiny", "Default"}  # and no other
    assert Path(exp.artifact_location.removeprefix("file://")) == work / "mlartifacts" / "xstilts-ui-tiny"
    parent = [r for r in runs if r.data.tags.get("kind") == "grid"]
    assert len(parent) == 1 and parent[0].info.run_name == "grid-ui-tiny"
    parent = parent[0]
    assert parent.data.tags["mlflow.project.entryPoint"] == "main" and "mlflow.source.git.commit" in parent.data.tags
    ids = {r.info.run_id for r in runs}
    children = [r for r in runs if r is not parent]
    assert len(children) == 8 and all(r.data.tags.get("mlflow.parentRunId") in ids for r in children)
    for r in children:
        assert {"grid", "condition", "seed", "task", "intermediate", "phase"} <= set(r.data.tags), r.data.tags
        assert r.data.tags["intermediate"] == "xnli" and r.data.tags["condition"] in ("en", "multi")
        assert "environment.json" in [a.path for a in client.list_artifacts(r.info.run_id)]
    evals = [r for r in children if r.data.tags["phase"] == "evaluation"]
    assert len(evals) == 4
    for r in evals:
        assert {"tatoeba.accuracy.de", "tatoeba.accuracy.sw", "tatoeba.accuracy.jv",
                "tatoeba.accuracy.avg_low", "tatoeba.accuracy.avg_high_no_en"} <= set(r.data.metrics)
        assert r.data.tags["languages.low"] == "jv,sw" and r.data.tags["languages.high"] == "de"
    report = [a.path for a in client.list_artifacts(parent.info.run_id, "report")]
    assert {"report/report.md", "report/report.html", "report/figures"} <= set(report)
    assert client.list_artifacts(parent.info.run_id, "report/figures")
    versions = client.search_model_versions("name = 'xstilts-intermediate-xnli'")
    assert len(versions) == 4 and {v.run_id for v in versions} <= ids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is needed for the MLflow UI test (.ci/run installs it: apt-get install chromium)")
    return found


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1600,1000", "--virtual-time-budget=25000")


def _render(chromium: str, url: str, out: Path, profile: Path) -> str:
    """The page's DOM once its scripts have run, and a screenshot of it in ``out``."""
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    subprocess.run([*base, f"--screenshot={out}", url], capture_output=True, text=True, timeout=120)
    return dom.stdout


@pytest.fixture
def mlflow_ui(launched_grid, tmp_path):
    """`mlflow server` on the grid's store, on 127.0.0.1, stopped afterwards."""
    work, uri, _ = launched_grid
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            cwd=work, stdout=open(tmp_path / "server.log", "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail("mlflow server did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        yield base, mlflow.MlflowClient(uri)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_mlflow_ui_in_chromium_lists_the_grid_runs_in_one_named_experiment(mlflow_ui, tmp_path):
    import re

    base, client = mlflow_ui
    chromium = _chromium()
    exp = client.get_experiment_by_name("xstilts-ui-tiny")
    n_runs = len(client.search_runs([exp.experiment_id]))
    assert n_runs == 9  # the parent, 4 trainings, 4 evaluations
    # kept where pytest's rotation of temporary folders does not remove it
    shot = ROOT / "test-artifacts" / "mlflow-ui-runs.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    dom = _render(chromium, ui_url(base, exp.experiment_id), shot, tmp_path / "profile")
    print(f"\nMLflow UI screenshot: {shot}")
    assert shot.is_file() and shot.stat().st_size > 10_000
    # the runs table (not the GenAI overview) of the named experiment, in the model-training view
    assert re.search(r"<strong>(\d+)</strong> matching runs", dom), dom[-3000:]
    assert re.search(r"<strong>(\d+)</strong> matching runs", dom).group(1) == str(n_runs)
    assert "xstilts-ui-tiny" in dom and ">Model training<" in dom
    assert "grid-ui-tiny" in dom  # the parent run, named after the grid; its children nest under it
