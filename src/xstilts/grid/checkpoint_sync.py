"""Resumable checkpoints kept in the artifact store, so a retry on another worker resumes.

Training writes its checkpoint (``last.pt``, ``best.pt``) to a local folder
(:class:`xstilts.training.checkpoint.CheckpointDir`). On a cluster that folder is
on the worker's disk and dies with the worker, so a distributed executor gives
its jobs an :class:`ArtifactCheckpoints`: before training, the newest checkpoint
an earlier unfinished attempt at the same ``run_key`` uploaded is downloaded into
the local folder (training then resumes from it as from any local checkpoint);
while training, a thread uploads each new checkpoint to the attempt's own MLflow
run (``checkpoint/``) and tags the run ``checkpoint_step``.

Why a watcher thread and not a hook in the training loop: the loop stays ignorant
of where checkpoints are kept. Each new ``last.pt`` is copied to a snapshot first
(the loop replaces the file atomically, so the copy is one complete checkpoint),
and ``best.pt`` is uploaded before ``last.pt``, then the tag, so a tagged step
always has its files. A worker killed between writing a checkpoint and uploading
it loses only that checkpoint: the retry resumes from the one before.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)
ARTIFACT_DIR = "checkpoint"


class ArtifactCheckpoints:
    """Restore a job's checkpoint from the artifact store and mirror new ones to it."""

    def __init__(self, store, *, poll_seconds: float = 0.5) -> None:
        self.store = store
        self.poll_seconds = poll_seconds

    def restore(self, run_key: str, local: Path, run) -> int | None:
        """Put the newest checkpoint an earlier attempt uploaded into ``local``; its step.
        ``run`` is the current attempt's :class:`~xstilts.tracking.store.JobRun`."""
        found = self.store.checkpoint_attempt(run_key, exclude=run.run_id)
        if found is None:
            return None
        run_id, _ = found
        local.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="xstilts-ckpt-dl-") as tmp:
            got = self.store.download_run_artifacts(run_id, ARTIFACT_DIR, tmp)
            for name in ("best.pt", "last.pt"):  # last.pt last: it is what marks a checkpoint present
                if (got / name).is_file():
                    shutil.move(str(got / name), str(local / name))
        import torch

        step = int(torch.load(local / "last.pt", weights_only=False, mmap=True)["step"])
        log.info("job %s: resuming from step %d, uploaded by attempt %s", run_key, step, run_id)
        run.set_tags({"checkpoint_restored_from": run_id, "checkpoint_restored_step": str(step)})
        return step

    @contextlib.contextmanager
    def attach(self, run, local: Path, run_key: str):
        """Restore into ``local``, then upload every new checkpoint written there until exit."""
        self.restore(run_key, local, run)
        stop = threading.Event()
        thread = threading.Thread(target=self._mirror, args=(run, local, stop), daemon=True,
                                  name=f"ckpt-sync-{run_key[:8]}")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=60)

    def _mirror(self, run, local: Path, stop: threading.Event) -> None:
        seen = _stamp(local / "last.pt")  # a restored checkpoint is in the store already
        while not stop.wait(self.poll_seconds):
            stamp = _stamp(local / "last.pt")
            if stamp is None or stamp == seen:
                continue
            seen = stamp
            try:
                self._upload(run, local)
            except Exception as exc:  # noqa: BLE001 - a failed upload only costs resumability
                log.warning("checkpoint upload failed (%s: %s); the next one tries again", type(exc).__name__, exc)

    def _upload(self, run, local: Path) -> None:
        import torch

        with tempfile.TemporaryDirectory(prefix="xstilts-ckpt-up-") as tmp:
            snap = Path(tmp) / ARTIFACT_DIR
            snap.mkdir()
            for name in ("best.pt", "last.pt"):
                if (local / name).is_file():
                    shutil.copyfile(local / name, snap / name)
            step = int(torch.load(snap / "last.pt", weights_only=False, mmap=True)["step"])
            if (snap / "best.pt").is_file():
                run.log_artifact(snap / "best.pt", ARTIFACT_DIR)
            run.log_artifact(snap / "last.pt", ARTIFACT_DIR)
        run.set_tags({"checkpoint_step": str(step)})
        log.info("checkpoint of step %d uploaded to run %s", step, run.run_id)


def _stamp(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino
