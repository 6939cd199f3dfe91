"""Retrieval tasks straight from the encoder: Tatoeba and BUCC 2018.

Sentences are embedded by mean pooling over the attention mask of one hidden
layer (:func:`xstilts.encoders.embed.embed_sentences`, the encoder check's
embedding); Tatoeba then takes the cosine nearest neighbour
(:func:`~xstilts.evaluation.metrics.retrieval.tatoeba_accuracy`, the function
the encoder check uses too), BUCC mines pairs by ratio margin
(:mod:`xstilts.evaluation.metrics.bucc`).

Layer: :func:`default_layer` follows XTREME's scripts (``run_tatoeba.sh``,
``run_bucc2018.sh``: hidden state 7 of 12-layer models, 13 of 24-layer ones),
except for E5 encoders, which were trained for mean-pooled last-layer sentence
embeddings and are used that way (as the encoder check does).

BUCC threshold policy ``dev_tuned``: the score threshold is chosen on gold pairs
the scored pairs do not include. When the test split is scored and the dev
split has gold pairs, the threshold comes from dev, as XTREME does. When only
one split has gold (the vendored data: the zh-en dev sample), the split's
sentences are cut into two folds by source-sentence position (even / odd);
each fold's pairs are extracted with the threshold tuned on the other fold, and
the union of both is scored. ``same_split`` tunes on the scored pairs
themselves (XTREME's dev number: an oracle).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xstilts.data.examples import ParallelCorpus
from xstilts.errors import XstiltsError
from xstilts.evaluation.metrics.bucc import (
    Pair,
    ThresholdPolicy,
    bucc_f1,
    extract_pairs,
    mine_candidates,
    optimize_threshold,
)
from xstilts.evaluation.metrics.retrieval import tatoeba_accuracy

#: XTREME's ``--specific_layer`` (an index into ``hidden_states``, 0 = embeddings) by depth.
XTREME_LAYERS = {12: 7, 24: 13}
RETRIEVAL_MAX_LENGTH = 128  # the encoder check's; XTREME uses 512, which changes few Tatoeba lines


def default_layer(model_name: str, num_hidden_layers: int) -> int:
    """The hidden layer to pool for retrieval with this encoder (-1 = last)."""
    if "e5" in model_name.lower():
        return -1
    return XTREME_LAYERS.get(num_hidden_layers, -1)


def _embed(encoder, tokenizer, sentences, *, layer: int, bf16: bool, batch_size: int,
           max_length: int, progress: str | None) -> np.ndarray:
    from xstilts.encoders.embed import embed_sentences

    return embed_sentences(encoder, tokenizer, list(sentences), layer=layer, bf16=bf16, batch_size=batch_size,
                           max_length=max_length, progress=progress)


@dataclass
class RetrievalOutcome:
    """Scores (percent) of one language, the predictions to write and extra details."""

    scores: dict[str, float]
    predictions: Any
    num_examples: int
    details: dict[str, Any] = field(default_factory=dict)


def evaluate_tatoeba(encoder, tokenizer, corpus: ParallelCorpus, *, layer: int, bf16: bool, batch_size: int,
                     max_examples: int | None, max_length: int = RETRIEVAL_MAX_LENGTH,
                     progress: str | None = None) -> RetrievalOutcome:
    """Top-1 accuracy both ways; ``accuracy`` is XTREME's direction, ``accuracy_xx_to_en`` the other.

    XTREME (``third_party/evaluate_retrieval.py``, task ``tatoeba``) indexes the xx sentences
    and queries with the English ones (en -> xx); the encoder check (``xstilts model check``)
    reports xx -> en. Predictions, as XTREME's ``test-{lang}.tsv``: for each English line the
    index of the retrieved xx line (gold: the line's own index).
    """
    n = len(corpus.source) if max_examples is None else min(max_examples, len(corpus.source))
    xx = _embed(encoder, tokenizer, corpus.source[:n], layer=layer, bf16=bf16, batch_size=batch_size,
                max_length=max_length, progress=progress)
    en = _embed(encoder, tokenizer, corpus.target[:n], layer=layer, bf16=bf16, batch_size=batch_size,
                max_length=max_length, progress=progress)
    result = tatoeba_accuracy(xx, en)
    return RetrievalOutcome({"accuracy": result.en_to_xx, "accuracy_xx_to_en": result.xx_to_en},
                            result.en_to_xx_predictions.tolist(), n)


def _prefix(corpus: ParallelCorpus, max_examples: int | None) -> ParallelCorpus:
    """A quick-run sample: the first ``max_examples`` source sentences; as targets the first
    ``max_examples`` English sentences plus the gold partners of the kept sources.

    A plain prefix of both sides would keep almost no gold pair (the pairs are
    scattered over both files); adding the partners keeps every kept source's pair
    minable. Scores on such a sample are for smoke runs, not comparable to the full pool.
    """
    if max_examples is None or max_examples >= len(corpus.source):
        return corpus
    keep_src = set(corpus.source_ids[:max_examples])
    gold = tuple((s, t) for s, t in corpus.gold if s in keep_src)
    keep_tgt = set(corpus.target_ids[:max_examples]) | {t for _, t in gold}
    rows = [i for i, t in enumerate(corpus.target_ids) if t in keep_tgt]
    return ParallelCorpus(corpus.lang, corpus.source_ids[:max_examples], corpus.source[:max_examples],
                          tuple(corpus.target_ids[i] for i in rows), tuple(corpus.target[i] for i in rows), gold)


def bucc_candidates(encoder, tokenizer, corpus: ParallelCorpus, *, layer: int, bf16: bool, batch_size: int,
                    max_length: int = RETRIEVAL_MAX_LENGTH, progress: str | None = None) -> dict[Pair, float]:
    """Margin-mined candidate pairs with their scores (XTREME's candidate file)."""
    src = _embed(encoder, tokenizer, corpus.source, layer=layer, bf16=bf16, batch_size=batch_size,
                 max_length=max_length, progress=progress)
    tgt = _embed(encoder, tokenizer, corpus.target, layer=layer, bf16=bf16, batch_size=batch_size,
                 max_length=max_length, progress=progress)
    return mine_candidates(corpus.source_ids, src, corpus.target_ids, tgt,
                           source_texts=corpus.source, target_texts=corpus.target)


def two_fold_dev_tuned(candidates: dict[Pair, float], gold: set[Pair], source_ids) -> tuple[set[Pair], list[float]]:
    """Predicted pairs when each fold's threshold is tuned on the other fold (see module doc).

    Folds: source sentences at even / odd positions of ``source_ids``.
    """
    fold_of = {sid: i % 2 for i, sid in enumerate(source_ids)}
    folds_cand = [{p: s for p, s in candidates.items() if fold_of[p[0]] == f} for f in (0, 1)]
    folds_gold = [{p for p in gold if fold_of.get(p[0]) == f} for f in (0, 1)]
    if not all(folds_gold):
        raise XstiltsError("BUCC threshold policy dev_tuned: too few gold pairs to tune on one half of the "
                           "split and score the other (use more sentences or --bucc-threshold same_split)")
    predicted: set[Pair] = set()
    thresholds = []
    for f in (0, 1):
        threshold = optimize_threshold(folds_cand[1 - f], folds_gold[1 - f])
        thresholds.append(threshold)
        predicted |= extract_pairs(folds_cand[f], threshold)
    return predicted, thresholds


def evaluate_bucc_split(encoder, tokenizer, corpus: ParallelCorpus, *, policy: ThresholdPolicy | str,
                        layer: int, bf16: bool, batch_size: int, max_examples: int | None,
                        tune_corpus: ParallelCorpus | None = None,
                        max_length: int = RETRIEVAL_MAX_LENGTH, progress: str | None = None) -> RetrievalOutcome:
    """F1 of mined pairs under ``policy``; ``tune_corpus`` (another split with gold) for ``dev_tuned``.

    Without ``tune_corpus``, ``dev_tuned`` is the two-fold scheme of the module doc.
    """
    policy = ThresholdPolicy(policy)
    corpus = _prefix(corpus, max_examples)
    gold = set(corpus.gold)
    if not gold:
        raise XstiltsError(f"BUCC {corpus.lang}: no gold pairs among the first {max_examples} sentences; "
                           "use more (--max-examples)")
    kw = dict(layer=layer, bf16=bf16, batch_size=batch_size, max_length=max_length, progress=progress)
    candidates = bucc_candidates(encoder, tokenizer, corpus, **kw)
    details: dict[str, Any] = {"threshold_policy": str(policy), "candidates": len(candidates),
                               "gold_pairs": len(gold), "target_sentences": len(corpus.target)}
    if policy is ThresholdPolicy.SAME_SPLIT:
        threshold = optimize_threshold(candidates, gold)
        predicted = extract_pairs(candidates, threshold)
        details["threshold_tuned_on"] = "the scored split itself (oracle)"
    elif tune_corpus is not None:
        tune = _prefix(tune_corpus, max_examples)
        threshold = optimize_threshold(bucc_candidates(encoder, tokenizer, tune, **kw), set(tune.gold))
        predicted = extract_pairs(candidates, threshold)
        details["threshold_tuned_on"] = "the dev split"
    else:
        predicted, thresholds = two_fold_dev_tuned(candidates, gold, corpus.source_ids)
        threshold = float(np.mean(thresholds))
        details["threshold_tuned_on"] = ("the other half of the same split (2 folds by source-sentence position; "
                                         "no second split with gold pairs)")
        details["fold_thresholds"] = thresholds
    details["threshold"] = float(threshold)
    scores = bucc_f1(gold, predicted)
    return RetrievalOutcome(scores, sorted(predicted), len(corpus.source), details)
