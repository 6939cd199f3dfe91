"""Vendor the real-data subset into ``data/`` and write ``data/MANIFEST.md``.

Two steps, both reproducible:

``python data/make_manifest.py vendor --from ../shared/data``
    copies (and, where a rule says so, truncates) the files the default run and the
    tests need from a full data bundle, and records their provenance (source, licence,
    truncation) in ``data/provenance.json``.

``python data/make_manifest.py``
    recomputes example counts and sha256 of every vendored file and rewrites
    ``MANIFEST.md`` from ``provenance.json``. Counts are computed here with simple,
    format-level rules (blank-line separated blocks, JSON ``qas``, lines, csv rows) that
    do not share code with the xstilts readers, so the tests that compare reader output
    with the manifest check the readers against an independent count.
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import gzip
import hashlib
import io
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROVENANCE = HERE / "provenance.json"
MANIFEST = HERE / "MANIFEST.md"

# XTREME's language lists (google-research/xtreme scripts/train_panx.sh, train_udpos.sh,
# restricted to the XTREME (not XTREME-R) languages).
PANX_LANGS = ("ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es "
              "bg ru ja ka ko th sw yo my zh kk tr et fi hu").split()
UDPOS_LANGS = ("af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te "
               "th tl tr ur vi yo zh").split()
MLQA_LANGS = "en ar de es hi vi zh".split()
# google-research/xtreme utils_preprocess.py tatoeba lang3_dict (36 languages, paired with eng).
TATOEBA_LANGS3 = ("afr ara ben bul cmn deu ell est eus fin fra heb hin hun ind ita jav jpn kat kaz "
                  "kor mal mar nld pes por rus spa swh tam tel tgl tha tur urd vie").split()

SENTENCES_PER_EVAL_FILE = {"panx": 1000, "udpos": 300}

# (glob relative to the bundle, truncation or None). Order matters only for readability.
RULES: list[tuple[str, tuple[str, int] | None]] = [
    ("xnli/dev-*.tsv.gz", None),
    ("pawsx/dev-*.tsv.gz", None),
    ("pawsx/x-final/*/*.tsv.gz", None),
    ("panx/train-en.tsv.gz", None),
    *[(f"panx/dev-{lang}.tsv*", ("sentences", SENTENCES_PER_EVAL_FILE["panx"])) for lang in PANX_LANGS],
    ("udpos/English-GUM/en_gum-ud-train.conllu*", None),
    *[(f"udpos/*/{lang}_*-ud-*.conllu*", ("license", 0)) for lang in UDPOS_LANGS],
    *[(f"udpos/*/{lang}_*-ud-dev.conllu*", ("sentences", SENTENCES_PER_EVAL_FILE["udpos"]))
      for lang in UDPOS_LANGS],
    *[(f"udpos/*/{lang}_*-ud-test.conllu*", ("sentences", SENTENCES_PER_EVAL_FILE["udpos"]))
      for lang in UDPOS_LANGS],
    ("xquad/*", None),
    *[(f"mlqa/MLQA_V1/dev/dev-context-{lang}-question-{lang}.json*", None) for lang in MLQA_LANGS],
    ("tydiqa/tydiqa-goldp-v1.1-dev/*", None),
    ("tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json.gz", None),
    ("bucc2018/*", None),
    ("sst2/*", None),
    ("commonsenseqa/*", None),
    ("cosmosqa/*", None),
    ("hf_dummy_samples/**/*", None),
    ("tatoeba/README.md", None),
    *[(f"tatoeba/tatoeba.{lang}-eng.*", None) for lang in TATOEBA_LANGS3],
]


def _open_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def _write_maybe_gz(path: Path, text: bytes) -> None:
    if path.name.endswith(".gz"):
        buf = io.BytesIO()
        # mtime=0 and no file name keep the .gz bytes (and so the sha256) reproducible.
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
            gz.write(text)
        path.write_bytes(buf.getvalue())
    else:
        path.write_bytes(text)


def _first_sentences(text: bytes, n: int) -> bytes:
    """First ``n`` blank-line separated blocks (CoNLL-U sentences, token-per-line TSV)."""
    out: list[bytes] = []
    count = 0
    in_block = False
    for line in text.splitlines(keepends=True):
        if line.strip():
            in_block = True
            out.append(line)
        elif in_block:
            out.append(line)
            in_block = False
            count += 1
            if count == n:
                break
    return b"".join(out)


def _parse_shared_manifest(bundle: Path) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    for line in (bundle / "MANIFEST.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 9:
            continue
        rel = cells[0].strip("`")
        rows[rel] = {"dataset": cells[1], "split": cells[2], "languages": cells[3],
                     "unit": cells[4].split("[", 1)[1].rstrip("]") if "[" in cells[4] else "-",
                     "source": cells[5], "license": cells[6], "truncated": cells[7]}
    return rows


def vendor(bundle: Path) -> None:
    """Copy the selected files from ``bundle`` into ``data/`` and record provenance."""
    shared = _parse_shared_manifest(bundle)
    provenance: dict[str, dict[str, str]] = {}
    for pattern, trunc in RULES:
        matches = sorted(p for p in bundle.glob(pattern) if p.is_file())
        if trunc is not None and trunc[0] == "license":
            # The licence file of every treebank folder a vendored file comes from.
            matches = sorted({p.parent / "LICENSE.txt" for p in matches if (p.parent / "LICENSE.txt").is_file()})
            trunc = None
        # Per-language eval files are vendored where the bundle has them (it lacks a few).
        if not matches and trunc is None:
            sys.exit(f"no file in {bundle} matches {pattern}")
        for src in matches:
            rel = src.relative_to(bundle).as_posix()
            if rel not in shared:
                sys.exit(f"{rel} is not listed in {bundle / 'MANIFEST.md'}")
            meta = dict(shared[rel])
            dest = HERE / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if trunc is None:
                if dest.resolve() != src.resolve():
                    shutil.copyfile(src, dest)
            else:
                _, n = trunc
                text = _open_bytes(src)
                cut = _first_sentences(text, n)
                _write_maybe_gz(dest, cut)
                if cut != text:
                    meta["truncated"] = (f"yes: first {n} sentences of the source file "
                                         f"(source file holds more)")
            provenance[rel] = meta
    PROVENANCE.write_text(json.dumps(provenance, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                          encoding="utf-8")


def count_examples(path: Path, unit: str) -> int | None:
    """Count examples in a vendored file with format-level rules (independent of readers)."""
    if unit == "-":
        return None
    text = _open_bytes(path).decode("utf-8")
    name = path.name.removesuffix(".gz")
    if unit == "sentences":
        return sum(1 for block in text.split("\n\n") if any(
            ln.strip() and not ln.startswith("#") for ln in block.split("\n")))
    if unit == "questions":
        data = json.loads(text)
        return sum(len(p["qas"]) for art in data["data"] for p in art["paragraphs"])
    if unit == "rows" and name.endswith(".csv"):
        return sum(1 for _ in csv.reader(io.StringIO(text))) - 1
    if unit.startswith("rows (excl. header)"):
        return sum(1 for ln in text.split("\n") if ln.strip()) - 1
    if unit == "lines/records":
        return sum(1 for ln in text.split("\n") if ln.strip())
    raise ValueError(f"{path}: unknown unit {unit!r}")


def _is_noncommercial(license_text: str) -> bool:
    lic = license_text.lower()
    return "nc" in lic.replace("-", " ").split() or "-nc" in lic or "non-commercial" in lic


def write_manifest() -> None:
    provenance = json.loads(PROVENANCE.read_text(encoding="utf-8"))
    rows = []
    total = 0
    for rel in sorted(provenance):
        meta = provenance[rel]
        path = HERE / rel
        blob = path.read_bytes()
        total += len(blob)
        if len(blob) > 5 * 1024 * 1024:
            sys.exit(f"{rel} is larger than 5 MB")
        count = count_examples(path, meta["unit"])
        shown = "-" if count is None else f"{count} [{meta['unit']}]"
        lic = meta["license"] + (" **(non-commercial)**" if _is_noncommercial(meta["license"]) else "")
        rows.append(
            f"| `{rel}` | {meta['dataset']} | {meta['split']} | {meta['languages']} | "
            f"{shown} | {meta['source']} | {lic} | "
            f"{meta['truncated']} | `{hashlib.sha256(blob).hexdigest()}` |")
    if total > 25 * 1024 * 1024:
        sys.exit(f"vendored data is {total / 1e6:.1f} MB, above the 25 MB budget")
    header = f"""# Vendored data manifest

Real data the default run and the tests need, copied from the named public sources
(paths relative to `data/`). Generated by `python data/make_manifest.py` from
`provenance.json`; example counts and sha256 (of the file as stored, i.e. of the `.gz`
where compressed) are computed, not typed. Files ending in `.gz` are gzip-compressed;
xstilts reads them transparently. Truncated files hold the first N sentences of the
source file, as stated in the `truncated` column.

**Licences.** Rows marked **(non-commercial)** (XNLI and ANLI: CC BY-NC 4.0; QQP: Quora
terms; several UD treebanks: CC BY-NC-SA) may be used for non-commercial research only.
BUCC, SST-2, CommonsenseQA and PAN-X come without a licence file in their source
repositories; see the licence column.

Total: {len(rows)} files, {total / 1e6:.1f} MB.

| file | dataset | split | languages | examples [unit] | source | license | truncated | sha256 |
|---|---|---|---|---|---|---|---|---|
"""
    MANIFEST.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd")
    v = sub.add_parser("vendor", help="copy the selected files from a full bundle, then write the manifest")
    v.add_argument("--from", dest="bundle", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "vendor":
        vendor(args.bundle.resolve())
    write_manifest()


if __name__ == "__main__":
    main()
