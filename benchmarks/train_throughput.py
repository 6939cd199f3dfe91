"""Training throughput: xstilts vs the Hugging Face Trainer, same model, data, seed.

Paths, each on the same examples (real PAN-X English sentences or XNLI English
rows), the same encoder (the offline default unless --model), batch size,
learning rate, warmup, weight decay and seed:
  (a) xstilts: its defaults (length-grouped dynamic batches, where the CPU has bf16:
      a bf16 model with fp32 master weights for the optimizer, fused AdamW, frozen
      word embeddings); --bf16-mode autocast trains it under torch.autocast instead;
  (b) Trainer with the example scripts' defaults: fp32, padding to max_length;
  (c) Trainer with its best settings for this CPU: dynamic padding,
      train_sampling_strategy="group_by_length", and bf16 only where the CPU has
      native bf16 (AVX512-BF16 or AMX; emulated bf16 is slower than fp32), else fp32.
One untimed warm-up round runs first (oneDNN picks kernels per matmul shape on
first use, and the first path to meet a shape would otherwise pay for it).
Rounds alternate the paths within this one process; each round times (a) and (c)
over one whole epoch (every batch of the epoch, so both pay for their own
padding and long-tail batches) and (b) over --steps steps (its batches all have
the same padded shape); the first step of each is excluded (warm-up); the
figure is the median over rounds.

Goals, each a ratio measured within this one run: (a)'s step time at most 2x the
time of the same steps' matmuls alone (every (batch, padded length) (a) trained
on, its dense and attention products forward and backward in (a)'s compute
dtype, timed in isolation, best of repeats), and (a) at least 2.5x (c). The CPU
model, the flags that matter (AVX-512, AVX512-BF16, AMX, VNNI) and the measured
matmul peak (bf16 where native, else fp32: an AVX2-only CPU spent minutes in an
emulated bf16 peak) are printed with every absolute figure. Model FLOP
utilisation = 6 x (encoder parameters outside the embeddings) x real tokens per
second over that peak. Then each path trains --epochs over all examples and its
English dev metric is computed by the same xstilts evaluation code;
--noise-seeds more xstilts runs with other seeds show how far the metric moves
with the seed alone.

    python benchmarks/train_throughput.py --task panx --n-train 1000 --rounds 3 --epochs 3
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from xstilts.config import TrainingArgs
from xstilts.data.loading import load_examples
from xstilts.data.task_features import task_features
from xstilts.encoders.loading import load_encoder, load_tokenizer, resolve_model
from xstilts.families import TAGGING
from xstilts.evaluation.predict import EvalData, headline, predict, score
from xstilts.models.multitask import HeadSpec, TaskOutput, XstiltsModel
from xstilts.runtime.cpu import resolve_bf16, set_threads
from xstilts.tasks import get_task
from xstilts.training.loop import TrainSet, train

SEED = 42


PEAK_SHAPES = ((2048, 2048, 2048), (4096, 4096, 4096), (4096, 384, 1536), (4096, 1536, 384))
#: Without native bf16 the fp32 peak is measured, and not at the 4,096-cube: on an AVX2-only CPU
#: (about 83 GFLOP/s) each of its products takes seconds, and the emulated bf16 one took minutes.
FP32_PEAK_SHAPES = ((2048, 2048, 2048), (4096, 384, 1536), (4096, 1536, 384))
FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512F", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI",
         "avx512_bf16": "AVX512-BF16", "amx_tile": "AMX", "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8"}


def cpu_description() -> str:
    """The CPU model and the flags that decide matmul speed (from /proc/cpuinfo)."""
    model, flags = "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    have = [name for flag, name in FLAGS.items() if flag in flags]
    missing = [name for flag, name in FLAGS.items() if flag not in flags]
    return f"{model}; has {', '.join(have) or 'none of them'}; lacks {', '.join(missing) or 'none'}"


def matmul_dtype() -> torch.dtype:
    """bf16 where the CPU multiplies bf16 natively (AVX512-BF16 or AMX), else fp32."""
    return torch.bfloat16 if resolve_bf16(None) else torch.float32


def peak_gflops(dtype: torch.dtype, reps: int = 10) -> tuple[float, tuple[int, int, int]]:
    """Best matmul rate in ``dtype`` over a few shapes (square, and the encoder's FFN shapes at 4,096 tokens).

    One square shape alone understates the peak: on an AMX CPU oneDNN runs the
    FFN-shaped products faster than a 2,048-square one.
    """
    shapes = PEAK_SHAPES if dtype == torch.bfloat16 else FP32_PEAK_SHAPES
    best_rate, best_shape = 0.0, shapes[0]
    for m, k, n in shapes:
        a = torch.randn(m, k, dtype=dtype)
        b = torch.randn(k, n, dtype=dtype)
        for _ in range(2):
            a @ b
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            rate = 2 * m * k * n / (time.perf_counter() - t) / 1e9
            if rate > best_rate:
                best_rate, best_shape = rate, (m, k, n)
    return best_rate, best_shape


def _best_seconds(fn, reps: int) -> float:
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def step_matmul_seconds(batch: int, length: int, config, dtype: torch.dtype, reps: int = 5) -> tuple[float, float]:
    """(seconds, FLOPs) of one training step's matmuls alone at a ``batch`` x ``length`` batch.

    Every layer: the four attention projections, FFN up and down, and the two attention
    products (scores and weighted values, per head), each as its forward product and the two
    backward ones (input and weight gradients); times the number of layers. No element-wise
    work, softmax, norms, dropout or optimizer: the floor a step at this shape cannot go under.
    """
    hidden, ffn, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    tokens, d = batch * length, hidden // heads
    flops, seconds = 0, 0.0
    for k, n in [(hidden, hidden)] * 4 + [(hidden, ffn), (ffn, hidden)]:
        x, w, g = (torch.randn(tokens, k, dtype=dtype), torch.randn(n, k, dtype=dtype),
                   torch.randn(tokens, n, dtype=dtype))
        for fn in (lambda: x @ w.t(), lambda: g @ w, lambda: g.t() @ x):
            seconds += _best_seconds(fn, reps)
            flops += 2 * tokens * k * n
    q, kk = torch.randn(batch * heads, length, d, dtype=dtype), torch.randn(batch * heads, length, d, dtype=dtype)
    s = torch.randn(batch * heads, length, length, dtype=dtype)
    for fn in (lambda: q @ kk.transpose(1, 2), lambda: s @ kk, lambda: s.transpose(1, 2) @ q,   # scores
               lambda: s @ q, lambda: s.transpose(1, 2) @ q, lambda: q @ kk.transpose(1, 2)):   # values
        seconds += _best_seconds(fn, reps)
        flops += 2 * batch * heads * length * length * d
    return seconds * config.num_hidden_layers, flops * config.num_hidden_layers


def record_shapes(model) -> list[tuple[int, int]]:
    """The (batch, padded length) of every forward pass of ``model`` from now on (a hook)."""
    shapes: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda _m, args, kwargs: shapes.append(tuple(
        (kwargs.get("input_ids") if kwargs.get("input_ids") is not None else args[0]).shape)), with_kwargs=True)
    return shapes


@dataclass
class Timing:
    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    _last: float = 0.0
    _steps: int = 0
    shapes: list = field(default_factory=list)  # (batch, padded length) of every step (xstilts path)

    def start(self) -> None:
        self._last = time.perf_counter()

    def step(self, examples: int, tokens: int) -> None:
        now = time.perf_counter()
        self._steps += 1
        if self._steps > 1:  # first step: allocator and kernel warm-up
            self.examples += examples
            self.tokens += tokens
            self.seconds += now - self._last
        self._last = now


class HFAdapter(torch.nn.Module):
    """Lets xstilts' evaluation code call a Hugging Face task model."""

    def __init__(self, hf_model) -> None:
        super().__init__()
        self.hf = hf_model

    def forward(self, task, batch):
        return TaskOutput(None, self.hf(**batch).logits)


def matmul_floor(shapes, config, dtype, cache: dict) -> float:
    """Seconds the matmuls alone of steps at ``shapes`` take (each shape timed once, then summed)."""
    total = 0.0
    for shape in shapes:
        if shape not in cache:
            cache[shape] = step_matmul_seconds(shape[0], shape[1], config, dtype)
        total += cache[shape][0]
    return total


def dense_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)


# -- data ---------------------------------------------------------------------------------------

def load_data(task_name: str, n_train: int, n_dev: int):
    task = get_task(task_name)
    if task_name == "xnli":
        # XNLI's English training data (MultiNLI) is not vendored: split the real English dev rows.
        rows = load_examples("xnli", "en", "dev")
        return task, rows[:n_train], rows[n_train:n_train + n_dev]
    return task, load_examples(task_name, "en", "train", max_examples=n_train), \
        load_examples(task_name, "en", "dev", max_examples=n_dev)


def hf_dataset(task, examples, tokenizer, *, pad_to_max: bool, max_length: int):
    from datasets import Dataset

    label_id = {label: i for i, label in enumerate(task.labels)}
    if task.family is TAGGING:
        enc = tokenizer([list(ex.words) for ex in examples], is_split_into_words=True, truncation=True,
                        max_length=max_length, padding="max_length" if pad_to_max else False)
        labels = []
        for i, ex in enumerate(examples):
            prev, row = None, []
            for w in enc.word_ids(i):
                row.append(-100 if w is None or w == prev else label_id[ex.tags[w]])
                prev = w
            labels.append(row)
    else:
        enc = tokenizer([ex.text_a for ex in examples], [ex.text_b for ex in examples], truncation=True,
                        max_length=max_length, padding="max_length" if pad_to_max else False)
        labels = [label_id[ex.label] for ex in examples]
    return Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                              "labels": labels})


# -- the three paths ----------------------------------------------------------------------------

def xstilts_model(task, model_ref, layers, seed: int = SEED):
    torch.manual_seed(seed)
    model = XstiltsModel(load_encoder(model_ref, num_hidden_layers=layers),
                         [HeadSpec(task.name, task.family.name, len(task.labels))], seed=seed)
    model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    return model


def run_xstilts(task, train_ex, tokenizer, args, *, steps: int | None, epochs: float, seed: int = SEED):
    model = xstilts_model(task, args.model, args.layers, seed)
    tf = task_features(task, train_ex, tokenizer, lang="en", split=f"bench{len(train_ex)}", max_length=args.max_length)
    sets = [TrainSet(task.name, tf.features, tf.collate, tf.units)]
    targs = TrainingArgs(learning_rate=args.lr, batch_size=args.batch_size, epochs=epochs, max_steps=steps or 0,
                         warmup_ratio=0.1, weight_decay=0.01, max_length=args.max_length, bf16_mode=args.bf16_mode)
    timing = Timing()
    timing.shapes = record_shapes(model.encoder)
    timing.start()
    train(model, sets, targs, seed=seed, bf16=resolve_bf16(None), progress=False,
          on_step=lambda s, e, t: timing.step(e, t))
    return model, timing


def run_trainer(task, train_ex, tokenizer, args, *, best: bool, steps: int | None, epochs: float, out_dir: str):
    from transformers import (AutoModelForSequenceClassification, AutoModelForTokenClassification,
                              DataCollatorForTokenClassification, DataCollatorWithPadding, Trainer,
                              TrainerCallback, TrainingArguments, default_data_collator)

    path = resolve_model(args.model)
    cls = AutoModelForTokenClassification if task.family is TAGGING else AutoModelForSequenceClassification
    torch.manual_seed(SEED)
    overrides = {"num_hidden_layers": args.layers} if args.layers else {}
    model = cls.from_pretrained(path, num_labels=len(task.labels), **overrides)
    ds = hf_dataset(task, train_ex, tokenizer, pad_to_max=not best, max_length=args.max_length)
    if best:
        collator = (DataCollatorForTokenClassification(tokenizer) if task.family is TAGGING
                    else DataCollatorWithPadding(tokenizer))
    else:
        collator = default_data_collator
    timing = Timing()

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            timing.start()

        def on_step_end(self, targs, state, control, **k):
            timing.step(args.batch_size, 0)

    extra = {"train_sampling_strategy": "group_by_length"} if best else {}
    targs = TrainingArguments(output_dir=out_dir, per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
                              warmup_steps=0.1, weight_decay=0.01, num_train_epochs=epochs,
                              max_steps=steps or -1, seed=SEED, bf16=best and resolve_bf16(None), use_cpu=True,
                              report_to=[],
                              save_strategy="no", logging_strategy="no", disable_tqdm=True,
                              dataloader_num_workers=0, **extra)
    trainer = Trainer(model=model, args=targs, train_dataset=ds, data_collator=collator, callbacks=[Clock()])
    trainer.train()
    if steps is None and epochs == 1:
        # The Trainer's clock counts full batches; the epoch's last batch is shorter.
        timing.examples = min(timing.examples, len(train_ex) - args.batch_size)
    # Trainer counts examples, not tokens: tokens per step = the batch's real tokens, measured from the data.
    return HFAdapter(model), timing


def dev_metric(task, model, dev_ex, tokenizer, args) -> float:
    tf = task_features(task, dev_ex, tokenizer, lang="en", split=f"benchdev{len(dev_ex)}", max_length=args.max_length)
    data = EvalData(task, "en", "dev", dev_ex, tf)
    return headline(task, score(data, predict(model, task.name, data, batch_size=64, bf16=False)))


def main() -> None:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="panx", choices=["panx", "xnli"])
    p.add_argument("--model", default="default")
    p.add_argument("--layers", type=int, default=None, help="Keep the first N layers (smoke runs).")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-dev", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=8, help="Timed steps of (b) per round ((a), (c): one epoch).")
    p.add_argument("--epochs", type=float, default=3.0, help="Epochs of the full run that gives the dev metric; "
                                                               "0 skips it.")
    p.add_argument("--noise-seeds", type=int, default=2, help="Extra xstilts full runs with other seeds.")
    p.add_argument("--full-runs", default="abc", help="Paths that train --epochs for the dev metric "
                                                      "((b) takes ~9 min for 3 epochs of 1,000 sentences here).")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--bf16-mode", default="weights", choices=["weights", "autocast"],
                   help="(a): bf16 model + fp32 masters (xstilts' default) or autocast.")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="Skip the untimed warm-up round.")
    args = p.parse_args()
    import transformers

    transformers.logging.set_verbosity_error()  # the load reports of the head-less checkpoint are expected
    threads = set_threads(args.threads)
    tokenizer = load_tokenizer(args.model)
    task, train_ex, dev_ex = load_data(args.task, args.n_train, args.n_dev)
    # Real tokens per example under dynamic padding, for the Trainer paths' FLOP count.
    lens = [len(f.input_ids) for f in task_features(task, train_ex, tokenizer, lang="en",
                                                       split=f"bench{len(train_ex)}", max_length=args.max_length).features]
    tokens_per_example = float(np.mean(lens))
    dtype = matmul_dtype()
    dname = "bf16" if dtype == torch.bfloat16 else "fp32"
    peak, peak_shape = peak_gflops(dtype)
    at = f"[{dname} matmul peak here {peak:.0f} GFLOP/s]"  # beside every absolute figure
    encoder = load_encoder(args.model, num_hidden_layers=args.layers)
    n_dense = dense_params(encoder)
    print(f"CPU: {cpu_description()}")
    print(f"task {args.task}: {len(train_ex)} train / {len(dev_ex)} dev examples, {tokens_per_example:.1f} tokens "
          f"per example, batch {args.batch_size}, {threads} threads, {dname} matmul peak {peak:.0f} GFLOP/s "
          f"(at {'x'.join(map(str, peak_shape))}), {n_dense / 1e6:.1f} M dense encoder parameters, "
          f"{encoder.config.num_hidden_layers} layers; (a) bf16={resolve_bf16(None)} mode {args.bf16_mode}; "
          f"(c) bf16={resolve_bf16(None)}; torch {torch.__version__}")
    best_c = f"Trainer best CPU ({dname}, dynamic+grouped)"
    names = {"a": "xstilts", "b": "Trainer fp32 pad-to-max", "c": best_c}
    rates: dict[str, list[float]] = {k: [] for k in names}
    ratios: list[float] = []          # (a)'s step time over the same steps' matmuls alone
    matmul_cache: dict[tuple[int, int], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.warmup:
            t0 = time.perf_counter()
            run_xstilts(task, train_ex, tokenizer, args, steps=None, epochs=1)
            run_trainer(task, train_ex, tokenizer, args, best=False, steps=2, epochs=1, out_dir=tmp)
            run_trainer(task, train_ex, tokenizer, args, best=True, steps=None, epochs=1, out_dir=tmp)
            print(f"  warm-up round (untimed): {time.perf_counter() - t0:.0f} s {at}", flush=True)
        for r in range(args.rounds):
            for key in "abc":
                if key == "a":
                    _, t = run_xstilts(task, train_ex, tokenizer, args, steps=None, epochs=1)
                    mm = matmul_floor(t.shapes[1:], encoder.config, dtype, matmul_cache)  # step 1 is not timed
                    ratios.append(t.seconds / mm)
                else:
                    _, t = run_trainer(task, train_ex, tokenizer, args, best=key == "c",
                                       steps=args.steps if key == "b" else None, epochs=1, out_dir=tmp)
                rates[key].append(t.examples / t.seconds)
                extra = (f"; {t.seconds:.2f} s of steps vs {mm:.2f} s of their matmuls alone = {ratios[-1]:.2f}x"
                         if key == "a" else "")
                print(f"  round {r + 1} {names[key]:<36} {rates[key][-1]:7.1f} ex/s{extra} {at}", flush=True)
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"\nmedian examples/s over rounds {at}")
        for k in "abc":
            flops = 6 * n_dense * tokens_per_example * med[k]
            print(f"  ({k}) {names[k]:<36} {med[k]:7.1f} ex/s   MFU {100 * flops / 1e9 / peak:5.1f} % of the "
                  f"{dname} peak")
        ratio = statistics.median(ratios)
        print(f"  step time / matmuls alone (a) = {ratio:.2f}x (goal <= 2x)   "
              f"ratio (a)/(b) = {med['a'] / med['b']:.2f}x   ratio (a)/(c) = {med['a'] / med['c']:.2f}x (goal >= 2.5x)")
        if args.epochs > 0:
            print(f"\nfull runs, {args.epochs:g} epochs each, English dev {task.metric} (same evaluation code):")
            for key in [k for k in "abc" if k in args.full_runs]:
                t0 = time.perf_counter()
                if key == "a":
                    model, _ = run_xstilts(task, train_ex, tokenizer, args, steps=None, epochs=args.epochs)
                else:
                    model, _ = run_trainer(task, train_ex, tokenizer, args, best=key == "c", steps=None,
                                           epochs=args.epochs, out_dir=tmp)
                m = dev_metric(task, model, dev_ex, tokenizer, args)
                print(f"  ({key}) {names[key]:<36} dev {m:6.2f}   ({time.perf_counter() - t0:.0f} s {at})", flush=True)
            for extra in range(1, args.noise_seeds + 1):
                t0 = time.perf_counter()
                model, _ = run_xstilts(task, train_ex, tokenizer, args, steps=None, epochs=args.epochs,
                                       seed=SEED + extra)
                m = dev_metric(task, model, dev_ex, tokenizer, args)
                print(f"  (a) xstilts, seed {SEED + extra:<24} dev {m:6.2f}   ({time.perf_counter() - t0:.0f} s {at})",
                      flush=True)


if __name__ == "__main__":
    main()
