"""Keep third-party progress bars and known-harmless warnings out of xstilts' output.

A grid loads and downloads dozens of models; every load drew a "Loading weights"
bar (transformers), every download a "Downloading artifacts" bar (MLflow), and
each registered model MLflow's advice to add type hints to ``predict``. Those
lines buried the one line per job that says how the grid is doing. Each setting
is a default: a variable the user set already wins (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true``
brings the bars back). Real warnings keep showing: only the messages listed in
:data:`HARMLESS` are filtered, each with the reason it is harmless here.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable, MutableMapping

#: Environment defaults that switch third-party progress bars off.
QUIET_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",   # "Downloading artifacts" on every model fetch
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",               # transformers' "Loading weights" follows the hub's switch
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",          # datasets' map/filter/download bars
}

#: (message regex, category, why it is harmless here)
HARMLESS = (
    (r".*Add type hints to the `predict` method", UserWarning,
     "xstilts' pyfuncs validate their inputs themselves (task families' serving schema)"),
)


def quiet_third_party(environ: MutableMapping[str, str]) -> None:
    """Set :data:`QUIET_ENV` defaults in ``environ`` and filter the :data:`HARMLESS` warnings.

    Call before transformers, datasets or huggingface_hub are imported: they read
    their switches at import time.
    """
    for key, value in QUIET_ENV.items():
        environ.setdefault(key, value)
    for message, category, _why in HARMLESS:
        warnings.filterwarnings("ignore", message=message, category=category)
    if not getattr(warnings.showwarning, "xstilts_quiet", False):
        # MLflow's log_model runs under its own `simplefilter("once", UserWarning)`, which goes
        # in front of the filter above; what is shown still passes through showwarning
        warnings.showwarning = drop_harmless(warnings.showwarning)


def is_harmless(message: Warning | str, category: type[Warning]) -> bool:
    return any(issubclass(category, c) and re.match(m, str(message), re.IGNORECASE) for m, c, _ in HARMLESS)


def drop_harmless(show: Callable) -> Callable:
    """``warnings.showwarning`` that drops the :data:`HARMLESS` warnings and shows the rest with ``show``."""
    def showwarning(message, category, filename, lineno, file=None, line=None):
        if not is_harmless(message, category):
            show(message, category, filename, lineno, file, line)

    showwarning.xstilts_quiet = True
    return showwarning
