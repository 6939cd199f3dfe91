"""Cosine nearest-neighbour search and Tatoeba accuracy, chunked to bound memory.

XTREME's Tatoeba evaluation (``third_party/run_retrieval.py``, task ``tatoeba``,
``similarity_search``) L2-normalizes both embedding matrices, builds an exact
index over the *non-English* sentences and queries it with the *English* ones,
then scores top-1 accuracy against the line alignment (sentence i <-> i).
:func:`tatoeba_accuracy` computes both directions, named query->retrieved:

* ``en_to_xx``: English queries, xx index -- what XTREME's code computes;
* ``xx_to_en``: xx queries, English index (retrieving the English translation
  of each xx sentence) -- what the project's encoder check
  (``xstilts.encoders.check.top1_accuracy``) reports as "xx->en".

Similarities are computed block by block so that no more than
``max_chunk_bytes`` of float32 scores exist at once:
40k x 40k would need 6.4 GB in one piece.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xstilts.evaluation.metrics.validation import MetricInputError

DEFAULT_MAX_CHUNK_BYTES = 256 * 1024 * 1024


def l2_normalized(embeddings: ArrayLike, *, name: str = "embeddings") -> NDArray[np.float32]:
    """Rows scaled to unit length, as float32 (``faiss.normalize_L2`` in XTREME).

    Raises:
        MetricInputError: not a non-empty 2-D array, non-finite values, or an
            all-zero row (its cosine similarity would be undefined).
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise MetricInputError(f"{name}: expected a non-empty 2-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise MetricInputError(f"{name}: contains NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise MetricInputError(f"{name}: row {int(zero[0])} is all zeros")
    return x / norms


def _rows_per_chunk(n_columns: int, bytes_per_cell: int, max_chunk_bytes: int) -> int:
    return max(1, max_chunk_bytes // max(1, n_columns * bytes_per_cell))


def top_k_cosine(queries: ArrayLike, database: ArrayLike, k: int, *,
                 max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
                 normalized: bool = False) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The ``k`` most cosine-similar database rows of each query, best first.

    Exact search, equivalent to ``faiss.IndexFlatIP`` over L2-normalized rows
    (XTREME's ``knnCPU``). ``k`` is capped at the database size, as XTREME does
    with ``min(y.shape[0], neighborhood)``. Among equal scores the lower
    database index comes first (faiss leaves that order unspecified).

    Args:
        queries: (n_queries, dim) embeddings.
        database: (n_database, dim) embeddings.
        k: neighbours per query (>= 1).
        max_chunk_bytes: memory bound for one block of float32 scores.
        normalized: set when both inputs are already unit-length float32.

    Returns:
        ``(similarities, indices)``, both (n_queries, min(k, n_database)).
    """
    q = np.asarray(queries, dtype=np.float32) if normalized else l2_normalized(queries, name="queries")
    db = np.asarray(database, dtype=np.float32) if normalized else l2_normalized(database, name="database")
    if q.shape[1] != db.shape[1]:
        raise MetricInputError(
            f"embedding sizes differ: queries have {q.shape[1]}, database has {db.shape[1]}")
    if k < 1:
        raise MetricInputError(f"k must be at least 1, got {k}")
    n = db.shape[0]
    k = min(k, n)
    sims = np.empty((q.shape[0], k), dtype=np.float32)
    inds = np.empty((q.shape[0], k), dtype=np.int64)
    step = _rows_per_chunk(n, 4, max_chunk_bytes)
    for start in range(0, q.shape[0], step):
        block = q[start:start + step] @ db.T
        rows = np.arange(block.shape[0])
        # k rounds of argmax (k is small: 1 for Tatoeba, 4 for BUCC) are several times
        # faster than argpartition and need no index array the size of the block;
        # argmax takes the lowest index among equal scores, so the order is reproducible.
        for j in range(k):
            best = block.argmax(axis=1)
            inds[start + rows, j] = best
            sims[start + rows, j] = block[rows, best]
            block[rows, best] = -np.inf
    return sims, inds


def nearest_neighbor(queries: ArrayLike, database: ArrayLike, *,
                     max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES) -> NDArray[np.int64]:
    """Index of the most cosine-similar database row for each query (first on ties)."""
    return top_k_cosine(queries, database, 1, max_chunk_bytes=max_chunk_bytes)[1][:, 0]


@dataclass(frozen=True, eq=False)
class TatoebaResult:
    """Top-1 accuracies (percent) of one Tatoeba language pair, both directions.

    ``xx_to_en_predictions[i]`` is the English line retrieved for xx line ``i``;
    ``en_to_xx_predictions[i]`` the xx line retrieved for English line ``i``.
    """

    xx_to_en: float
    en_to_xx: float
    num_pairs: int
    xx_to_en_predictions: NDArray[np.int64]
    en_to_xx_predictions: NDArray[np.int64]

    @property
    def xtreme(self) -> float:
        """The direction XTREME's ``run_retrieval.py`` computes (English queries)."""
        return self.en_to_xx

    def as_dict(self) -> dict[str, float]:
        """Scores for logging: ``{"accuracy_xx_to_en", "accuracy_en_to_xx"}``."""
        return {"accuracy_xx_to_en": self.xx_to_en, "accuracy_en_to_xx": self.en_to_xx}


def tatoeba_accuracy(xx_embeddings: ArrayLike, en_embeddings: ArrayLike, *,
                     max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES) -> TatoebaResult:
    """Top-1 cosine retrieval accuracy of aligned sentence embeddings, both ways.

    Args:
        xx_embeddings: (n, dim) embeddings of the non-English sentences.
        en_embeddings: (n, dim) embeddings of their English translations, in
            the same order (line i translates line i).

    Raises:
        MetricInputError: the two matrices differ in rows or columns, or are
            not valid embeddings (see :func:`l2_normalized`).
    """
    xx = l2_normalized(xx_embeddings, name="xx embeddings")
    en = l2_normalized(en_embeddings, name="en embeddings")
    if xx.shape != en.shape:
        raise MetricInputError(
            f"Tatoeba needs aligned embeddings: xx has shape {xx.shape}, en has {en.shape}")
    gold = np.arange(xx.shape[0])
    xx_to_en = top_k_cosine(xx, en, 1, max_chunk_bytes=max_chunk_bytes, normalized=True)[1][:, 0]
    en_to_xx = top_k_cosine(en, xx, 1, max_chunk_bytes=max_chunk_bytes, normalized=True)[1][:, 0]
    return TatoebaResult(
        xx_to_en=100.0 * float((xx_to_en == gold).mean()),
        en_to_xx=100.0 * float((en_to_xx == gold).mean()),
        num_pairs=int(xx.shape[0]),
        xx_to_en_predictions=xx_to_en,
        en_to_xx_predictions=en_to_xx,
    )
