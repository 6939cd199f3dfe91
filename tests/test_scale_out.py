"""Many workers: the grid and tuning on a real local Ray cluster (2 worker processes of
1 CPU each), with a real PostgreSQL and ``mlflow server`` (served artifacts) started by
``xstilts server start`` in a temporary directory and stopped afterwards.

One stack and one cluster serve the whole module (they take most of its time). The grids
are cut hard: the real encoder cut to 2 layers, one seed, real PAN-X and XNLI rows. The
reference tables come from the in-process executor with the same thread count (1).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from xstilts.config import TrainingArgs
from xstilts.grid.config import GridConfig, IntermediateGrid, TargetGrid
from xstilts.tuning.config import TuningConfig

pytest.importorskip("ray")
pytest.importorskip("psycopg2")

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = dict(batch_size=8, epochs=1, max_length=32, eval_batch_size=32)
KEY = ["task", "language", "condition", "seed", "metric"]
CLAIM_TIMEOUT = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _grid(name: str, *, conditions=("none", "en"), checkpoint_every=0, max_train=64, batch_size=8) -> GridConfig:
    target = TrainingArgs(**(TINY | {"batch_size": batch_size}), checkpoint_every=checkpoint_every)
    return GridConfig(
        name=name, num_hidden_layers=2, seeds=[0], conditions=list(conditions), threads=1,
        intermediate=IntermediateGrid(size=16, training=TrainingArgs(**TINY)),
        targets=[TargetGrid(task="panx", max_train_examples=max_train, max_dev_examples=8, eval_langs=["en", "sw"],
                            max_eval_examples=8, training=target)],
        experiment=name).validate()


#: the undisturbed grid (an intermediate model reused by a target), and the one whose worker is killed:
#: a longer target run with a checkpoint every 2 steps (a new run_key, so it trains afresh)
GRID = _grid("ray-grid")
KILLED = _grid("ray-kill", conditions=("none",), checkpoint_every=2, max_train=96, batch_size=4)


def _write(cfg: GridConfig, root: Path) -> Path:
    path = root / f"{cfg.name}.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path


def _values(csv: Path) -> pd.Series:
    table = pd.read_csv(csv)
    assert not table.duplicated(KEY).any()
    return table.set_index(KEY)["value"].sort_index()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, default_encoder_dir) -> dict[str, pd.Series]:
    """Both grids' tables from the in-process executor on a private SQLite store."""
    import mlflow
    import torch

    from xstilts.grid.runner import run_grid

    root = tmp_path_factory.mktemp("inprocess")
    saved, threads, cwd = dict(os.environ), torch.get_num_threads(), Path.cwd()
    os.chdir(root)  # the SQLite store's artifacts go to ./mlartifacts
    os.environ.update(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", XSTILTS_CHECKPOINT_DIR=str(root / "ck"))
    for key in ("XSTILTS_CLAIMS_URL", "MLFLOW_RUN_ID"):
        os.environ.pop(key, None)
    try:
        tables = {}
        for cfg in (GRID, KILLED):
            cfg.output_dir = str(root / cfg.name)
            tables[cfg.name] = _values(run_grid(cfg, progress=False).table_csv)
        return tables
    finally:
        os.environ.clear()
        os.environ.update(saved)
        mlflow.set_tracking_uri("")
        torch.set_num_threads(threads)
        os.chdir(cwd)


@pytest.fixture(scope="module")
def stack(default_encoder_dir):
    """PostgreSQL + mlflow server (xstilts server start) and a Ray head with 2 CPUs, all on 127.0.0.1."""
    from xstilts.stack.local import start, stop

    # not under pytest's tmp dir: as root, PostgreSQL runs as the postgres user, who cannot enter it
    root = Path(tempfile.mkdtemp(prefix="xstilts-stack-"))
    root.chmod(0o755)
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", HF_HUB_OFFLINE="1",
               PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0",
               # a local test cluster: no token (Ray >= 2.5x enables token auth once a token file exists
               # in ~/.ray, e.g. after any local ray.init, and then this head rejects its own drivers)
               RAY_AUTH_MODE="disabled")
    env.pop("MLFLOW_RUN_ID", None)
    head, ray_port = _start_ray(root, env)
    try:
        services = start(root / "server", port=_free_port(), pg_port=_free_port())
        env.update(services.environment(), XSTILTS_CLAIM_TIMEOUT=str(CLAIM_TIMEOUT))
        yield {"env": env, "address": f"127.0.0.1:{ray_port}", "root": root, "services": services}
    finally:
        _stop_group(head)
        stop(root / "server")
        shutil.rmtree(root, ignore_errors=True)


def _start_ray(root: Path, env: dict[str, str], attempts: int = 3) -> tuple[subprocess.Popen, int]:
    """A Ray head with 2 CPUs; retried because Ray gives its raylet a fixed 30 s to register,
    which a loaded machine can miss."""
    for attempt in range(attempts):
        port = _free_port()
        # --block keeps `ray start` in the foreground: killing its process group stops exactly this cluster
        head = subprocess.Popen(["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                                 "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                                 "--ray-client-server-port", str(_free_port()),
                                 "--dashboard-agent-listen-port", str(_free_port()),
                                 "--object-store-memory", str(150 * 2**20), "--temp-dir", str(root / "ray")],
                                env=env, cwd=root, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        seen = []
        for line in head.stdout:
            seen.append(line)
            if "Ray runtime started" in line:
                return head, port
        _stop_group(head)
    raise AssertionError(f"Ray head did not start in {attempts} attempts: " + "".join(seen)[-2000:])


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the head's process group (raylet, GCS, workers), then SIGKILL what is left. Two seconds,
    not more: Ray's raylet takes about ten to stop on SIGTERM, and this throwaway cluster keeps nothing."""
    for sig, wait in ((signal.SIGTERM, 2), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


def _xstilts(stack, *args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xstilts.cli", *args], env=stack["env"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _client(stack):
    from mlflow import MlflowClient

    return MlflowClient(stack["services"].tracking_uri)


def _runs(stack, experiment: str) -> list:
    client = _client(stack)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)


def _grid_on_ray(stack, cfg: GridConfig, tmp: Path) -> subprocess.Popen:
    return _xstilts(stack, "grid", "--config", str(_write(cfg, tmp)), "--output-dir", str(tmp / "out"),
                    "--executor", "ray", "--address", stack["address"], "--no-progress", cwd=tmp)


def _versions_once(stack, run_keys: set[str]) -> None:
    versions = Counter(v.tags["run_key"] for v in _client(stack).search_model_versions("")
                       if v.tags.get("run_key") in run_keys)
    assert set(versions) == run_keys and set(versions.values()) == {1}, versions


@pytest.mark.slow
def test_ray_grid_gives_the_in_process_table_and_registers_each_model_once(stack, reference, tmp_path):
    log = _finish(_grid_on_ray(stack, GRID, tmp_path))
    pd.testing.assert_series_equal(_values(tmp_path / "out" / "results.csv"), reference[GRID.name])
    runs = [r for r in _runs(stack, GRID.experiment) if r.info.status == "FINISHED"]
    trained = Counter(r.data.tags["run_key"] for r in runs if r.data.tags.get("phase") in ("intermediate", "target"))
    assert len(trained) == 3 and set(trained.values()) == {1}, trained  # en intermediate, 2 targets
    _versions_once(stack, set(trained))
    workers = set(re.findall(r"on worker (\S+:\d+)", log))
    assert len(workers) == 2, log[-3000:]  # both Ray worker processes ran jobs
    target_en = next(r for r in runs if r.data.tags.get("phase") == "target" and r.data.tags["condition"] == "en")
    inter = next(r for r in runs if r.data.tags.get("phase") == "intermediate")
    assert target_en.data.params["init_from"] == inter.data.tags["registered_model"]  # reused, not retrained


def _claim_owner(stack, run_id: str) -> str | None:
    import sqlalchemy as sa

    engine = sa.create_engine(stack["env"]["XSTILTS_CLAIMS_URL"])
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT owner FROM xstilts_claims WHERE run_id = :r"), {"r": run_id}).first()
    engine.dispose()
    return None if row is None else row[0]


def _kill_worker_after_a_checkpoint(stack, driver: subprocess.Popen, deadline_s: float = 600) -> str:
    """SIGKILL the Ray worker process training the target once it uploaded a checkpoint; its run id."""
    client, deadline = _client(stack), time.monotonic() + deadline_s
    while time.monotonic() < deadline and driver.poll() is None:
        exp = client.get_experiment_by_name(KILLED.experiment)
        runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING' and "
                                  "tags.phase = 'target'") if exp else []
        for r in runs:
            if int(r.data.tags.get("checkpoint_step", 0)) >= 2 and (owner := _claim_owner(stack, r.info.run_id)):
                os.kill(int(owner.split(":")[1]), signal.SIGKILL)  # owner = host:pid:random
                return r.info.run_id
        time.sleep(0.2)
    raise AssertionError("no uploaded checkpoint seen before the grid ended: " + (driver.stdout.read() or "")[-3000:])


@pytest.mark.slow
def test_sigkilled_ray_worker_is_retried_and_resumes_from_the_uploaded_checkpoint(stack, reference, tmp_path):
    driver = _grid_on_ray(stack, KILLED, tmp_path)
    killed_run = _kill_worker_after_a_checkpoint(stack, driver)
    _finish(driver)
    pd.testing.assert_series_equal(_values(tmp_path / "out" / "results.csv"), reference[KILLED.name])
    runs = [r for r in _runs(stack, KILLED.experiment) if r.data.tags.get("phase") == "target"]
    assert Counter(r.info.status for r in runs) == Counter({"FAILED": 1, "FINISHED": 1}), \
        [(r.info.run_id, r.info.status) for r in runs]
    failed = next(r for r in runs if r.info.status == "FAILED")
    resumed = next(r for r in runs if r.info.status == "FINISHED")
    assert failed.info.run_id == killed_run
    assert resumed.data.tags["checkpoint_restored_from"] == killed_run  # from the artifact store, not a disk
    step = int(resumed.data.tags["resumed_from_step"])
    assert step >= 2 and step == int(resumed.data.tags["checkpoint_restored_step"])
    assert step % 2 == 0 and step < int(resumed.data.metrics["train.steps"])
    _versions_once(stack, {resumed.data.tags["run_key"]})


def _tuning_grid(root: Path) -> Path:
    cfg = _grid("ray-tune", conditions=("none",))
    cfg.targets[0].eval_langs = ["sw"]  # the study tunes on English dev
    cfg.tuning = TuningConfig(enabled=True, n_trials=4, pruner="none", heartbeat_interval=5, grace_period=30,
                              space={"learning_rate": {"kind": "float", "low": 1e-5, "high": 3e-3, "log": True}})
    return _write(cfg.validate(), root)


@pytest.mark.slow
def test_two_ray_tuning_workers_share_one_study_on_postgresql(stack, tmp_path):
    import optuna

    storage = stack["env"]["XSTILTS_OPTUNA_STORAGE"]
    log = _finish(_xstilts(stack, "tune", "--task", "panx", "--config", str(_tuning_grid(tmp_path)),
                           "--executor", "ray", "--address", stack["address"], "--workers", "2",
                           "--no-progress", cwd=tmp_path))
    ran = [int(n) for n in re.findall(r"worker \d \(pid \d+\): (\d+) trials run", log)]
    assert len(ran) == 2 and sum(ran) == 4 and min(ran) >= 1, log[-3000:]
    name = re.search(r"study (\S+) \(", log).group(1)
    trials = optuna.load_study(study_name=name, storage=storage).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


# -- bad input: one error line each, before anything is submitted -----------------------------

def _one_error(monkeypatch, tmp_path, env: dict[str, str], *args) -> str:
    from xstilts.cli import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["grid", "--config", str(_write(GRID, tmp_path)), "--executor", "ray", *args])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("xstilts: error:"), result.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "out").exists()
    return lines[0]


def test_the_stacks_mlflow_server_starts_no_job_workers(stack):
    """MLflow's server jobs (a runner and seven huey consumers) are off: xstilts submits none."""
    group = stack["services"].mlflow_pid
    cmds = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) == group:
                cmds.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ProcessLookupError):
            continue  # exited meanwhile
    assert any("mlflow" in c and "server" in c for c in cmds), cmds
    assert not [c for c in cmds if "huey" in c or "_job_runner" in c], cmds


def test_unreachable_tracking_server_is_one_error_line(monkeypatch, tmp_path):
    port = _free_port()
    line = _one_error(monkeypatch, tmp_path, {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
                                              "XSTILTS_CLAIMS_URL": f"sqlite:///{tmp_path / 'c.db'}"})
    assert f"MLflow tracking server http://127.0.0.1:{port} is unreachable" in line


def test_unreachable_database_is_one_error_line(monkeypatch, tmp_path):
    url = f"postgresql+psycopg2://xstilts@127.0.0.1:{_free_port()}/mlflow"
    line = _one_error(monkeypatch, tmp_path, {"MLFLOW_TRACKING_URI": url})
    assert "MLflow tracking database" in line and "is unreachable" in line


def test_ray_address_without_a_cluster_is_one_error_line(monkeypatch, tmp_path):
    monkeypatch.delenv("XSTILTS_CLAIMS_URL", raising=False)
    port = _free_port()
    line = _one_error(monkeypatch, tmp_path, {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
                      "--address", f"127.0.0.1:{port}")
    assert f"no Ray cluster at 127.0.0.1:{port}" in line
