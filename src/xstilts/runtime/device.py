"""Where training and evaluation run: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

An execution setting like the thread count: it changes where the arithmetic happens,
not the study, so it is never part of a ``run_key``, a grid hash or an evaluation key
(the device used is recorded on the run instead). ``auto`` is the GPU when torch sees
one, else the CPU.

Precision follows the device. On the CPU nothing changes: bf16 where the CPU has native
bf16 matmuls (``runtime.cpu``), trained as the config's ``bf16_mode`` says. On a GPU,
bf16 autocast where the GPU supports bf16, else fp32: autocast is the standard GPU
recipe (tensor cores make its casts cheap), while the bf16-weights scheme of
``training.master_weights`` was measured as a CPU speed-up only.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from xstilts.errors import XstiltsError

log = logging.getLogger(__name__)

DEVICE_HELP = ("Where to train/evaluate: auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N. "
               "An execution setting: no run_key or evaluation key includes it.")
_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_setting(value: str, setting: str = "device") -> str:
    """``value`` if it has one of the accepted forms (no GPU needed yet), else a one-line error."""
    if not isinstance(value, str) or not _PATTERN.match(value):
        raise XstiltsError(f"{setting}: {value!r} is not a device; valid: auto, cpu, cuda, cuda:N")
    return value


def resolve_device(value: str | None, setting: str = "device"):
    """The ``torch.device`` that ``value`` names here; ``cuda`` without a usable GPU is an error
    naming ``setting`` (raised before any model is built or trained)."""
    import torch

    value = check_device_setting(value or "auto", setting)
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(value)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise XstiltsError(f"{setting}: {value!r} asks for a CUDA GPU, but torch sees none here "
                               f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                               f"set it to auto or cpu, or install a CUDA build of torch")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise XstiltsError(f"{setting}: {value!r}, but this machine has {count} CUDA device(s) "
                               f"(cuda:0..cuda:{count - 1})")
    return device


@dataclass(frozen=True)
class Precision:
    """How a training run computes: ``bf16`` and, when it is on, ``bf16_mode`` (weights or autocast)."""

    bf16: bool
    bf16_mode: str

    def describe(self) -> str:
        return f"bf16 ({self.bf16_mode})" if self.bf16 else "fp32"


def training_precision(device, bf16: bool | None, bf16_mode: str) -> Precision:
    """The precision training uses on ``device`` for the config's ``bf16`` / ``bf16_mode``.

    CPU: exactly as before devices existed. CUDA: autocast in bf16 where the GPU has it
    (``bf16: false`` keeps fp32), else fp32 with a warning when bf16 was asked for.
    """
    if device.type != "cuda":
        from xstilts.runtime.cpu import resolve_bf16

        return Precision(resolve_bf16(bf16), bf16_mode)
    import torch

    supported = torch.cuda.is_bf16_supported()
    if bf16 and not supported:
        log.warning("training.bf16 is true, but this GPU has no bf16 support: training in fp32")
    return Precision(bf16 is not False and supported, "autocast")


def autocast(device, enabled: bool):
    """bf16 autocast on ``device``'s type (``cpu`` or ``cuda``), or a no-op context."""
    import contextlib

    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def to_device(batch: dict, device) -> dict:
    """``batch``'s tensors on ``device``; on the CPU the batch itself (nothing copied)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if hasattr(v, "to") else v for k, v in batch.items()}


def model_device(model):
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    import torch

    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def to_cpu(obj):
    """``obj`` (tensors, possibly nested in dicts, lists, tuples and dataclass outputs) on the CPU.

    CPU tensors are returned as they are, so the CPU path stays bit-identical."""
    import dataclasses

    import torch

    if isinstance(obj, torch.Tensor):
        return obj if obj.device.type == "cpu" else obj.cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: to_cpu(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    return obj


def describe_device(device) -> str:
    """``cpu``, or ``cuda:N (GPU name)``: what a run records as its device."""
    if device.type != "cuda":
        return str(device)
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
