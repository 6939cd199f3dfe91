"""Metrics with XTREME's conventions; look them up by name with :func:`get_metric`."""
from xstilts.evaluation.metrics.aggregate import (
    XTREME_GROUPS,
    TaskSummary,
    group_scores,
    headline_score,
    language_average,
    summarize_task,
)
from xstilts.evaluation.metrics.bucc import (
    BuccResult,
    ThresholdPolicy,
    evaluate_bucc,
    mine_candidates,
    mine_pairs,
    read_bucc_gold,
)
from xstilts.evaluation.metrics.registry import MetricSpec, get_metric, metric_names, register_metric
from xstilts.evaluation.metrics.retrieval import TatoebaResult, nearest_neighbor, tatoeba_accuracy, top_k_cosine
from xstilts.evaluation.metrics.squad import references_from_examples
from xstilts.evaluation.metrics.validation import MetricInputError

__all__ = [
    "XTREME_GROUPS", "TaskSummary", "group_scores", "headline_score", "language_average",
    "summarize_task", "BuccResult", "ThresholdPolicy", "evaluate_bucc", "mine_candidates",
    "mine_pairs", "read_bucc_gold", "MetricSpec", "get_metric", "metric_names", "register_metric",
    "TatoebaResult", "nearest_neighbor", "tatoeba_accuracy", "top_k_cosine",
    "references_from_examples", "MetricInputError",
]
