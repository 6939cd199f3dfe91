"""One test per malformed-input kind; each asserts the file name and line in the message.

The broken files are real vendored files with one defect introduced.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from xstilts.data.readers import (read_anli_jsonl, read_conllu, read_headerless_pair_tsv, read_squad_json,
                                  read_token_tsv)
from xstilts.data.readers._io import read_text
from xstilts.errors import DataFormatError
from xstilts.paths import data_root
from xstilts.tasks.xnli import NLI_LABELS


def _real_lines(rel: str, n: int) -> list[str]:
    return read_text(data_root() / rel).split("\n")[:n]


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_bad_json(tmp_path: Path) -> None:
    text = read_text(data_root() / "hf_dummy_samples/squad_v2/dev-v2.0.json")
    lines = text.replace(', "', ',\n"', 5).split("\n")  # spread over lines so the line number means something
    lines[3] = lines[3].replace('"', "", 1)  # drop a key's opening quote on line 4
    path = _write(tmp_path, "dev-v2.0.json", lines)
    with pytest.raises(DataFormatError) as err:
        read_squad_json(path, "en")
    assert "dev-v2.0.json, line 4" in str(err.value) and "valid JSON" in str(err.value)


def test_bad_jsonl_line(tmp_path: Path) -> None:
    lines = _real_lines("hf_dummy_samples/anli/anli_v0.1/R1/dev.jsonl", 3)
    lines[1] = lines[1][:-1]  # truncated object on line 2
    path = _write(tmp_path, "dev.jsonl", lines)
    with pytest.raises(DataFormatError, match=r"dev\.jsonl, line 2: expected one JSON object per line"):
        read_anli_jsonl(path, labels=NLI_LABELS)


def test_wrong_tsv_column_count(tmp_path: Path) -> None:
    lines = _real_lines("xnli/dev-sw.tsv.gz", 20)
    lines[11] = lines[11].rsplit("\t", 1)[0]  # line 12 loses its label column
    path = _write(tmp_path, "dev-sw.tsv", lines)
    with pytest.raises(DataFormatError) as err:
        read_headerless_pair_tsv(path, "sw", labels=NLI_LABELS)
    assert str(err.value) == f"{path}, line 12: expected 3 tab-separated columns (text_a, text_b, label), got 2 column(s)"


def test_invalid_conllu(tmp_path: Path) -> None:
    lines = _real_lines("udpos/Hindi-PUD/hi_pud-ud-test.conllu.gz", 40)
    bad = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#") and i > 10)
    lines[bad] = " ".join(lines[bad].split("\t"))  # spaces instead of tabs
    path = _write(tmp_path, "hi_pud-ud-test.conllu", lines)
    with pytest.raises(DataFormatError) as err:
        read_conllu(path, "hi")
    assert f"hi_pud-ud-test.conllu, line {bad + 1}: expected 10 tab-separated CoNLL-U fields" in str(err.value)


def test_unknown_label(tmp_path: Path) -> None:
    lines = _real_lines("panx/dev-yo.tsv", 30)
    word = lines[4].split("\t")[0]
    lines[4] = f"{word}\tB-MISC"  # PAN-X has no MISC type
    path = _write(tmp_path, "dev-yo.tsv", lines)
    with pytest.raises(DataFormatError) as err:
        read_token_tsv(path, "yo", labels=("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"))
    assert "dev-yo.tsv, line 5: expected a label in {O, B-PER" in str(err.value) and "got 'B-MISC'" in str(err.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "dev-en.tsv.gz"
    path.write_bytes(gzip.compress(b"\n\n"))
    with pytest.raises(DataFormatError, match=r"dev-en\.tsv\.gz: expected a non-empty file"):
        read_headerless_pair_tsv(path, "en", labels=NLI_LABELS)


def test_invalid_utf8(tmp_path: Path) -> None:
    lines = _real_lines("xnli/dev-ru.tsv.gz", 10)
    blob = "\n".join(lines).encode("utf-8")
    cut = blob.index(lines[6].encode("utf-8")) + 1  # inside line 7 (Cyrillic: two-byte sequences)
    path = tmp_path / "dev-ru.tsv"
    path.write_bytes(blob[:cut] + b"\xff" + blob[cut:])
    with pytest.raises(DataFormatError) as err:
        read_headerless_pair_tsv(path, "ru", labels=NLI_LABELS)
    assert "dev-ru.tsv, line 7: expected UTF-8 text, got invalid byte(s)" in str(err.value)


def test_gzip_is_transparent(tmp_path: Path) -> None:
    lines = _real_lines("xnli/dev-th.tsv.gz", 25)
    plain = _write(tmp_path, "dev-th.tsv", lines)
    packed = tmp_path / "dev-th.tsv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_headerless_pair_tsv(plain, "th", labels=NLI_LABELS) == \
        read_headerless_pair_tsv(packed, "th", labels=NLI_LABELS)


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "dev-fr.tsv.gz"
    path.write_bytes((data_root() / "xnli/dev-fr.tsv.gz").read_bytes()[:500])
    with pytest.raises(DataFormatError, match=r"dev-fr\.tsv\.gz: expected a valid gzip stream"):
        read_headerless_pair_tsv(path, "fr", labels=NLI_LABELS)
