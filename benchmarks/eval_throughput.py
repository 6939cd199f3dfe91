"""Evaluation throughput: xstilts' predict vs a naive loop vs Hugging Face ``Trainer.predict``.

The same PAN-X model and the same real PAN-X dev sentences (a few languages),
through three paths, alternating in rounds within one process (median of the
rounds), after one untimed warm-up pass of each:

a. xstilts: ``xstilts.evaluation.predict.predict`` -- batches of similar length
   (longest first), ``torch.inference_mode``, a bf16 copy of the model where the
   CPU has bf16 matmuls (what ``xstilts evaluate`` runs); ``xstilts_autocast`` beside
   it runs the same batches with bf16 autocast on the fp32 model, for comparison;
b. naive: fp32, every row padded to ``max_length``, file order, batch 32, ``no_grad``;
c. Hugging Face: ``Trainer.predict`` with its best CPU settings -- ``bf16=True``,
   ``use_cpu=True``, dynamic padding (``DataCollatorForTokenClassification``),
   batch size 32 (its fastest here among 8, 16, 32, 64) -- on an ``XLMRobertaForTokenClassification`` that
   holds the xstilts encoder and tagging-head weights. It runs twice: with bf16
   autocast (``hf_trainer``) and with ``bf16_full_eval=True`` as well
   (``hf_trainer_full_bf16``, the model cast to bf16); the ratio is taken against
   the faster of the two.

All three start from the same tokenized windows (featurization is shared and not
timed) and end with one tag per word (first sub-token), scored with seqeval;
the F1 of every path must agree with (a) within 0.5 point.

    python benchmarks/eval_throughput.py --model models:/xstilts-target-panx/1
    python benchmarks/eval_throughput.py --train-steps 150   # trains a 12-layer PAN-X model first

Trainer's ``group_by_length`` is left off: for prediction it would return the
logits in the sampler's shuffled order, not the dataset's.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch


def train_model(steps: int, layers: int | None, tracking_dir: str) -> str:
    """A PAN-X target model trained ``steps`` steps on real English rows; returns its URI."""
    import os

    from xstilts.config import PhaseConfig, TaskData, TrainingArgs
    from xstilts.training.phase import run_phase

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tracking_dir}/mlflow.db"
    cfg = PhaseConfig(phase="target", selection="last", num_hidden_layers=layers, seed=1,
                      tasks=[TaskData(task="panx", languages=["en"], split="train", max_examples=16 * steps)],
                      training=TrainingArgs(batch_size=16, max_steps=steps, max_length=128))
    return run_phase(cfg, progress=False).model_uri


def load_data(task, tokenizer, langs, max_examples, max_length):
    from xstilts.data.loading import load_examples
    from xstilts.data.task_features import task_features
    from xstilts.evaluation.predict import EvalData

    out = []
    for lang in langs:
        examples = load_examples("panx", lang, "dev", max_examples=max_examples)
        feats = task_features(task, examples, tokenizer, lang=lang, split="dev", max_length=max_length)
        out.append(EvalData(task, lang, "dev", examples, feats))
    return out


def tags_from_token_predictions(data, token_preds) -> list[list[str]]:
    from xstilts.data.featurize.tagging import word_predictions

    labels = data.task.labels
    return [[labels[i] for i in row] for row in word_predictions(data.features.features, token_preds, data.examples)]


def run_xstilts(model, head, datasets, bf16, batch_size, max_tokens):
    from xstilts.evaluation.predict import predict

    return [predict(model, head, d, batch_size=batch_size, bf16=bf16, max_tokens=max_tokens) for d in datasets]


def run_naive(model, head, datasets, max_length, pad_id, batch_size=32):
    out = []
    model.eval()
    with torch.no_grad():
        for d in datasets:
            feats = d.features.features
            preds = []
            for start in range(0, len(feats), batch_size):
                rows = feats[start:start + batch_size]
                ids = torch.full((len(rows), max_length), pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), max_length), dtype=torch.long)
                for i, f in enumerate(rows):
                    ids[i, :len(f.input_ids)] = torch.as_tensor(np.asarray(f.input_ids, dtype=np.int64))
                    mask[i, :len(f.input_ids)] = 1
                logits = model(head, {"input_ids": ids, "attention_mask": mask}).logits
                preds += [p[:len(f.input_ids)] for f, p in zip(rows, logits.argmax(-1).numpy())]
            out.append(tags_from_token_predictions(d, preds))
    return out


def hf_token_model(model, head):
    """``XLMRobertaForTokenClassification`` holding the xstilts encoder and tagging head."""
    from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification

    spec = model.head_specs[head]
    config = XLMRobertaConfig(**{**model.config.to_dict(), "num_labels": spec.num_labels})
    hf = XLMRobertaForTokenClassification(config)
    missing, unexpected = hf.roberta.load_state_dict(model.encoder.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"encoder weights do not map: missing {missing[:3]}, unexpected {unexpected[:3]}")
    hf.classifier.load_state_dict(model.heads[head].classifier.state_dict())
    return hf.eval()


def hf_trainers(hf_model, tokenizer, datasets, batch_size, out_dir, full_bf16=False):
    from datasets import Dataset
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

    args = TrainingArguments(output_dir=out_dir, per_device_eval_batch_size=batch_size, bf16=True, use_cpu=True,
                             bf16_full_eval=full_bf16, report_to=[], disable_tqdm=True, dataloader_num_workers=0)
    trainer = Trainer(model=hf_model, args=args, data_collator=DataCollatorForTokenClassification(tokenizer))
    hf_sets = [Dataset.from_dict({"input_ids": [list(map(int, f.input_ids)) for f in d.features.features],
                                  "labels": [list(map(int, f.labels)) for f in d.features.features]})
               for d in datasets]
    return trainer, hf_sets


def run_trainer(trainer, hf_sets, datasets):
    out = []
    for d, ds in zip(datasets, hf_sets):
        logits = trainer.predict(ds).predictions
        preds = [p[:len(f.input_ids)] for f, p in zip(d.features.features, logits.argmax(-1))]
        out.append(tags_from_token_predictions(d, preds))
    return out


def f1(datasets, predictions) -> float:
    """Mean seqeval F1 over the languages."""
    from xstilts.evaluation.predict import score

    return float(np.mean([score(d, p)["f1"] for d, p in zip(datasets, predictions)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="models:/NAME/VERSION or an xstilts PAN-X model directory")
    parser.add_argument("--train-steps", type=int, default=0, help="Without --model: train a PAN-X model first.")
    parser.add_argument("--layers", type=int, default=None, help="With --train-steps: keep N encoder layers.")
    parser.add_argument("--langs", default="de,ru,zh,ar,sw")
    parser.add_argument("--max-examples", type=int, default=300, help="Sentences per language.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="(a): at most N rows and 1024 padded tokens per batch (xstilts' defaults).")
    parser.add_argument("--hf-batch-size", type=int, default=32,
                        help="(c): the Trainer's fastest here among 8, 16, 32 and 64.")
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    from xstilts.evaluation.runner import DEFAULT_MAX_TOKENS, load_eval_model, resolve_head
    from xstilts.runtime.cpu import resolve_bf16, set_threads
    from xstilts.tasks import get_task

    hf_logging.set_verbosity_error()
    threads = set_threads(None)
    tmp = tempfile.mkdtemp(prefix="xstilts-bench-")
    ref = args.model or train_model(args.train_steps, args.layers, tmp)
    task = get_task("panx")
    em = load_eval_model(ref, needs_head=True)
    head = resolve_head(em.model, task)
    bf16 = resolve_bf16(None)
    datasets = load_data(task, em.tokenizer, args.langs.split(","), args.max_examples, args.max_length)
    n = sum(len(d.examples) for d in datasets)
    trainer, hf_sets = hf_trainers(hf_token_model(em.model, head), em.tokenizer, datasets, args.hf_batch_size, tmp)
    # its own model object: bf16_full_eval casts the model it holds in place
    trainer16, _ = hf_trainers(hf_token_model(em.model, head), em.tokenizer, datasets, args.hf_batch_size, tmp,
                               full_bf16=True)
    fast = em.bf16_model() if bf16 else em.model  # what `xstilts evaluate` predicts with
    paths = {
        "xstilts": lambda: run_xstilts(fast, head, datasets, bf16, args.batch_size, DEFAULT_MAX_TOKENS),
        "xstilts_autocast": lambda: run_xstilts(em.model, head, datasets, bf16, args.batch_size, DEFAULT_MAX_TOKENS),
        "naive": lambda: run_naive(em.model, head, datasets, args.max_length, em.tokenizer.pad_token_id),
        "hf_trainer": lambda: run_trainer(trainer, hf_sets, datasets),
        "hf_trainer_full_bf16": lambda: run_trainer(trainer16, hf_sets, datasets),
    }
    print(f"model {ref} ({em.model.config.num_hidden_layers} layers), {n} PAN-X dev sentences "
          f"({args.langs}, {args.max_examples} each), {threads} threads, xstilts bf16={bf16}, "
          f"torch {torch.__version__}")
    for fn in paths.values():  # warm-up: first-call kernel selection is not part of the figures
        fn()
    seconds: dict[str, list[float]] = {k: [] for k in paths}
    scores: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, fn in paths.items():
            start = time.perf_counter()
            predictions = fn()
            seconds[name].append(time.perf_counter() - start)
            scores[name] = f1(datasets, predictions)
    rate = {k: n / statistics.median(v) for k, v in seconds.items()}
    for name in paths:
        print(f"{name:<20} {rate[name]:8.1f} examples/s  (median of {args.rounds}: "
              f"{', '.join(f'{s:.2f}' for s in seconds[name])} s)  F1 {scores[name]:.2f}")
    best_hf = max(("hf_trainer", "hf_trainer_full_bf16"), key=rate.get)
    print(f"xstilts / naive                   {rate['xstilts'] / rate['naive']:.2f}x")
    print(f"xstilts / xstilts_autocast        {rate['xstilts'] / rate['xstilts_autocast']:.2f}x")
    print(f"xstilts / best Trainer.predict    {rate['xstilts'] / rate[best_hf]:.2f}x  ({best_hf})")
    worst = max(abs(scores[k] - scores["xstilts"]) for k in scores)
    print(f"F1 agreement: largest difference {worst:.2f} point(s) "
          f"({'within' if worst <= 0.5 else 'NOT within'} 0.5)")


if __name__ == "__main__":
    main()
