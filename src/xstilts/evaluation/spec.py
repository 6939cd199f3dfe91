"""What one evaluation computes, and its complete key.

Two evaluations with the same key produce the same scores, so a finished one is
found in the tracking store and reused: the key covers the model version, the
task, split and languages, the example cap, the input lengths, the precision,
the retrieval layer, the batching (in bf16, batch shapes can move the last
digit) and :data:`EVAL_VERSION`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

#: Bump when the evaluation code changes what a score is.
#: 2: Tatoeba's ``accuracy`` is XTREME's direction (English queries, en -> xx).
EVAL_VERSION = 2


@dataclass(frozen=True)
class EvalSpec:
    task: str
    split: str
    langs: tuple[str, ...]
    max_examples: int | None = None
    max_length: int | None = None    # None: the model's training max_length, else the task's default
    doc_stride: int | None = None
    bf16: bool = False               # resolved: the CPU's answer is part of the key
    layer: int | None = None         # retrieval; None: the model's default layer
    batch_size: int = 64
    max_tokens: int | None = 1024
    bucc_threshold_policy: str = "dev_tuned"
    encoder_layers: int | None = None  # a bare encoder cut to this many layers (small test grids)

    def key(self, model_ref: str) -> str:
        from xstilts.tasks.declared import declaration_fingerprint

        # A declared dataset's content is part of the key (absent for built-in tasks).
        dataset = declaration_fingerprint(self.task)
        blob = json.dumps({"model": str(model_ref), "eval_version": EVAL_VERSION, **asdict(self),
                           **({"dataset": dataset} if dataset else {})}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
