"""Checks that run before any job is submitted: one clear error line each, no waiting.

Without them an unreachable MLflow server costs minutes of HTTP retries, an
unreachable PostgreSQL a traceback from deep inside MLflow, and a Ray address with
no cluster behind it hangs ``ray.init`` for over a minute. Each check answers
within a few seconds with an :class:`~xstilts.errors.XstiltsError` naming what it
tried to reach.
"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

from xstilts.errors import XstiltsError

TIMEOUT_S = 5.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def check_tracking_uri(uri: str) -> None:
    """An HTTP(S) tracking server answers ``/health``; a database URI accepts a connection."""
    if uri.startswith(("http://", "https://")):
        import urllib.request

        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=TIMEOUT_S) as resp:
                if resp.status != 200:
                    raise XstiltsError(f"MLflow tracking server {uri} answered /health with HTTP {resp.status}")
        except OSError as exc:
            raise XstiltsError(f"MLflow tracking server {uri} is unreachable ({_first_line(exc)}); "
                               f"start it (xstilts server start) or fix MLFLOW_TRACKING_URI") from None
    elif uri.startswith(("postgresql", "mysql", "mssql")):
        check_database(uri, "MLflow tracking database")


def check_database(url: str, what: str) -> None:
    """``url`` (a SQLAlchemy URL) accepts a connection within :data:`TIMEOUT_S`."""
    import sqlalchemy as sa

    if url.startswith("sqlite"):
        return  # a local file: opening it would create it, and nothing can be unreachable
    args = {"connect_timeout": int(TIMEOUT_S)} if url.startswith("postgresql") else {}
    try:
        engine = sa.create_engine(url, connect_args=args)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any driver's error means the same to the user
        safe = sa.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url
        raise XstiltsError(f"{what} {safe} is unreachable ({_first_line(exc)})") from None


def check_ray_address(address: str | None) -> None:
    """A ``HOST:PORT`` or ``ray://HOST:PORT`` address has something listening (``auto``
    and no address are left to ``ray.init``, which fails fast when no cluster runs here)."""
    if not address or address in ("auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    if not parts.hostname or not parts.port:
        raise XstiltsError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_S):
            pass
    except OSError as exc:
        raise XstiltsError(f"no Ray cluster at {address} ({_first_line(exc)}); start one with "
                           f"`ray start --head` or fix --address") from None
