"""Where xstilts reads vendored data and writes caches.

Every location can be overridden by an environment variable so that CI, tests and
users with shared storage can redirect them.
"""
from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def repo_root() -> Path:
    """The checkout this package was installed from (editable installs)."""
    return _REPO_ROOT


def data_root() -> Path:
    """The vendored real-data subset (``data/`` in the repo); ``XSTILTS_DATA_DIR`` overrides."""
    env = os.environ.get("XSTILTS_DATA_DIR")
    return Path(env).expanduser() if env else _REPO_ROOT / "data"


def cache_root() -> Path:
    """User cache for converted weights and tokenized features; ``XSTILTS_CACHE`` overrides."""
    env = os.environ.get("XSTILTS_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "xstilts"


def checkpoint_root() -> Path:
    """Resumable training checkpoints; ``XSTILTS_CHECKPOINT_DIR`` overrides (default: under the cache)."""
    env = os.environ.get("XSTILTS_CHECKPOINT_DIR")
    return Path(env).expanduser() if env else cache_root() / "checkpoints"
