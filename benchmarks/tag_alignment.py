"""Tagging label alignment: XTREME's first sub-token vs first_content, on zh/ja/th (PAN-X, UD-POS).

For each task, alignment and seed: train the target head on English (the same examples,
seed and steps for both alignments), then score English and the languages whose words
open with a lone ``▁`` piece. Also counts how often a word's first piece is that lone
``▁`` per language, the mechanism the alignment is about. No MLflow: work functions only.

    nice -n 19 python benchmarks/tag_alignment.py --train 1000 --epochs 1 --seeds 0 1 --out tag_alignment.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

LANGS = {"panx": ["en", "zh", "ja"], "udpos": ["en", "zh", "ja", "th"]}
SPLIT = {"panx": "dev", "udpos": "test"}  # PAN-X zh/ja: only dev is vendored; UD-POS th: only test


def lone_space_share(task: str, lang: str, split: str, tokenizer, n: int) -> float:
    """Percent of words whose first piece is the lone '▁' (is_split_into_words=True)."""
    from xstilts.data.loading import load_examples

    examples = load_examples(task, lang, split, max_examples=n)
    enc = tokenizer([list(ex.words) for ex in examples], is_split_into_words=True, add_special_tokens=False)
    first = lone = 0
    for row in range(len(examples)):
        previous = None
        for pos, w in enumerate(enc.word_ids(row)):
            if w is not None and w != previous:
                first += 1
                lone += enc.tokens(row)[pos] == "\u2581"
            previous = w
    return 100.0 * lone / max(first, 1)


def run_one(task: str, alignment: str, seed: int, args) -> dict:
    from xstilts.config import PhaseConfig, TaskData, TrainingArgs
    from xstilts.evaluation.runner import evaluate_model
    from xstilts.tasks.declared import declare_datasets
    from xstilts.training.phase import NullTracker, train_phase

    name = task
    if alignment != "first_subtoken":
        name = f"{task}-{alignment.replace('_', '-')}"
        declare_datasets([{"name": name, "extends": task, "tag_alignment": alignment}])
    cfg = PhaseConfig(phase="target", seed=seed, selection="last", register=False,
                      num_hidden_layers=args.layers,
                      tasks=[TaskData(task=name, languages=["en"], split="train", max_examples=args.train,
                                      dev_languages=["en"], max_dev_examples=100)],
                      training=TrainingArgs(epochs=args.epochs, batch_size=16, learning_rate=1e-4, max_length=128,
                                            threads=args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_phase(cfg, NullTracker(), model_dir=Path(tmp) / "model", progress=False)
        trained = time.perf_counter() - start
        report = evaluate_model(str(Path(tmp) / "model"), name, langs=LANGS[task], split=SPLIT[task],
                                max_examples=args.eval, out_dir=tmp, log_to_mlflow=False, progress=False)
    return {"task": task, "alignment": alignment, "seed": seed, "train_seconds": round(trained, 1),
            "scores": {r.lang: r.scores for r in report.languages}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--eval", type=int, default=300)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--layers", type=int, default=None, help="cut the encoder to N layers (default: all 12)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--tasks", nargs="+", default=["panx", "udpos"])
    p.add_argument("--out", default="tag_alignment.json")
    args = p.parse_args()
    from xstilts.encoders.loading import load_tokenizer

    tok = load_tokenizer("default")
    result = {"args": vars(args), "lone_space_first_piece_percent": {
        t: {lang: round(lone_space_share(t, lang, SPLIT[t], tok, args.eval), 1) for lang in LANGS[t]}
        for t in args.tasks}, "runs": []}
    for task in args.tasks:
        for seed in args.seeds:
            for alignment in ("first_subtoken", "first_content"):
                result["runs"].append(run_one(task, alignment, seed, args))
                print(json.dumps(result["runs"][-1]), flush=True)
                Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
