"""Which code produced a run: package version plus the git commit when run from a checkout."""
from __future__ import annotations

import functools
import subprocess

from xstilts import __version__
from xstilts.paths import repo_root


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    try:
        sha = subprocess.run(["git", "-C", str(repo_root()), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo_root()), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__
