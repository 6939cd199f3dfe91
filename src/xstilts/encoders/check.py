"""``xstilts model check``: is this encoder a usable multilingual encoder?

Tatoeba retrieval as XTREME runs it (LASER v1 test sets, xx->en): embed both sides
with mean pooling over the attention mask, take the cosine nearest English
neighbour of each source sentence, and count how often it is the gold translation.
A well-trained multilingual encoder scores far above chance; a random one does not.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class CheckResult:
    model: str
    layer: int
    bf16: bool
    max_pairs: int | None
    accuracy: dict[str, float] = field(default_factory=dict)  # percent, xx->en top-1
    pairs: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.accuracy.values()))) if self.accuracy else float("nan")

    def to_dict(self) -> dict:
        return {**asdict(self), "mean": self.mean}


def top1_accuracy(source: np.ndarray, target: np.ndarray) -> float:
    """Percent of rows i whose cosine nearest neighbour in ``target`` is row i."""
    from xstilts.evaluation.metrics.retrieval import nearest_neighbor

    return 100.0 * float(np.mean(nearest_neighbor(source, target) == np.arange(len(source))))


def run_check(model, tokenizer, corpora, *, model_name: str, layer: int = -1, bf16: bool = False,
              max_pairs: int | None = None, batch_size: int = 64, progress: bool = True) -> CheckResult:
    """Score ``corpora`` (ParallelCorpus per language, line-aligned) and return per-language accuracy."""
    from tqdm.auto import tqdm

    from xstilts.encoders.embed import embed_sentences
    from xstilts.evaluation.metrics.retrieval import tatoeba_accuracy

    result = CheckResult(model=model_name, layer=layer, bf16=bf16, max_pairs=max_pairs)
    start = time.perf_counter()
    for corpus in tqdm(corpora, desc="Tatoeba", unit="lang", disable=not progress):
        n = len(corpus.source) if max_pairs is None else min(max_pairs, len(corpus.source))
        src = embed_sentences(model, tokenizer, corpus.source[:n], layer=layer, bf16=bf16, batch_size=batch_size)
        tgt = embed_sentences(model, tokenizer, corpus.target[:n], layer=layer, bf16=bf16, batch_size=batch_size)
        # the same retrieval as `xstilts evaluate --task tatoeba`, whose accuracy_xx_to_en this is
        # (its headline, XTREME's direction, queries with English)
        result.accuracy[corpus.lang] = tatoeba_accuracy(src, tgt).xx_to_en
        result.pairs[corpus.lang] = n
    result.seconds = time.perf_counter() - start
    return result


def log_check(result: CheckResult, *, langs: list[str], store=None) -> str:
    """Log a check through the run store (params, ``tatoeba.accuracy.{lang}`` and ``.avg``,
    JSON artifact); under ``mlflow run`` into the run it created."""
    from xstilts.tracking.store import RunStore

    store = store or RunStore.open()
    with store.job_run("encoder-check", {"phase": "encoder_check", "task": "tatoeba"}, adopt_launch=True) as run:
        run.log_params({"model": result.model, "layer": result.layer, "bf16": result.bf16,
                        "max_pairs": result.max_pairs or "all", "langs": ",".join(langs)})
        metrics = {f"tatoeba.accuracy.{lang}": acc for lang, acc in result.accuracy.items()}
        metrics["tatoeba.accuracy.avg"] = result.mean
        metrics["encoder_check.seconds"] = result.seconds
        run.log_metrics(metrics)
        run.log_dict(result.to_dict(), "encoder_check.json")
    return run.run_id
