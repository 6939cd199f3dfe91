"""BUCC 2018 bitext mining: margin scoring, candidate mining, threshold, F1.

Follows XTREME's ``third_party/utils_retrieve.py`` (from LASER's ``bucc.py``,
Artetxe & Schwenk 2019, "Margin-based parallel corpus mining with multilingual
sentence embeddings") with XTREME's defaults: cosine similarity, ``k = 4``
neighbours, ``ratio`` margin, ``max`` retrieval:

* ``knn`` both ways: for each source the k most similar targets and the mean of
  those k similarities (``fwd_mean``); likewise for each target (``bwd_mean``);
* margin score of a pair: ``cos(x, y) / ((fwd_mean[x] + bwd_mean[y]) / 2)``;
* each source keeps its best-scoring candidate among its k neighbours, each
  target likewise; all these pairs are sorted by score and taken greedily so
  that no source or target is used twice, keeping scores above 0;
* identical sentences are embedded once (``text_load_unify``), and a sentence
  whose text occurs more than once in its file cannot be mined, because its id
  is ambiguous (``read_sent2id`` drops it);
* threshold: the F1-optimal cut on a split with gold pairs (``bucc_optimize``),
  mined pairs with ``score >= threshold`` are predicted (``bucc_extract``);
* precision, recall and F1 of the predicted pairs against the gold pairs
  (``bucc_f1`` in ``evaluate.py``), in percent.

Threshold policy (recorded with every result): ``same_split`` tunes the
threshold on the very split it scores (what XTREME reports for dev: an oracle);
``dev_tuned`` tunes on one split and applies it to another (what XTREME does
for test, and the honest number when both splits have gold pairs).
"""
from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xstilts.errors import DataFormatError, UnknownNameError
from xstilts.evaluation.metrics.retrieval import DEFAULT_MAX_CHUNK_BYTES, l2_normalized, top_k_cosine
from xstilts.evaluation.metrics.validation import MetricInputError

DEFAULT_NEIGHBORHOOD = 4

Pair = tuple[str, str]


class ThresholdPolicy(str, enum.Enum):
    """How the BUCC score threshold is chosen; logged beside the F1."""

    DEV_TUNED = "dev_tuned"
    SAME_SPLIT = "same_split"

    def __str__(self) -> str:  # log "dev_tuned", not "ThresholdPolicy.DEV_TUNED"
        return self.value


@dataclass(frozen=True, eq=False)
class MinedPairs:
    """One-to-one mined (source row, target row) pairs with their margin scores, best first."""

    source: NDArray[np.int64]
    target: NDArray[np.int64]
    score: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.score.shape[0])


def margin_scores(similarities: NDArray[np.floating], query_mean: NDArray[np.floating],
                  neighbor_mean: NDArray[np.floating]) -> NDArray[np.float64]:
    """Ratio margin ``cos / ((query_mean + neighbor_mean) / 2)`` (XTREME ``score``).

    Args:
        similarities: cosine of each query with each of its candidates, (n, k).
        query_mean: mean k-NN similarity of each query, (n,).
        neighbor_mean: mean k-NN similarity of each candidate, (n, k).
    """
    sims = similarities.astype(np.float64)
    return sims / ((query_mean.astype(np.float64)[:, None] + neighbor_mean.astype(np.float64)) / 2)


def mine_pairs(source_embeddings: ArrayLike, target_embeddings: ArrayLike, *,
               k: int = DEFAULT_NEIGHBORHOOD, min_score: float = 0.0,
               max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES) -> MinedPairs:
    """Margin-based ``max`` mining of one-to-one pairs (XTREME ``mine_bitext``).

    Args:
        source_embeddings: (n_src, dim) sentence embeddings.
        target_embeddings: (n_tgt, dim) sentence embeddings.
        k: neighbourhood size for the margin (capped at the other side's size).
        min_score: pairs must score strictly above this (XTREME writes > 0).
        max_chunk_bytes: memory bound of one block of the similarity search.
    """
    x = l2_normalized(source_embeddings, name="source embeddings")
    y = l2_normalized(target_embeddings, name="target embeddings")
    if x.shape[1] != y.shape[1]:
        raise MetricInputError(
            f"embedding sizes differ: source has {x.shape[1]}, target has {y.shape[1]}")
    x2y_sim, x2y_ind = top_k_cosine(x, y, k, max_chunk_bytes=max_chunk_bytes, normalized=True)
    y2x_sim, y2x_ind = top_k_cosine(y, x, k, max_chunk_bytes=max_chunk_bytes, normalized=True)
    # float32 means, as XTREME computes them from faiss' float32 scores
    x2y_mean = x2y_sim.mean(axis=1)
    y2x_mean = y2x_sim.mean(axis=1)
    fwd = margin_scores(x2y_sim, x2y_mean, y2x_mean[x2y_ind])
    bwd = margin_scores(y2x_sim, y2x_mean, x2y_mean[y2x_ind])
    src_rows, tgt_rows = np.arange(x.shape[0]), np.arange(y.shape[0])
    fwd_col, bwd_col = fwd.argmax(axis=1), bwd.argmax(axis=1)
    fwd_best, bwd_best = x2y_ind[src_rows, fwd_col], y2x_ind[tgt_rows, bwd_col]
    sources = np.concatenate((src_rows, bwd_best))
    targets = np.concatenate((fwd_best, tgt_rows))
    scores = np.concatenate((fwd[src_rows, fwd_col], bwd[tgt_rows, bwd_col]))
    seen_src: set[int] = set()
    seen_tgt: set[int] = set()
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        s, t = int(sources[i]), int(targets[i])
        if s in seen_src or t in seen_tgt:
            continue
        seen_src.add(s)
        seen_tgt.add(t)
        if scores[i] > min_score:
            keep.append(int(i))
    idx = np.asarray(keep, dtype=np.int64)
    return MinedPairs(source=sources[idx], target=targets[idx], score=scores[idx])


def _unique_rows(texts: Sequence[str]) -> tuple[list[int], set[str]]:
    """First row of each distinct text, and the texts that occur more than once."""
    first: dict[str, int] = {}
    repeated: set[str] = set()
    for row, text in enumerate(texts):
        if text in first:
            repeated.add(text)
        else:
            first[text] = row
    return list(first.values()), repeated


def _check_side(ids: Sequence[str], embeddings: ArrayLike, texts: Sequence[str] | None,
                what: str) -> NDArray[np.float32]:
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(ids):
        raise MetricInputError(
            f"{what}: {len(ids)} ids but embeddings of shape {emb.shape}")
    if texts is not None and len(texts) != len(ids):
        raise MetricInputError(f"{what}: {len(ids)} ids but {len(texts)} texts")
    if len(set(ids)) != len(ids):
        raise MetricInputError(f"{what}: sentence ids are not unique")
    return emb


def mine_candidates(source_ids: Sequence[str], source_embeddings: ArrayLike,
                    target_ids: Sequence[str], target_embeddings: ArrayLike, *,
                    source_texts: Sequence[str] | None = None,
                    target_texts: Sequence[str] | None = None,
                    k: int = DEFAULT_NEIGHBORHOOD,
                    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES) -> dict[Pair, float]:
    """Mined ``(source id, target id) -> margin score``, as XTREME's candidate file.

    With texts, identical sentences are mined as one (first occurrence's
    embedding) and pairs involving a repeated text are dropped, as XTREME does.
    """
    src = _check_side(source_ids, source_embeddings, source_texts, "source")
    tgt = _check_side(target_ids, target_embeddings, target_texts, "target")
    src_rows, src_repeated = (_unique_rows(source_texts) if source_texts is not None
                              else (list(range(len(source_ids))), set()))
    tgt_rows, tgt_repeated = (_unique_rows(target_texts) if target_texts is not None
                              else (list(range(len(target_ids))), set()))
    mined = mine_pairs(src[src_rows], tgt[tgt_rows], k=k, max_chunk_bytes=max_chunk_bytes)
    candidates: dict[Pair, float] = {}
    for s, t, score in zip(mined.source, mined.target, mined.score):
        s_row, t_row = src_rows[int(s)], tgt_rows[int(t)]
        if source_texts is not None and source_texts[s_row] in src_repeated:
            continue
        if target_texts is not None and target_texts[t_row] in tgt_repeated:
            continue
        candidates[(source_ids[s_row], target_ids[t_row])] = float(score)
    return candidates


def optimize_threshold(candidates: Mapping[Pair, float], gold: Collection[Pair]) -> float:
    """The F1-optimal score threshold on gold pairs (XTREME ``bucc_optimize``).

    Candidates are ranked by score; the cut after the best-F1 prefix is placed
    half-way to the next score. Where the best prefix is the whole list (XTREME
    would index past its end) the threshold is the last score, which keeps
    every candidate. Without any correct candidate the threshold is 0.
    """
    if not gold:
        raise MetricInputError("cannot tune a BUCC threshold without gold pairs")
    gold_set = set(gold)
    items = sorted(candidates.items(), key=lambda kv: -kv[1])
    ncorrect = 0
    best_f1 = 0.0
    threshold = 0.0
    for i, (pair, score) in enumerate(items):
        if pair in gold_set:
            ncorrect += 1
        if ncorrect == 0:
            continue
        precision = ncorrect / (i + 1)
        recall = ncorrect / len(gold_set)
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best_f1:
            best_f1 = f1
            threshold = (score + items[i + 1][1]) / 2 if i + 1 < len(items) else score
    return threshold


def extract_pairs(candidates: Mapping[Pair, float], threshold: float) -> set[Pair]:
    """Candidate pairs with ``score >= threshold`` (XTREME ``bucc_extract``)."""
    return {pair for pair, score in candidates.items() if score >= threshold}


def bucc_f1(labels: Collection[Pair], predictions: Collection[Pair],
            language: str | None = None) -> dict[str, float]:
    """Precision, recall and F1 (percent) of predicted pairs vs gold (``evaluate.py``).

    Both arguments are collections of ``(source id, target id)``; duplicates
    count once. All three are 0 when no prediction is correct.
    """
    gold, pred = set(labels), set(predictions)
    if not gold:
        raise MetricInputError("no gold BUCC pairs to score against")
    ncorrect = len(gold & pred)
    if ncorrect == 0:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    precision = ncorrect / len(pred)
    recall = ncorrect / len(gold)
    f1 = 2 * precision * recall / (precision + recall)
    return {"f1": 100.0 * f1, "precision": 100.0 * precision, "recall": 100.0 * recall}


@dataclass(frozen=True)
class BuccResult:
    """BUCC scores of one split with the threshold and the policy that chose it."""

    f1: float
    precision: float
    recall: float
    threshold: float
    policy: ThresholdPolicy
    predictions: frozenset[Pair]

    def as_dict(self) -> dict[str, float]:
        """Numeric scores for logging (the policy is a parameter, not a metric)."""
        return {"f1": self.f1, "precision": self.precision, "recall": self.recall,
                "threshold": self.threshold}


def evaluate_bucc(candidates: Mapping[Pair, float], gold: Collection[Pair], *,
                  policy: ThresholdPolicy | str,
                  tune_candidates: Mapping[Pair, float] | None = None,
                  tune_gold: Collection[Pair] | None = None) -> BuccResult:
    """Score mined candidates of one split under a threshold policy.

    Args:
        candidates: mined pairs of the split being scored (:func:`mine_candidates`).
        gold: its gold pairs.
        policy: ``same_split`` tunes on ``candidates``/``gold`` themselves;
            ``dev_tuned`` tunes on ``tune_candidates``/``tune_gold`` (another
            split) and applies that threshold here.

    Raises:
        MetricInputError: ``dev_tuned`` without a tuning split, or empty gold.
        UnknownNameError: ``policy`` is not a :class:`ThresholdPolicy` value.
    """
    try:
        policy = ThresholdPolicy(policy)
    except ValueError:
        raise UnknownNameError("BUCC threshold policy", str(policy),
                               [p.value for p in ThresholdPolicy]) from None
    if policy is ThresholdPolicy.SAME_SPLIT:
        threshold = optimize_threshold(candidates, gold)
    else:
        if tune_candidates is None or tune_gold is None:
            raise MetricInputError(
                "threshold policy 'dev_tuned' needs tune_candidates and tune_gold from another split")
        threshold = optimize_threshold(tune_candidates, tune_gold)
    predicted = extract_pairs(candidates, threshold)
    scores = bucc_f1(gold, predicted)
    return BuccResult(f1=scores["f1"], precision=scores["precision"], recall=scores["recall"],
                      threshold=threshold, policy=policy, predictions=frozenset(predicted))


def read_bucc_gold(path: str | PathLike[str]) -> set[Pair]:
    """Gold pairs from a BUCC ``.gold`` file: ``source_id<TAB>target_id`` per line.

    Raises:
        DataFormatError: a non-empty line without exactly two tab-separated ids.
    """
    pairs: set[Pair] = set()
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not all(fields):
                raise DataFormatError(path, "two tab-separated ids 'source_id<TAB>target_id'",
                                      line=lineno, got=repr(line[:80]))
            pairs.add((fields[0], fields[1]))
    return pairs
