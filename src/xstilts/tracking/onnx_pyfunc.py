"""The MLflow face of an exported ONNX bundle (``xstilts-serve-TASK``): ONNX Runtime, no PyTorch model.

Logged as code (:mod:`xstilts.tracking.onnx_pyfunc_code`), so ``mlflow models serve -m
models:/xstilts-serve-panx@champion --env-manager local`` serves it without unpickling
anything; rows are answered as :meth:`xstilts.export.runtime.ServedModel.predict` answers them.
"""
from __future__ import annotations

from typing import Any

import mlflow.pyfunc

BUNDLE_KEY = "xstilts_export"


class XstiltsOnnxPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from xstilts.export.runtime import ServedModel

        self.served = ServedModel(context.artifacts[BUNDLE_KEY])

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        """One response per input row (the family's serving fields; see the model's signature)."""
        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        rows = [{k: _plain(v) for k, v in r.items() if not _missing(v)} for r in rows]
        return self.served.predict(rows)


def _missing(value) -> bool:
    try:
        return value is None or (isinstance(value, float) and value != value)
    except TypeError:
        return False


def _plain(value):
    """numpy arrays from array columns -> lists."""
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, str) else value


def save_onnx_pyfunc(path, bundle_dir, *, signature=None, input_example=None) -> None:
    from pathlib import Path

    code = Path(__file__).with_name("onnx_pyfunc_code.py")
    mlflow.pyfunc.save_model(str(path), python_model=str(code), artifacts={BUNDLE_KEY: str(bundle_dir)},
                             signature=signature, input_example=input_example,
                             pip_requirements=["xstilts", "onnxruntime", "transformers"])
