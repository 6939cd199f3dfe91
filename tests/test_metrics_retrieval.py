"""Cosine nearest-neighbour search and Tatoeba accuracy on hand-built indexes."""
from __future__ import annotations

import numpy as np
import pytest

from xstilts.evaluation.metrics import MetricInputError, tatoeba_accuracy, top_k_cosine

# Unit vectors chosen so every cosine is a short decimal:
XX = np.array([[1.0, 0.0, 0.0],
               [0.0, 1.0, 0.0],
               [0.6, 0.8, 0.0]])
EN = np.array([[1.0, 0.0, 0.0],
               [0.0, 0.6, 0.8],
               [0.6, 0.64, 0.48]])
# cos(xx_i, en_j):      en0   en1   en2
#   xx0                 1     0     0.6
#   xx1                 0     0.6   0.64
#   xx2                 0.6   0.48  0.872
# xx->en (row argmax): en0, en2 (wrong: gold en1), en2 -> 2/3
# en->xx (col argmax): xx0, xx1, xx2                   -> 3/3


def test_tatoeba_hand_index_both_directions() -> None:
    result = tatoeba_accuracy(XX, EN)
    assert result.xx_to_en == pytest.approx(200 / 3)
    assert result.en_to_xx == pytest.approx(100.0)
    assert result.xtreme == result.en_to_xx        # XTREME queries with English
    assert result.xx_to_en_predictions.tolist() == [0, 2, 2]
    assert result.en_to_xx_predictions.tolist() == [0, 1, 2]
    assert result.num_pairs == 3


def test_tatoeba_is_cosine_so_row_scale_does_not_matter() -> None:
    scaled = tatoeba_accuracy(XX * np.array([[3.0], [0.1], [7.0]]), EN * 250.0)
    assert scaled.as_dict() == tatoeba_accuracy(XX, EN).as_dict()


def test_top_k_chunked_equals_full_sort() -> None:
    rng = np.random.default_rng(7)
    q, db = rng.standard_normal((53, 16)), rng.standard_normal((211, 16))
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dbn = db / np.linalg.norm(db, axis=1, keepdims=True)
    full = qn @ dbn.T
    expected_idx = np.argsort(-full, axis=1)[:, :5]
    for budget in (1, 12 * 211 * 4, 10**9):           # 1 row per block, 4 rows, everything
        sims, idx = top_k_cosine(q, db, 5, max_chunk_bytes=budget)
        np.testing.assert_array_equal(idx, expected_idx)
        np.testing.assert_allclose(sims, np.take_along_axis(full, expected_idx, axis=1), rtol=1e-5)


def test_k_is_capped_at_database_size() -> None:
    sims, idx = top_k_cosine(XX, EN, 10)
    assert idx.shape == (3, 3)
    assert idx[2].tolist() == [2, 0, 1]                # 0.872 > 0.6 > 0.48


def test_bad_embeddings_are_rejected() -> None:
    with pytest.raises(MetricInputError, match="aligned"):
        tatoeba_accuracy(XX, EN[:2])
    with pytest.raises(MetricInputError, match="row 1 is all zeros"):
        tatoeba_accuracy(np.array([[1.0, 0.0], [0.0, 0.0]]), np.eye(2))
    with pytest.raises(MetricInputError, match="NaN"):
        tatoeba_accuracy(np.array([[np.nan, 0.0], [0.0, 1.0]]), np.eye(2))
