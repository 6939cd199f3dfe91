"""BUCC margin mining: a hand-computed 3x3 case and the real zh-en sample set."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from xstilts.errors import DataFormatError, UnknownNameError
from xstilts.evaluation.metrics import (
    MetricInputError, ThresholdPolicy, evaluate_bucc, mine_candidates, mine_pairs, read_bucc_gold)
from xstilts.evaluation.metrics.bucc import bucc_f1, extract_pairs, optimize_threshold
from xstilts.paths import data_root, repo_root

# Cosines of a 3x3 example with a "hub" target y1 that is close to every source:
S = np.array([[0.50, 0.45, 0.10],
              [0.50, 0.10, 0.20],
              [0.45, 0.05, 0.40]])


def _embeddings_with_cosines(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors x_i, y_j in R^(n+m) with cos(x_i, y_j) = s[i, j] exactly."""
    n, m = s.shape
    x = np.zeros((n, n + m))
    x[:, :n] = np.eye(n)
    y = np.zeros((m, n + m))
    y[:, :n] = s.T
    y[np.arange(m), n + np.arange(m)] = np.sqrt(1 - (s ** 2).sum(axis=0))
    return x, y


def test_margin_mining_by_hand() -> None:
    # k = 2.  fwd_mean (top-2 of each row):   x0 .475  x1 .35   x2 .425
    #         bwd_mean (top-2 of each column): y0 .5    y1 .275  y2 .3
    # margin = cos / ((fwd_mean[x] + bwd_mean[y]) / 2):
    #   x0: y0 .5/.4875 = 1.0256   y1 .45/.375  = 1.2      -> y1 (cosine alone picks the hub y0)
    #   x1: y0 .5/.425  = 1.1765   y2 .2/.325   = 0.6154   -> y0
    #   x2: y0 .45/.4625 = 0.9730  y2 .4/.3625  = 1.1034   -> y2 (cosine alone picks y0)
    #   backward: y0 -> x1 (1.1765 > 1.0256), y1 -> x0 (1.2 > .1/.3125 = .32), y2 -> x2
    # greedy over all, best first: (x0,y1) 1.2, (x1,y0) 1.1765, (x2,y2) 1.1034
    x, y = _embeddings_with_cosines(S)
    mined = mine_pairs(x, y, k=2)
    assert list(zip(mined.source.tolist(), mined.target.tolist())) == [(0, 1), (1, 0), (2, 2)]
    np.testing.assert_allclose(mined.score, [1.2, 0.5 / 0.425, 0.4 / 0.3625], rtol=1e-6)


def test_greedy_keeps_each_sentence_once() -> None:
    # Two sources whose best target is the same y0; only the higher-scoring pair survives
    # for y0, and the other source gets nothing (its only other neighbour is far).
    x = np.array([[1.0, 0.0], [0.96, 0.28]])
    y = np.array([[1.0, 0.0]])
    mined = mine_pairs(x, y, k=4)
    assert list(zip(mined.source.tolist(), mined.target.tolist())) == [(0, 0)]


def test_threshold_optimisation_by_hand() -> None:
    cands = {("a", "1"): 0.9, ("b", "2"): 0.8, ("c", "3"): 0.7, ("d", "4"): 0.6}
    gold = {("a", "1"), ("c", "3"), ("e", "5")}
    # prefix F1: 1 -> .5, 2 -> .4, 3 -> P 2/3 R 2/3 = .667 (best), 4 -> .571
    # threshold half-way between the 3rd and 4th score
    assert optimize_threshold(cands, gold) == pytest.approx(0.65)
    assert extract_pairs(cands, 0.65) == {("a", "1"), ("b", "2"), ("c", "3")}
    assert bucc_f1(gold, extract_pairs(cands, 0.65)) == pytest.approx(
        {"f1": 200 / 3, "precision": 200 / 3, "recall": 200 / 3})
    # best prefix is the whole list: keep everything (XTREME would index past the end)
    assert optimize_threshold({("a", "1"): 0.9, ("c", "3"): 0.7}, gold) == pytest.approx(0.7)


def test_policy_errors() -> None:
    cands, gold = {("a", "1"): 1.0}, {("a", "1")}
    with pytest.raises(MetricInputError, match="dev_tuned"):
        evaluate_bucc(cands, gold, policy="dev_tuned")
    with pytest.raises(UnknownNameError, match="dev_tuned, same_split"):
        evaluate_bucc(cands, gold, policy="oracle")
    with pytest.raises(MetricInputError, match="without gold"):
        evaluate_bucc(cands, set(), policy="same_split")


def test_read_bucc_gold_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.gold"
    bad.write_text("zh-1\ten-1\nzh-2 en-2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"x\.gold, line 2: expected two tab-separated ids"):
        read_bucc_gold(bad)


# ---- the real zh-en sample set ------------------------------------------------------------

def _bucc_dir() -> Path | None:
    for d in (data_root() / "bucc2018", repo_root().parent / "shared" / "data" / "bucc2018",
              Path("/work/shared/data/bucc2018")):
        if (d / "zh-en.dev.gold").exists():
            return d
    return None


def _read_sentences(path: Path) -> tuple[list[str], list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    ids, texts = [], []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            sid, text = line.rstrip("\n").split("\t", 1)
            ids.append(sid)
            texts.append(text)
    return ids, texts


def _find(d: Path, stem: str) -> Path:
    return d / stem if (d / stem).exists() else d / f"{stem}.gz"


@pytest.fixture(scope="module")
def bucc_zh_en() -> dict:
    d = _bucc_dir()
    if d is None:
        pytest.skip("BUCC 2018 zh-en sample set not found (data/bucc2018 or ../shared/data/bucc2018)")
    zh_ids, zh_texts = _read_sentences(_find(d, "zh-en.dev.zh"))
    en_ids, en_texts = _read_sentences(_find(d, "zh-en.dev.en"))
    gold = read_bucc_gold(d / "zh-en.dev.gold")
    return {"zh_ids": zh_ids, "zh_texts": zh_texts, "en_ids": en_ids, "en_texts": en_texts,
            "gold": gold}


def _synthetic_embeddings(data: dict, *, plant_gold: bool, dim: int = 64, noise: float = 0.3,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One random vector per distinct sentence; a gold English sentence = its Chinese
    partner's vector plus noise (cosine about 0.96), so mining should find the gold pairs."""
    rng = np.random.default_rng(seed)

    def per_text(texts: list[str]) -> np.ndarray:
        distinct = {t: i for i, t in enumerate(dict.fromkeys(texts))}
        table = rng.standard_normal((len(distinct), dim))
        return table[[distinct[t] for t in texts]]    # identical text -> identical vector

    zh, en = per_text(data["zh_texts"]), per_text(data["en_texts"])
    if plant_gold:
        zh_row = {s: i for i, s in enumerate(data["zh_ids"])}
        en_row = {s: i for i, s in enumerate(data["en_ids"])}
        for z, e in sorted(data["gold"]):
            en[en_row[e]] = zh[zh_row[z]] + noise * rng.standard_normal(dim)
    return zh, en


def test_real_sample_set_recovers_gold_pairs(bucc_zh_en: dict) -> None:
    data = bucc_zh_en
    assert len(data["gold"]) == 257
    zh, en = _synthetic_embeddings(data, plant_gold=True)
    cands = mine_candidates(data["zh_ids"], zh, data["en_ids"], en,
                            source_texts=data["zh_texts"], target_texts=data["en_texts"],
                            max_chunk_bytes=64 * 2**20)
    result = evaluate_bucc(cands, data["gold"], policy=ThresholdPolicy.SAME_SPLIT)
    assert result.policy is ThresholdPolicy.SAME_SPLIT
    assert result.f1 >= 99.0, result.as_dict()
    assert result.predictions <= set(cands)


def test_real_sample_set_without_planted_pairs_finds_nothing(bucc_zh_en: dict) -> None:
    data = bucc_zh_en
    zh, en = _synthetic_embeddings(data, plant_gold=False)
    cands = mine_candidates(data["zh_ids"], zh, data["en_ids"], en,
                            source_texts=data["zh_texts"], target_texts=data["en_texts"])
    assert evaluate_bucc(cands, data["gold"], policy="same_split").f1 < 5.0


def test_dev_tuned_threshold_transfers_between_halves(bucc_zh_en: dict) -> None:
    """Split the sample set into two disjoint halves (gold pairs kept whole), tune on A, apply to B."""
    data = bucc_zh_en
    zh, en = _synthetic_embeddings(data, plant_gold=True, seed=1)
    gold = sorted(data["gold"])
    half_of_zh = {z: i % 2 for i, (z, _) in enumerate(gold)}
    half_of_en = {e: i % 2 for i, (_, e) in enumerate(gold)}

    def half(ids: list[str], texts: list[str], emb: np.ndarray, assigned: dict, h: int):
        rows = [i for i, s in enumerate(ids) if assigned.get(s, i % 2) == h]
        return [ids[i] for i in rows], [texts[i] for i in rows], emb[rows]

    mined, golds = [], []
    for h in (0, 1):
        zi, zt, ze = half(data["zh_ids"], data["zh_texts"], zh, half_of_zh, h)
        ei, et, ee = half(data["en_ids"], data["en_texts"], en, half_of_en, h)
        mined.append(mine_candidates(zi, ze, ei, ee, source_texts=zt, target_texts=et))
        golds.append({p for i, p in enumerate(gold) if i % 2 == h})
    result = evaluate_bucc(mined[1], golds[1], policy="dev_tuned",
                           tune_candidates=mined[0], tune_gold=golds[0])
    assert result.policy is ThresholdPolicy.DEV_TUNED
    assert result.threshold == optimize_threshold(mined[0], golds[0])
    assert result.f1 >= 98.0, result.as_dict()


def _xtreme_mine_bitext_reference(x: np.ndarray, y: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    """Loop-by-loop transcription of XTREME utils_retrieve.mine_bitext (cosine, ratio
    margin, retrieval='max', threshold 0; Apache-2.0), with a full similarity matrix."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    sim = x @ y.T
    x2y_ind = np.argsort(-sim, axis=1)[:, :min(k, y.shape[0])]
    y2x_ind = np.argsort(-sim.T, axis=1)[:, :min(k, x.shape[0])]
    x2y_mean = np.take_along_axis(sim, x2y_ind, axis=1).mean(axis=1)
    y2x_mean = np.take_along_axis(sim.T, y2x_ind, axis=1).mean(axis=1)

    def score(a, b, fwd_mean, bwd_mean):
        return a.dot(b) / ((fwd_mean + bwd_mean) / 2)

    fwd_scores = np.array([[score(x[i], y[j], x2y_mean[i], y2x_mean[j]) for j in x2y_ind[i]]
                           for i in range(x.shape[0])])
    bwd_scores = np.array([[score(y[j], x[i], y2x_mean[j], x2y_mean[i]) for i in y2x_ind[j]]
                           for j in range(y.shape[0])])
    fwd_best = x2y_ind[np.arange(x.shape[0]), fwd_scores.argmax(axis=1)]
    bwd_best = y2x_ind[np.arange(y.shape[0]), bwd_scores.argmax(axis=1)]
    indices = np.stack((np.concatenate((np.arange(x.shape[0]), bwd_best)),
                        np.concatenate((fwd_best, np.arange(y.shape[0])))), axis=1)
    scores = np.concatenate((fwd_scores.max(axis=1), bwd_scores.max(axis=1)))
    seen_src, seen_trg, out = set(), set(), []
    for i in np.argsort(-scores, kind="stable"):
        src_ind, trg_ind = indices[i]
        if src_ind not in seen_src and trg_ind not in seen_trg:
            seen_src.add(src_ind)
            seen_trg.add(trg_ind)
            if scores[i] > 0:
                out.append((int(src_ind), int(trg_ind), float(scores[i])))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mining_matches_xtreme_reference_on_clustered_data(seed: int) -> None:
    # Clustered vectors make many sources compete for the same targets (greedy conflicts).
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((6, 8))
    x = centers[rng.integers(0, 6, 40)] + 0.5 * rng.standard_normal((40, 8))
    y = centers[rng.integers(0, 6, 55)] + 0.5 * rng.standard_normal((55, 8))
    expected = _xtreme_mine_bitext_reference(x, y, k=4)
    mined = mine_pairs(x, y, k=4, max_chunk_bytes=7 * 55 * 4)   # 7 rows per block
    got = list(zip(mined.source.tolist(), mined.target.tolist()))
    assert got == [(s, t) for s, t, _ in expected]
    np.testing.assert_allclose(mined.score, [sc for _, _, sc in expected], rtol=1e-5)
