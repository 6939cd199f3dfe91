"""Resumable checkpoints: trainable weights, optimizer, scheduler, RNG and step.

Written atomically (temp file + rename): a run killed at any moment leaves either
the previous complete checkpoint or the new one, never a torn file. Device-independent:
tensors are written from the CPU and read onto it (``map_location``), so a checkpoint a
GPU run left resumes on any machine; ``load_state_dict`` puts them on the model's device.
A GPU run also keeps the GPU's RNG state (dropout masks there come from it), so its
resume stays exact.
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xstilts.runtime.device import to_cpu


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """The random generators' states; with a CUDA ``device`` that device's generator too."""
    state = {"torch": torch.random.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    torch.random.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and device is not None and device.type == "cuda":
        # a CPU resume of a GPU run has no GPU generator to restore (its masks differ anyway)
        torch.cuda.set_rng_state(state["cuda"], device)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CheckpointDir:
    """``last.pt`` (resume point) and ``best.pt`` (selected weights) of one run."""

    def __init__(self, path: str | os.PathLike[str], run_key: str) -> None:
        self.path = Path(path)
        self.run_key = run_key

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def save(self, *, weights: dict[str, torch.Tensor], optimizer, scheduler, step: int, history: list,
             best: dict | None, device: torch.device | None = None) -> None:
        """``weights``: the trainable parameters in fp32 by name (:func:`trainable_state`);
        ``device``: where training runs (a CUDA device's RNG state is kept too)."""
        atomic_torch_save({"run_key": self.run_key, "step": step, "model": to_cpu(weights),
                           "optimizer": to_cpu(optimizer.state_dict()), "scheduler": scheduler.state_dict(),
                           "rng": rng_state(device), "history": history, "best": best}, self.last)

    def save_best(self, weights: dict[str, torch.Tensor]) -> None:
        atomic_torch_save({"run_key": self.run_key, "model": to_cpu(weights)}, self.best)

    def load_last(self) -> dict | None:
        if not self.last.is_file():
            return None
        state = torch.load(self.last, weights_only=False, map_location="cpu")
        return state if state.get("run_key") == self.run_key else None

    def load_best_into(self, model) -> bool:
        if not self.best.is_file():
            return False
        state = torch.load(self.best, weights_only=False, map_location="cpu")
        if state.get("run_key") != self.run_key:
            return False
        model.load_state_dict(state["model"], strict=False)
        return True

    def remove(self) -> None:
        for p in (self.last, self.best):
            p.unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:
            pass
