"""Claims: so that two processes on one tracking store never run the same job.

A claim is a row ``(key, owner, run_id, heartbeat)`` in a small SQL table. It is
taken by an ``INSERT`` (the primary key makes that atomic: of two processes that
try at once, exactly one succeeds), kept alive by a heartbeat thread that rewrites
``heartbeat`` every ``timeout / 6`` seconds, and released by deleting the row once
the job's result is recorded in MLflow. A claim whose heartbeat is older than
``timeout`` belongs to an owner that is gone (SIGKILL, a lost machine): it is taken
over by a compare-and-set ``UPDATE ... WHERE owner = old AND heartbeat = old``, so
two processes that both see it stale cannot both win, and a live claim (whose
heartbeat keeps moving) is never taken. A claim whose owner ran on this machine (the
same kernel boot and PID namespace, recorded in the owner id) and whose process has
exited is stale at once: a rerun after a SIGKILL or an out-of-memory kill resumes
without waiting out the timeout. Where the owner's process cannot be seen (another
machine or container, a reused pid), only the heartbeat decides.

Why a SQL table and not MLflow tags: MLflow has no compare-and-set, so "search for
a running attempt, then start one" races between processes. The table lives
beside the tracking store: in the same database when the tracking URI is one
(PostgreSQL, MySQL), in ``<name>-claims.db`` next to a SQLite store (a separate
file, so claim heartbeats never wait on MLflow's write lock), or wherever
``XSTILTS_CLAIMS_URL`` points (needed with an HTTP tracking server).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from xstilts.errors import XstiltsError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 120.0
_META = sa.MetaData()
CLAIMS = sa.Table(
    "xstilts_claims", _META,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("heartbeat", sa.Float, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)


def new_owner_id() -> str:
    """Host, process, a random part (unique even across containers with equal pids) and, where
    readable, the kernel boot and PID namespace the pid belongs to (:func:`owner_is_gone`)."""
    kernel = _kernel_id()
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}" + (f":{kernel}" if kernel else "")


def _kernel_id() -> str:
    """This kernel boot and PID namespace: the processes that share it see one another's pids
    (containers on one machine share the boot but not, by default, the namespace)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def owner_is_gone(owner: str) -> bool:
    """True when ``owner`` (an id of :func:`new_owner_id`) ran under this kernel boot and PID
    namespace and its process has exited or is a zombie. False whenever that cannot be known:
    other ids, another machine or container, or a pid that is alive (even if reused)."""
    parts = owner.split(":")
    if len(parts) != 4 or not parts[1].isdigit() or not parts[3] or parts[3] != _kernel_id():
        return False
    pid = int(parts[1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    try:  # a killed child its parent has not reaped yet holds nothing
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def claims_url_for(tracking_uri: str) -> str:
    """Where the claims table lives for a tracking URI (see the module docstring)."""
    explicit = os.environ.get("XSTILTS_CLAIMS_URL")
    if explicit:
        return explicit
    if tracking_uri.startswith("sqlite:///"):
        path = tracking_uri[len("sqlite:///"):]
        stem = path[:-3] if path.endswith(".db") else path
        return f"sqlite:///{stem}-claims.db"
    if tracking_uri.startswith(("postgresql", "mysql", "mssql")):
        return tracking_uri
    raise XstiltsError(f"tracking URI {tracking_uri!r} is not a database, so job claims need one: set "
                       "XSTILTS_CLAIMS_URL to a database URL (e.g. the PostgreSQL behind the MLflow server)")


@dataclass
class Claim:
    """A held claim; ``stale_run_id`` is the MLflow run of the owner it was taken from."""

    key: str
    owner: str
    stale_run_id: str | None = None
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)


class ClaimStore:
    """Claims on job keys in one SQL database (see the module docstring)."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_S, owner: str | None = None) -> None:
        self.url = url
        self.timeout = float(timeout)
        self.owner = owner or new_owner_id()
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        try:
            self.engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
            _META.create_all(self.engine, checkfirst=True)
        except sa.exc.SQLAlchemyError as exc:
            raise XstiltsError(f"job claims database {url!r} is unreachable: {exc.__class__.__name__}: "
                               f"{str(exc).splitlines()[0]}") from None

    # -- taking and giving back -----------------------------------------------------
    def try_claim(self, key: str) -> Claim | None:
        """The claim on ``key``, or None while another live owner holds it."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(CLAIMS.insert().values(key=key, owner=self.owner, run_id=None, heartbeat=now,
                                                    created=now))
            return self._start(Claim(key, self.owner))
        except sa.exc.IntegrityError:
            return self._take_over_if_stale(key)

    def _take_over_if_stale(self, key: str) -> Claim | None:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(CLAIMS).where(CLAIMS.c.key == key)).first()
        if row is None:  # released between our insert and this read: try again
            return self.try_claim(key)
        if row.owner == self.owner:
            return None
        gone = owner_is_gone(row.owner)
        if not gone and time.time() - row.heartbeat < self.timeout:
            return None
        now = time.time()
        with self.engine.begin() as conn:
            won = conn.execute(CLAIMS.update().where(
                (CLAIMS.c.key == key) & (CLAIMS.c.owner == row.owner) & (CLAIMS.c.heartbeat == row.heartbeat)
            ).values(owner=self.owner, run_id=None, heartbeat=now, created=now)).rowcount == 1
        if not won:
            return None
        why = "its process has exited" if gone else f"no heartbeat for {now - row.heartbeat:.0f} s"
        log.warning("job %s: took over the claim of %s (%s)", key, row.owner, why)
        return self._start(Claim(key, self.owner, stale_run_id=row.run_id))

    def set_run(self, claim: Claim, run_id: str) -> None:
        """Record the MLflow run working on ``claim``, so a taker-over can mark it FAILED."""
        with self.engine.begin() as conn:
            conn.execute(CLAIMS.update().where((CLAIMS.c.key == claim.key) & (CLAIMS.c.owner == claim.owner))
                         .values(run_id=run_id))

    def release(self, claim: Claim) -> None:
        claim._stop.set()
        if claim._thread is not None:
            claim._thread.join(timeout=10)
        with self.engine.begin() as conn:
            conn.execute(CLAIMS.delete().where((CLAIMS.c.key == claim.key) & (CLAIMS.c.owner == claim.owner)))

    def holder(self, key: str) -> str | None:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(CLAIMS.c.owner).where(CLAIMS.c.key == key)).first()
        return None if row is None else row.owner

    # -- heartbeat --------------------------------------------------------------------
    def _start(self, claim: Claim) -> Claim:
        claim._thread = threading.Thread(target=self._beat, args=(claim,), name=f"claim-{claim.key[:12]}",
                                         daemon=True)
        claim._thread.start()
        return claim

    def _beat(self, claim: Claim) -> None:
        interval = max(0.2, self.timeout / 6)
        while not claim._stop.wait(interval):
            try:
                with self.engine.begin() as conn:
                    kept = conn.execute(CLAIMS.update().where(
                        (CLAIMS.c.key == claim.key) & (CLAIMS.c.owner == claim.owner)
                    ).values(heartbeat=time.time())).rowcount == 1
            except sa.exc.SQLAlchemyError as exc:  # a blip: the next beat tries again
                log.warning("claim %s: heartbeat failed (%s)", claim.key, exc.__class__.__name__)
                continue
            if not kept:
                claim.lost = True
                log.error("claim %s was taken over by another process (this one stalled for > %.0f s)",
                          claim.key, self.timeout)
                return
