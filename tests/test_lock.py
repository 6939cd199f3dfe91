"""constraints.txt is the lock: every dependency of pyproject.toml (extras too) pinned exactly.

A dependency added to pyproject.toml without rerunning scripts/lock.sh fails here, so the
README's install commands, .ci/run and conda.yaml never resolve versions on their own.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_every_dependency_and_extra_is_pinned_in_the_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for extra in project.get("optional-dependencies", {}).values() for r in extra}
    lines = [ln.strip() for ln in (ROOT / "constraints.txt").read_text().splitlines()]
    pins = dict(ln.lower().replace("_", "-").split("==", 1) for ln in lines if ln and not ln.startswith("#"))
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", v) for v in pins.values()), "only exact pins in the lock"
    missing = sorted(wanted - set(pins))
    assert not missing, f"not in constraints.txt (rerun scripts/lock.sh): {missing}"
    assert pins["torch"] == "2.13.0"  # the CPU build here (see scripts/lock.sh)
    assert len(pins) > len(wanted)  # transitive dependencies are pinned too
    assert "-c constraints.txt" in (ROOT / ".ci" / "run").read_text()
