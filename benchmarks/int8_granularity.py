"""How fine must int8 scales be to keep a PAN-X model's F1? A PyTorch fake-quant simulation.

Every ``nn.Linear`` of the registered target model gets its weight rounded to int8 and its input
to int8 (rounded to a grid and back, in fp32) by one of these schemes, and the model's F1 on PAN-X
dev is compared with the unquantized model's, per language:

  row        weights per output channel, activations per token (what the row-wise export does)
  wonly      weights per output channel, activations untouched
  blockB     weights per output channel, activations per token per block of B inputs
  wblockB    weights and activations both per block of B inputs (per output channel / per token)
  asym       weights per output channel, activations per token with a zero point (min/max)
  bf16w      weights rounded to bfloat16, activations untouched
  bf16       weights and activations rounded to bfloat16
  rowkeepP   row, but the P % of layers most sensitive on English *train* sentences kept fp32
             (sensitivity: the logits' mean squared change when that layer alone is row-quantized)

The simulation leaves out what ONNX Runtime adds (its own kernels, fused ops), so its ``row``
figures differ from the export check's by a few tenths; it tells schemes apart on the same
model and sentences. English is scored beside low-resource languages that the export check does
not use (mr, sw), so a scheme is not judged only by the check's own languages.

    MLFLOW_TRACKING_URI=sqlite:///DIR/mlflow.db python benchmarks/int8_granularity.py \\
        --model models:/xstilts-target-panx@champion --schemes row,wblock64
"""
from __future__ import annotations

import argparse
import time

import torch
from serve_throughput import cpu_info  # one CPU description for every benchmark


def quantize_weight(w: torch.Tensor, block: int = 0) -> torch.Tensor:
    """Symmetric int8 per output channel (a row of ``nn.Linear.weight``), per ``block`` inputs if given."""
    wb = w.reshape(w.shape[0], w.shape[1] // block, block) if block else w.unsqueeze(1)
    scale = wb.abs().amax(-1, keepdim=True).clamp_min(1e-8) / 127
    return (torch.round(wb / scale) * scale).reshape(w.shape)


def quantize_input(x: torch.Tensor, scheme: str) -> torch.Tensor:
    """``x`` as the scheme's int8 (or bf16) activations would carry it, back in fp32."""
    if scheme in ("wonly", "bf16w"):
        return x
    if scheme == "bf16":
        return x.bfloat16().float()
    if scheme == "asym":
        lo, hi = x.amin(-1, keepdim=True).clamp(max=0), x.amax(-1, keepdim=True).clamp(min=0)
        scale = (hi - lo).clamp_min(1e-8) / 255
        zero = torch.round(-lo / scale)
        return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale
    block = block_of(scheme) or x.shape[-1]  # "row": one block spanning the token's row
    xb = x.reshape(*x.shape[:-1], x.shape[-1] // block, block)
    scale = xb.abs().amax(-1, keepdim=True).clamp_min(1e-8) / 127
    return (torch.round(xb / scale) * scale).reshape(x.shape)


def block_of(scheme: str) -> int:
    return int(scheme.split("block")[1]) if "block" in scheme else 0


def weight_for(w: torch.Tensor, scheme: str) -> torch.Tensor:
    if scheme.startswith("bf16"):
        return w.bfloat16().float()
    return quantize_weight(w, block_of(scheme) if scheme.startswith("wblock") else 0)


class Scorer:
    """F1 of the loaded model on PAN-X dev, per language, as the export check scores it."""

    def __init__(self, model_ref: str, langs: list[str], max_examples: int) -> None:
        from xstilts.evaluation.runner import load_eval_model, resolve_head
        from xstilts.families import resolve_lengths
        from xstilts.tasks import get_task

        self.task = get_task("panx")
        self.em = load_eval_model(model_ref, needs_head=True)
        self.head = resolve_head(self.em.model, self.task)
        self.max_length, self.doc_stride = resolve_lengths(self.task, self.em.max_length, self.em.doc_stride)
        self.max_examples = max_examples
        load = self.task.family.load_eval_split
        self.data = {lang: load(self.task, lang, "dev", max_examples=max_examples, bucc_policy="dev_tuned")[0]
                     for lang in langs}
        self.order: list[int] | None = None  # layers by English-train sensitivity, measured once (rowkeepP)

    def __call__(self) -> dict[str, float]:
        from xstilts.evaluation.predict import headline

        out = {}
        for lang, data in self.data.items():
            scores = self.task.family.score_exported(
                self.task, self.em.model, self.em.tokenizer, data, lang=lang, split="dev", head=self.head,
                max_length=self.max_length, doc_stride=self.doc_stride, max_examples=self.max_examples)
            out[lang] = headline(self.task, scores)
        return out


class Quantized:
    """Within the block, ``linears`` are quantized by ``scheme`` (weights and inputs); restored after."""

    def __init__(self, linears: list[torch.nn.Linear], scheme: str) -> None:
        self.linears, self.scheme = linears, scheme

    def __enter__(self) -> None:
        self.kept = [m.weight.data for m in self.linears]
        self.hooks = [m.register_forward_pre_hook(lambda _m, args: (quantize_input(args[0], self.scheme), *args[1:]))
                      for m in self.linears]
        for m in self.linears:
            m.weight.data = weight_for(m.weight.data, self.scheme)

    def __exit__(self, *exc) -> None:
        for h in self.hooks:
            h.remove()
        for m, w in zip(self.linears, self.kept):
            m.weight.data = w


def calibration_batches(scorer: Scorer, sentences: int = 128, size: int = 32) -> list[dict]:
    """English PAN-X *train* sentences (never scored here), padded batches as the model takes them."""
    from xstilts.data.loading import load_examples

    tok = scorer.em.tokenizer
    texts = [" ".join(ex.words) for ex in load_examples("panx", "en", "train", max_examples=sentences)]
    return [dict(tok(texts[i:i + size], truncation=True, max_length=scorer.max_length, padding=True,
                     return_tensors="pt")) for i in range(0, len(texts), size)]


def sensitivity_order(scorer: Scorer, linears: list[torch.nn.Linear]) -> list[int]:
    """Indices of ``linears``, most sensitive first: mean squared logit change on English train
    sentences when that layer alone is quantized row-wise."""
    batches = calibration_batches(scorer)
    model, head = scorer.em.model, scorer.head

    def logits() -> list[torch.Tensor]:
        return [model(head, b).logits[b["attention_mask"].bool()] for b in batches]

    ref = logits()
    change = []
    for m in linears:
        with Quantized([m], "row"):
            change.append(sum(float(((a - r) ** 2).mean()) for a, r in zip(logits(), ref)))
    return sorted(range(len(linears)), key=lambda i: -change[i])


def score_scheme(scorer: Scorer, scheme: str) -> dict[str, float]:
    """The scores with the ``nn.Linear`` layers quantized by ``scheme`` (the model is restored after)."""
    linears = [m for m in scorer.em.model.modules() if isinstance(m, torch.nn.Linear)]
    if scheme.startswith("rowkeep"):
        if scorer.order is None:
            scorer.order = sensitivity_order(scorer, linears)
        keep = set(scorer.order[:round(len(linears) * int(scheme[7:]) / 100)])
        linears, scheme = [m for i, m in enumerate(linears) if i not in keep], "row"
    with Quantized(linears, scheme):
        return scorer()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="models:/xstilts-target-panx/VERSION or @ALIAS")
    ap.add_argument("--schemes", default="row,wblock128,wblock64,bf16", help="comma-separated (see above)")
    ap.add_argument("--langs", default="en,ml,te,mr,sw", help="PAN-X dev languages (1,000 sentences each)")
    ap.add_argument("--max-examples", type=int, default=1000)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    print(f"CPU: {cpu_info()}; torch threads {torch.get_num_threads()}", flush=True)
    scorer = Scorer(args.model, args.langs.split(","), args.max_examples)
    scorer.em.model.eval()
    t = time.perf_counter()
    base = scorer()
    print(f"fp32 F1 {({k: round(v, 2) for k, v in base.items()})} ({time.perf_counter() - t:.0f} s per scheme)")
    for scheme in args.schemes.split(","):
        got = score_scheme(scorer, scheme)
        drift = {k: round(got[k] - base[k], 2) for k in got}
        print(f"{scheme:<10} drift {drift}  max |drift| {max(map(abs, drift.values())):.2f}  "
              f"mean |drift| {sum(map(abs, drift.values())) / len(drift):.2f}", flush=True)


if __name__ == "__main__":
    main()
