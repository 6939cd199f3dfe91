"""The run store's claims and registry queries, on real SQLite stores (no training)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from xstilts.errors import XstiltsError
from xstilts.tracking.claims import ClaimStore, claims_url_for, new_owner_id, owner_is_gone


def _claims(tmp_path, timeout=1.0, owner=None) -> ClaimStore:
    return ClaimStore(f"sqlite:///{tmp_path / 'claims.db'}", timeout=timeout, owner=owner)


def test_one_claim_per_key_and_release_frees_it(tmp_path):
    a, b = _claims(tmp_path, owner="a"), _claims(tmp_path, owner="b")
    claim = a.try_claim("job-1")
    assert claim is not None and a.holder("job-1") == "a"
    assert b.try_claim("job-1") is None
    assert b.try_claim("job-2") is not None  # other keys are independent
    a.release(claim)
    assert a.holder("job-1") is None
    assert b.try_claim("job-1") is not None


def test_a_live_claim_is_never_taken_over(tmp_path):
    a, b = _claims(tmp_path, timeout=0.6, owner="a"), _claims(tmp_path, timeout=0.6, owner="b")
    claim = a.try_claim("job")
    deadline = time.monotonic() + 2.5  # four timeouts: the heartbeat keeps it fresh
    while time.monotonic() < deadline:
        assert b.try_claim("job") is None
        time.sleep(0.1)
    assert not claim.lost
    a.release(claim)


def test_a_stale_claim_is_taken_over_once_and_names_the_dead_run(tmp_path):
    dead = _claims(tmp_path, timeout=0.5, owner="dead")
    claim = dead.try_claim("job")
    dead.set_run(claim, "run-123")
    claim._stop.set()  # the owner stops beating, as after SIGKILL
    claim._thread.join()
    time.sleep(0.7)
    takers = [_claims(tmp_path, timeout=0.5, owner=f"t{i}") for i in range(4)]
    won, barrier = [], threading.Barrier(len(takers))

    def take(store):
        barrier.wait()
        got = store.try_claim("job")
        if got is not None:
            won.append(got)

    threads = [threading.Thread(target=take, args=(t,)) for t in takers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and won[0].stale_run_id == "run-123"
    assert takers[0].holder("job") == won[0].owner


HOLD = """
import sys, time
from xstilts.tracking.claims import ClaimStore
store = ClaimStore(sys.argv[1], timeout=600)
claim = store.try_claim("job")
store.set_run(claim, "run-killed")
print("held", flush=True)
time.sleep(600)
"""


def test_a_claim_of_a_killed_process_on_this_machine_is_taken_over_at_once(tmp_path, caplog):
    """The heartbeat timeout is 10 minutes; a rerun after SIGKILL must not wait for it."""
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rerun = ClaimStore(url, timeout=600)
        assert rerun.try_claim("job") is None  # its owner is alive: never taken
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        with caplog.at_level("WARNING", logger="xstilts.tracking.claims"):
            claim = rerun.try_claim("job")
    finally:
        holder.kill()
        holder.wait()
    assert claim is not None and claim.stale_run_id == "run-killed" and rerun.holder("job") == rerun.owner
    assert "its process has exited" in caplog.text
    rerun.release(claim)


def test_only_an_exited_process_of_this_kernel_and_pid_namespace_counts_as_gone():
    me = new_owner_id()
    host, pid, rand, kernel = me.split(":")
    assert pid == str(os.getpid()) and not owner_is_gone(me)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while not os.path.exists(f"/proc/{child.pid}/stat") or open(f"/proc/{child.pid}/stat").read().split()[2] != "Z":
        time.sleep(0.01)  # exited, not yet reaped: a zombie holds nothing
    assert owner_is_gone(f"{host}:{child.pid}:{rand}:{kernel}")
    child.wait()
    assert owner_is_gone(f"{host}:{child.pid}:{rand}:{kernel}")
    boot, ns = kernel.split("/")
    for other in (f"{boot}/{int(ns) + 1}", f"{'0' * len(boot)}/{ns}", ""):  # another container or machine
        assert not owner_is_gone(f"{host}:{child.pid}:{rand}:{other}")
    assert not owner_is_gone(f"{host}:{child.pid}:{rand}")  # an id written before kernels were recorded
    assert not owner_is_gone("dead") and not owner_is_gone(f"{host}:notapid:{rand}:{kernel}")


def test_claims_live_beside_the_tracking_store_or_where_told(monkeypatch):
    monkeypatch.delenv("XSTILTS_CLAIMS_URL", raising=False)
    assert claims_url_for("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow-claims.db"
    assert claims_url_for("postgresql://u@127.0.0.1/mlflow") == "postgresql://u@127.0.0.1/mlflow"
    with pytest.raises(XstiltsError, match="XSTILTS_CLAIMS_URL"):
        claims_url_for("http://127.0.0.1:5000")
    monkeypatch.setenv("XSTILTS_CLAIMS_URL", "sqlite:////tmp/c.db")
    assert claims_url_for("http://127.0.0.1:5000") == "sqlite:////tmp/c.db"


def test_unreachable_claims_database_is_one_clear_error(tmp_path):
    with pytest.raises(XstiltsError, match="unreachable"):
        ClaimStore(f"sqlite:///{tmp_path / 'missing-dir' / 'claims.db'}")


def test_run_once_reuses_done_work_and_runs_the_rest_once(tracking):
    from xstilts.tracking.store import RunStore

    store = RunStore.open("t")
    calls = []
    done: dict[str, str] = {}

    def work(claim):
        calls.append(claim.key)
        done[claim.key] = "result"
        return "result"

    assert store.run_once("k", lambda: done.get("k"), work) == "result"
    assert store.run_once("k", lambda: done.get("k"), work) == "result"
    assert calls == ["k"]
    held = store.claims.try_claim("busy")
    other = RunStore.open("t")
    other._claims = ClaimStore(store.claims.url, owner="other")
    assert other.run_once("busy", lambda: None, work) is None  # claimed by a live owner: ask later
    store.claims.release(held)


def test_job_run_is_failed_on_error_and_best_model_follows_the_dev_score(tracking, tmp_path):
    from xstilts.tracking.store import RunStore

    store = RunStore.open("t")
    with pytest.raises(RuntimeError):
        with store.job_run("boom", {"phase": "target"}) as run:
            raise RuntimeError("boom")
    assert store.client.get_run(run.run_id).info.status == "FAILED"
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "xstilts_model.json").write_text("{}")
    versions = {}
    for score in (61.0, 70.5, 64.0):
        with store.job_run(f"train-{score}", {"phase": "target"}) as run:
            run.log_metrics({"selected.dev_score": score})
            versions[score] = run.register(model_dir, name="xstilts-target-panx", tags={"run_key": str(score)})
    best = store.best_model("xstilts-target-panx")
    assert best.version == versions[70.5].version
    with pytest.raises(XstiltsError, match=r"alias champion not found.*`xstilts champion --task panx` sets it"):
        store.resolve_registered("models:/xstilts-target-panx@champion")  # before the alias is set: what to run
    assert not store.is_champion(best.uri)
    store.set_alias(best, "champion")
    assert store.resolve_registered("models:/xstilts-target-panx@champion").version == best.version
    assert store.is_champion(best.uri) and store.is_champion("models:/xstilts-target-panx@champion")
    assert not store.is_champion(versions[64.0].uri) and not store.is_champion(str(model_dir))
    with pytest.raises(XstiltsError, match=r"`xstilts export --model models:/xstilts-target-panx@champion "
                                           r"--quantize int8` sets it, after `xstilts champion --task panx`"):
        store.resolve_registered("models:/xstilts-serve-panx@champion-int8")
    assert store.find_model("xstilts-target-panx", "64.0").version == versions[64.0].version
