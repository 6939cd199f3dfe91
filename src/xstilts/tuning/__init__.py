"""Hyperparameter tuning with Optuna: per target task (or per condition), English dev only.

:mod:`~xstilts.tuning.space` (what may be tuned, validated), :mod:`~xstilts.tuning.config`
(the request and its study key), :mod:`~xstilts.tuning.study` (storage, objective, the loop),
:mod:`~xstilts.tuning.run` (one request end to end), :mod:`~xstilts.tuning.plots`.
MLflow is reached only through :class:`xstilts.tracking.store.RunStore`.
"""
