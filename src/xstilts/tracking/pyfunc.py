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
        """Load the model where it is served: the base resolved on this machine (``default``
        through its ``XSTILTS_CACHE``), the tokenizer and training lengths from the model dir."""
        from xstilts.models.persist import load_for_inference

        self.model_dir = context.artifacts[ARTIFACT_KEY]
        self.model, self.tokenizer, self.manifest, self.base_model = load_for_inference(self.model_dir)
        self.max_length: int | None = self.manifest.get("max_length")
        self.doc_stride: int | None = self.manifest.get("doc_stride")

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
                                     doc_stride=doc_stride, base_model=str(self.base_model))

    def _trained_lengths(self) -> tuple[int | None, int | None]:
        """The model's training ``max_length``/``doc_stride`` (from its manifest), None where unknown."""
        return self.max_length, self.doc_stride


def save_pyfunc(path, model_dir) -> None:
    """Write an MLflow pyfunc model at ``path`` wrapping the xstilts ``model_dir``.

    Logged as code (:mod:`xstilts.tracking.pyfunc_code`), not as a cloudpickle of
    :class:`XstiltsPyfunc`: loading it never unpickles anything.
    """
    from pathlib import Path

    code = Path(__file__).with_name("pyfunc_code.py")
    mlflow.pyfunc.save_model(str(path), python_model=str(code), artifacts={ARTIFACT_KEY: str(model_dir)},
                             pip_requirements=["xstilts", "torch", "transformers", "safetensors"])
