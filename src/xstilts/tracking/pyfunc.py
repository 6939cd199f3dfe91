"""The MLflow face of a trained model: a pyfunc wrapping an xstilts model directory.

Registered models are pyfuncs so that ``mlflow models serve`` and the later ONNX
export start from the same artifact. ``predict`` serves every task family through
its family object (``task.family.serve``), so a request is featurized, truncated
and decoded exactly as in evaluation; the request fields per family are
``task.family.serving`` (e.g. tagging: ``words`` or ``text``; span QA:
``question`` and ``context``; retrieval: ``text``, answered with its embedding).
"""
from __future__ import annotations

from typing import Any

import mlflow.pyfunc

ARTIFACT_KEY = "xstilts_model"


class XstiltsPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from xstilts.encoders.loading import load_tokenizer
        from xstilts.models.persist import load_model, read_manifest

        self.model_dir = context.artifacts[ARTIFACT_KEY]
        self.manifest = read_manifest(self.model_dir)
        self.model = load_model(self.model_dir).eval()
        self.tokenizer = load_tokenizer(self.manifest["base_model"])

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        """One response per input row; ``params["task"]`` picks the task (default: the model's first head).

        The head is chosen as evaluation chooses it (``resolve_head``: XQuAD runs on the
        ``squad`` head); the retrieval tasks use the encoder alone.
        """
        import torch

        from xstilts.evaluation.runner import resolve_head
        from xstilts.families import resolve_lengths
        from xstilts.tasks import get_task

        task = get_task((params or {}).get("task") or next(iter(self.model.head_specs)))
        head = resolve_head(self.model, task) if task.family.needs_head else None
        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        max_length, doc_stride = resolve_lengths(task, *self._trained_lengths())
        with torch.inference_mode():
            return task.family.serve(task, self.model, self.tokenizer, rows, head=head, max_length=max_length,
                                     doc_stride=doc_stride, base_model=str(self.manifest.get("base_model", "")))

    def _trained_lengths(self) -> tuple[int | None, int | None]:
        """The model's training ``max_length``/``doc_stride`` (its stored config), None where unknown."""
        training = (self.manifest.get("config") or {}).get("training") or {}
        return training.get("max_length"), training.get("doc_stride")
