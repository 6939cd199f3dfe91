"""Every vendored task split loads, and its example count matches data/MANIFEST.md."""
from __future__ import annotations

import re

import pytest

from xstilts.data.examples import ParallelCorpus
from xstilts.data.loading import available_local, load_examples, load_parallel, local_files
from xstilts.errors import XstiltsError
from xstilts.paths import data_root
from xstilts.tasks import get_task, list_tasks


def _manifest() -> dict[str, tuple[int, str]]:
    counts = {}
    for line in (data_root() / "MANIFEST.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([^`]+)` \|(?:[^|]*\|){3} (\d+) \[", line)
        if m:
            langs = line.split(" | ")[3]
            counts[m.group(1)] = (int(m.group(2)), langs)
    return counts


MANIFEST = _manifest()
CASES = [(t.name, lang, split) for t in list_tasks() for lang, split in available_local(t)]


def test_every_target_task_and_language_present_is_vendored() -> None:
    present = {(t, lang) for t, lang, _ in CASES}
    for t in list_tasks("target"):
        missing = [lang for lang in t.languages if (t.name, lang) not in present]
        # The bundle lacks PAN-X th and UD-POS train sets other than English; nothing else may be missing.
        assert missing == (["th"] if t.name == "panx" else []) or t.name == "bucc2018", (t.name, missing)
    assert {t for t, _, _ in CASES} >= {"anli", "mnli", "qqp", "sst2", "squad_v2", "hellaswag", "commonsenseqa",
                                       "cosmosqa"}


@pytest.mark.parametrize("task,lang,split", CASES)
def test_counts_match_manifest(task: str, lang: str, split: str) -> None:
    files = local_files(task, lang, split)
    rels = [f.relative_to(data_root()).as_posix() for f in files]
    expected = sum(MANIFEST[r][0] for r in rels)
    multi_language_file = any(re.fullmatch(r"[a-z]{2}(,[a-z]{2})+", MANIFEST[r][1]) for r in rels)
    if not get_task(task).family.needs_head:
        corpus = load_parallel(task, lang, split, source="local")
        assert isinstance(corpus, ParallelCorpus)
        assert len(corpus.source) == expected and corpus.gold
        return
    examples = load_examples(task, lang, split, source="local")
    assert all(ex.lang == lang for ex in examples)
    if multi_language_file:  # XNLI-1.0 style file holding every language: one row per language here
        assert 0 < len(examples) < expected
    else:
        assert len(examples) == expected


def test_max_examples_and_errors() -> None:
    assert len(load_examples("xnli", "sw", "dev", max_examples=7)) == 7
    with pytest.raises(XstiltsError, match="load_parallel"):
        load_examples("tatoeba", "de", "test")
    with pytest.raises(XstiltsError, match="no local file for task squad"):
        load_examples("squad", "en", "train", source="local")


def test_real_content_spot_checks() -> None:
    en = load_examples("xnli", "en", "dev")
    assert (en[0].text_a, en[0].text_b, en[0].label) == (
        "And he said, Mama, I'm home.", "He called his mom as soon as the school bus dropped him off.", "neutral")
    assert len(en) == 2490 and {e.label for e in en} == {"entailment", "neutral", "contradiction"}
    ud = load_examples("udpos", "en", "dev")
    assert ud[0].words == ("From", "the", "AP", "comes", "this", "story", ":")
    assert ud[0].tags == ("ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT")
    panx = load_examples("panx", "en", "dev")
    assert panx[0].words[:3] == ("Sioux", "Falls", "Arena") and panx[0].tags[:3] == ("B-ORG", "I-ORG", "I-ORG")
    tat = load_parallel("tatoeba", "de", "test")
    assert len(tat.source) == len(tat.target) == 1000
    bucc = load_parallel("bucc2018", "zh", "dev")
    assert ("zh-000000057", "en-000008530") in bucc.gold and len(bucc.gold) == 257
    xq = load_examples("xquad", "zh", "test")
    for ex in xq[:200]:
        a = ex.answers[0]
        assert ex.context[a.start:a.start + len(a.text)] == a.text
    # XTREME blanks TyDiQA dev answers: no gold, not marked impossible.
    assert all(not ex.answers and not ex.is_impossible for ex in load_examples("tydiqa", "sw", "dev"))
    assert all(ex.answers for ex in load_examples("tydiqa", "en", "train"))
    sq2 = load_examples("squad_v2", "en", "dev")
    assert sq2[0].answers[0].text == "France" and not sq2[0].is_impossible


def test_conllu_multiword_tokens_are_skipped() -> None:
    # French GSD writes contractions as ranges ("du" = "de" + "le"); words and tags stay aligned.
    fr = load_examples("udpos", "fr", "dev")
    assert all(len(ex.words) == len(ex.tags) for ex in fr)
    assert any("de" in ex.words and "le" in ex.words for ex in fr)
