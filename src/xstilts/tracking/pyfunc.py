"""The MLflow face of a trained model: a pyfunc wrapping an xstilts model directory.

Registered models are pyfuncs so that ``mlflow models serve`` and the later ONNX
export start from the same artifact. ``predict`` covers sentence(-pair)
classification and tagging; span QA and multiple choice are not wired for serving
yet and say so.
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
        import torch

        from xstilts.errors import XstiltsError
        from xstilts.tasks import get_task

        head = (params or {}).get("task") or next(iter(self.model.head_specs))
        task = get_task(head)
        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        with torch.inference_mode():
            if task.family == "sentence_classification":
                enc = self.tokenizer([r["text"] for r in rows],
                                     [r.get("text_pair") for r in rows] if rows and "text_pair" in rows[0] else None,
                                     truncation=True, max_length=256, padding=True, return_tensors="pt")
                logits = self.model(head, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}).logits
                return [task.labels[i] for i in logits.argmax(-1).tolist()]
            if task.family == "tagging":
                out = []
                for r in rows:
                    words = r.get("words") or str(r["text"]).split()
                    enc = self.tokenizer(list(words), is_split_into_words=True, truncation=True, max_length=512,
                                         return_tensors="pt")
                    logits = self.model(head, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}).logits[0]
                    seen, tags = set(), []
                    for pos, w in enumerate(enc.word_ids()):
                        if w is not None and w not in seen:
                            seen.add(w)
                            tags.append(task.labels[int(logits[pos].argmax())])
                    out.append(tags)
                return out
        raise XstiltsError(f"serving predictions for {task.family} tasks is not built yet")


def save_pyfunc(path, model_dir) -> None:
    """Write an MLflow pyfunc model at ``path`` wrapping the xstilts ``model_dir``.

    Logged as code (:mod:`xstilts.tracking.pyfunc_code`), not as a cloudpickle of
    :class:`XstiltsPyfunc`: loading it never unpickles anything.
    """
    from pathlib import Path

    code = Path(__file__).with_name("pyfunc_code.py")
    mlflow.pyfunc.save_model(str(path), python_model=str(code), artifacts={ARTIFACT_KEY: str(model_dir)},
                             pip_requirements=["xstilts", "torch", "transformers", "safetensors"])
