"""A local tracking stack: PostgreSQL in a data directory and ``mlflow server`` on it.

``xstilts server start`` brings up, bound to 127.0.0.1 only:

- PostgreSQL (``initdb``/``pg_ctl`` from PATH) in ``DIR/pg``, with two databases:
  ``mlflow`` (MLflow's backend store, and xstilts' job claims table beside it) and
  ``optuna`` (the Optuna RDB storage for studies);
- ``mlflow server`` with that backend store and served artifacts in
  ``DIR/artifacts`` (``--serve-artifacts``: clients and Ray workers upload and
  download through the server, so no worker needs the directory mounted).

It prints the environment to use it (``MLFLOW_TRACKING_URI``, ``XSTILTS_CLAIMS_URL``,
``XSTILTS_OPTUNA_STORAGE``) and records ports and pids in ``DIR/stack.json``, which
``xstilts server stop`` reads. Local authentication is ``trust`` on 127.0.0.1: a
development stack for one machine, not a shared service (docs/scale-out.md says how
to run a real one). PostgreSQL refuses to run as root, so as root the server
processes run as the ``postgres`` user (``runuser``), which owns ``DIR/pg``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from xstilts.errors import XstiltsError

PG_USER = "xstilts"
DATABASES = ("mlflow", "optuna")


@dataclass
class Stack:
    data_dir: str
    pg_port: int
    port: int
    mlflow_pid: int | None = None

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def db_url(self, name: str) -> str:
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.pg_port}/{name}"

    def environment(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.tracking_uri, "XSTILTS_CLAIMS_URL": self.db_url("mlflow"),
                "XSTILTS_OPTUNA_STORAGE": self.db_url("optuna")}


def _record(data_dir: Path) -> Path:
    return data_dir / "stack.json"


def _as_pg_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses root: run its binaries as ``postgres`` then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise XstiltsError(f"{name} not found on PATH: install PostgreSQL's server binaries "
                           f"(Debian: apt-get install postgresql) or put their bin/ directory on PATH")
    return found


def _run(cmd: list[str], what: str, log: Path | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        if log is not None and log.exists():  # pg_ctl only says "examine the log output"
            lines += [ln for ln in log.read_text(errors="replace").splitlines()[-20:] if "FATAL" in ln]
        raise XstiltsError(f"{what} failed: {lines[-1].strip() if lines else f'exit {proc.returncode}'}")


def _init_postgres(pg: Path) -> None:
    """A new cluster in ``pg`` (owned by the postgres user when we are root)."""
    pg.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(pg, "postgres", "postgres")
        shutil.chown(pg.parent, "postgres", "postgres")
    pg.chmod(0o700)
    if os.geteuid() == 0 and subprocess.run(_as_pg_user(["test", "-w", str(pg)])).returncode != 0:
        raise XstiltsError(f"--data-dir {pg.parent}: the postgres user cannot enter it (a parent directory is "
                           f"private to root); choose one under a directory others can enter, e.g. /var/tmp")
    _run(_as_pg_user([_binary("initdb"), "-D", str(pg), "-U", PG_USER, "-A", "trust", "-E", "UTF8",
                      "--no-sync"]), "initdb")


def start_postgres(data_dir: Path, port: int) -> None:
    """initdb on first use, then ``pg_ctl start`` on 127.0.0.1:``port``; creates the databases."""
    pg = data_dir / "pg"
    if not (pg / "PG_VERSION").is_file():
        _init_postgres(pg)
    log = data_dir / "postgres.log"
    if os.geteuid() == 0:
        log.touch()
        shutil.chown(log, "postgres", "postgres")
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {pg}"
    running = subprocess.run(_as_pg_user([_binary("pg_ctl"), "-D", str(pg), "status"]), capture_output=True)
    if running.returncode != 0:
        _run(_as_pg_user([_binary("pg_ctl"), "-D", str(pg), "-l", str(log), "-w", "-t", "60", "-o", opts, "start"]),
             f"PostgreSQL on 127.0.0.1:{port}", log)
    _create_databases(port)


def _create_databases(port: int) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        have = {r[0] for r in conn.execute(sa.text("SELECT datname FROM pg_database"))}
        for name in DATABASES:
            if name not in have:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def start_mlflow(stack: Stack, timeout: float = 180) -> int:
    """``mlflow server`` on the ``mlflow`` database with served artifacts; its pid once /health answers."""
    data_dir = Path(stack.data_dir)
    artifacts = data_dir / "artifacts"
    artifacts.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", stack.db_url("mlflow"),
           "--artifacts-destination", str(artifacts), "--serve-artifacts", "--host", "127.0.0.1",
           "--port", str(stack.port), "--workers", "1"]
    log = open(data_dir / "mlflow.log", "ab")
    # MLflow's server jobs (GenAI evaluation and optimization) start a job runner and seven huey consumer
    # processes beside the server; xstilts submits no jobs, and on a 2-core machine they take CPU from
    # training. Off unless the environment says otherwise.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=data_dir, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = [ln for ln in (data_dir / "mlflow.log").read_text(errors="replace").splitlines() if ln.strip()]
            raise XstiltsError(f"mlflow server exited ({proc.returncode}): {tail[-1] if tail else 'no output'} "
                               f"(log: {data_dir / 'mlflow.log'})")
        try:
            with urllib.request.urlopen(f"{stack.tracking_uri}/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc.pid
        except OSError:
            pass
        time.sleep(0.5)
    _kill_group(proc.pid)
    raise XstiltsError(f"mlflow server did not answer on {stack.tracking_uri} within {timeout:.0f} s "
                       f"(log: {data_dir / 'mlflow.log'})")


def start(data_dir: str | os.PathLike[str], *, port: int = 5000, pg_port: int = 5432) -> Stack:
    """Bring the stack up (or return the running one recorded in ``data_dir``)."""
    root = Path(data_dir).expanduser().resolve()
    running = status(root)
    if running is not None:
        return running
    root.mkdir(parents=True, exist_ok=True)
    stack = Stack(str(root), pg_port, port)
    try:
        start_postgres(root, pg_port)
        stack.mlflow_pid = start_mlflow(stack)
    except BaseException:
        stop_postgres(root)
        raise
    _record(root).write_text(json.dumps(asdict(stack), indent=2))
    return stack


def status(data_dir: str | os.PathLike[str]) -> Stack | None:
    """The recorded stack if its mlflow server still answers, else None."""
    path = _record(Path(data_dir).expanduser().resolve())
    if not path.is_file():
        return None
    stack = Stack(**json.loads(path.read_text()))
    try:
        with urllib.request.urlopen(f"{stack.tracking_uri}/health", timeout=2):
            return stack
    except OSError:
        return None


def stop_postgres(root: Path) -> None:
    pg = root / "pg"
    if (pg / "postmaster.pid").is_file():
        _run(_as_pg_user([_binary("pg_ctl"), "-D", str(pg), "-m", "fast", "-w", "stop"]), "pg_ctl stop")


def _kill_group(pid: int, grace: float = 10) -> None:
    """SIGTERM the process group ``pid`` leads (the server and its workers), SIGKILL after ``grace``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is this process's exited child: a zombie still counts as a member of
    its process group, so a stop from the process that started the server would wait out the grace."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (``xstilts server stop`` from another shell): init reaps it
        pass


def stop(data_dir: str | os.PathLike[str]) -> bool:
    """Stop the mlflow server and PostgreSQL of ``data_dir``; False if nothing was recorded there."""
    root = Path(data_dir).expanduser().resolve()
    path = _record(root)
    if not path.is_file():
        if (root / "pg" / "postmaster.pid").is_file():
            stop_postgres(root)
            return True
        return False
    stack = Stack(**json.loads(path.read_text()))
    if stack.mlflow_pid:
        _kill_group(stack.mlflow_pid)
    stop_postgres(root)
    path.unlink()
    return True
