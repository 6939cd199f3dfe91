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
  smoothA    row after SmoothQuant's migration (Xiao et al. 2023): input channel j divided by
             s_j = max|x_j|^a / max|W_j|^(1-a) (a = A / 100, maxima over English train tokens), the
             weight's column j multiplied by it, so activation outliers move into the weights
  gptq       row, the weights rounded by GPTQ (Frantar et al. 2023): column by column, each rounding
             error spread over the columns not yet rounded through X^T X of English train tokens
  sgptqA     smoothA with GPTQ's weights
  outK       row, but in each layer the K input channels with the largest max |x| on English train
             tokens stay fp32 (their activations and weight columns; LLM.int8()'s decomposition with
             the outlier channels fixed at calibration)
  goutK      outK with GPTQ's weights for the int8 part (the fp32 columns go last and take
             compensation): what ``xstilts export --quantize int8`` does, with K = 8

Besides F1 it prints how far the logits moved on 200 dev sentences per language (relative RMS
change and the share of tokens whose label changed): F1 drift is a sum of label changes that
partly cancel, so on 1,000 sentences it is a noisy measure of how much a scheme perturbs the
model, while the logit change is not.

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

import numpy as np
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
        self.stats: dict | None = None  # calibration statistics per layer, measured once (smooth, gptq)
        self.probe: list[dict] | None = None  # dev batches whose logits every scheme is compared on
        self.reference: list[torch.Tensor] = []  # their fp32 logits
        self.change = ""

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
    """Within the block, ``linears`` are quantized by ``scheme`` (weights and inputs); restored after.
    ``smooth`` (per layer, optional) divides each input channel before its rounding and multiplies
    the weight's column; ``weights`` (per layer, optional) are already-rounded weights to use."""

    def __init__(self, linears: list[torch.nn.Linear], scheme: str, smooth: dict | None = None,
                 weights: dict | None = None) -> None:
        self.linears, self.scheme = linears, scheme
        self.smooth, self.weights = smooth or {}, weights or {}

    def _input(self, m: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
        s = self.smooth.get(m)
        if s is not None and s.dtype == torch.bool:  # outlier channels kept fp32: out of the row's scale
            return torch.where(s, x, quantize_input(torch.where(s, 0.0, x), self.scheme))
        return quantize_input(x, self.scheme) if s is None else quantize_input(x / s, self.scheme)

    def __enter__(self) -> None:
        self.kept = [m.weight.data for m in self.linears]
        self.hooks = [m.register_forward_pre_hook(lambda mod, args: (self._input(mod, args[0]), *args[1:]))
                      for m in self.linears]
        for m in self.linears:
            s = self.smooth.get(m)
            w = m.weight.data if s is None or s.dtype == torch.bool else m.weight.data * s
            if m in self.weights:
                m.weight.data = self.weights[m]
            else:
                if s is not None and s.dtype == torch.bool:
                    m.weight.data = torch.where(s, w, weight_for(torch.where(s, 0.0, w), self.scheme))
                else:
                    m.weight.data = weight_for(w, self.scheme)

    def __exit__(self, *exc) -> None:
        for h in self.hooks:
            h.remove()
        for m, w in zip(self.linears, self.kept):
            m.weight.data = w


def calibration_batches(scorer: Scorer, sentences: int = 128, size: int = 32, lang: str = "en",
                        split: str = "train") -> list[dict]:
    """English PAN-X *train* sentences (never scored here), padded batches as the model takes them."""
    from xstilts.data.loading import load_examples

    tok = scorer.em.tokenizer
    texts = [" ".join(ex.words) for ex in load_examples("panx", lang, split, max_examples=sentences)]
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


def calibration_stats(scorer: Scorer, linears: list[torch.nn.Linear], sentences: int = 512) -> dict:
    """Per layer, over the real (unpadded) tokens of English train sentences: each input channel's
    max |x| and the inputs' X^T X (float64)."""
    stats = {m: [torch.zeros(m.in_features), torch.zeros(m.in_features, m.in_features, dtype=torch.float64)]
             for m in linears}
    mask: list[torch.Tensor] = []

    def record(m, args) -> None:
        x = args[0][mask[0]] if args[0].shape[:2] == mask[0].shape else args[0].reshape(-1, m.in_features)
        stats[m][0] = torch.maximum(stats[m][0], x.abs().amax(0))
        stats[m][1] += x.double().T @ x.double()

    hooks = [m.register_forward_pre_hook(record) for m in linears]
    try:
        for b in calibration_batches(scorer, sentences):
            mask[:] = [b["attention_mask"].bool()]
            scorer.em.model(scorer.head, b)
    finally:
        for h in hooks:
            h.remove()
    return stats


def smoothing(m: torch.nn.Linear, amax: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant's per-input-channel divisor s_j = max|x_j|^a / max|W_j|^(1-a)."""
    wmax = m.weight.data.abs().amax(0).clamp_min(1e-5)
    return (amax.clamp_min(1e-5) ** alpha / wmax ** (1 - alpha)).clamp_min(1e-5)


def gptq_weight(w: torch.Tensor, h: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """The export's GPTQ (``xstilts.export.int8_calibration.gptq_round``, on its grid: per output
    channel over the int8 columns) applied to an ``nn.Linear`` weight (out x in) with ``h`` = X^T X,
    back in fp32; columns in ``keep`` stay fp32 and take compensation."""
    from xstilts.export.int8_calibration import gptq_round
    from xstilts.export.int8_rowwise import weight_scales

    wt = w.double().T.numpy()  # the graph's orientation: in x out
    kept = None if keep is None else np.flatnonzero(keep.numpy())
    scale = weight_scales(wt, kept)
    q, fp32 = gptq_round(wt, h.numpy(), scale, kept)
    out = q.astype(np.float64) * scale
    if kept is not None:
        out[kept] = fp32
    return torch.from_numpy(out.T).float()


def calibrated(scorer: Scorer, linears: list[torch.nn.Linear], scheme: str) -> Quantized:
    """smoothA / gptq / sgptqA / outK / goutK: the row scheme with calibrated smoothing, fp32 outlier
    channels and/or GPTQ weights."""
    if scorer.stats is None:
        scorer.stats = calibration_stats(scorer, linears)
    n = int(scheme.lstrip("smothgpqu") or 0)
    amax, gram = ({m: scorer.stats[m][i] for m in linears} for i in (0, 1))
    if "out" in scheme:  # a boolean mask: the n channels with the largest max |x| stay fp32
        masks = {m: torch.zeros(m.in_features, dtype=torch.bool).index_fill(0, amax[m].topk(n).indices, True)
                 for m in linears}
        weights = {m: gptq_weight(m.weight.data, gram[m], masks[m]) for m in linears} if scheme[0] == "g" else {}
        return Quantized(linears, "row", masks, weights)
    smooth = {m: smoothing(m, amax[m], n / 100) for m in linears} if scheme.startswith(("smooth", "sgptq")) else {}
    weights = {}
    if "gptq" in scheme:
        for m in linears:
            s = smooth.get(m, torch.ones(m.in_features)).double()
            weights[m] = gptq_weight(m.weight.data * s.float(), gram[m] / s[:, None] / s[None, :])
    return Quantized(linears, "row", smooth, weights)


def token_logits(scorer: Scorer) -> list[torch.Tensor]:
    """The model's logits at the real tokens of 200 dev sentences of each scored language."""
    if scorer.probe is None:
        scorer.probe = [b for lang in scorer.data for b in calibration_batches(scorer, 200, lang=lang, split="dev")]
    return [scorer.em.model(scorer.head, b).logits[b["attention_mask"].bool()] for b in scorer.probe]


def logit_change(ref: list[torch.Tensor], got: list[torch.Tensor]) -> str:
    """Relative RMS change of the logits and the share of tokens whose argmax label changed: a
    measure of how far a scheme moves the model that, unlike F1 drift, does not cancel out."""
    r, g = torch.cat(ref), torch.cat(got)
    rel = float((g - r).pow(2).mean().sqrt() / r.pow(2).mean().sqrt())
    flips = float((g.argmax(-1) != r.argmax(-1)).float().mean())
    return f"logit rms {rel:.4f}, labels changed {100 * flips:.2f} % of {r.shape[0]} tokens"


def score_scheme(scorer: Scorer, scheme: str) -> dict[str, float]:
    """The scores with the ``nn.Linear`` layers quantized by ``scheme`` (the model is restored after);
    ``scorer.change`` says how far its logits moved."""
    linears = [m for m in scorer.em.model.modules() if isinstance(m, torch.nn.Linear)]
    if scheme.startswith(("smooth", "gptq", "sgptq", "out", "gout")):
        quantized = calibrated(scorer, linears, scheme)
    else:
        if scheme.startswith("rowkeep"):
            if scorer.order is None:
                scorer.order = sensitivity_order(scorer, linears)
            keep = set(scorer.order[:round(len(linears) * int(scheme[7:]) / 100)])
            linears, scheme = [m for i, m in enumerate(linears) if i not in keep], "row"
        quantized = Quantized(linears, scheme)
    with quantized:
        scorer.change = logit_change(scorer.reference, token_logits(scorer))
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
    scorer.reference = token_logits(scorer)
    print(f"fp32 F1 {({k: round(v, 2) for k, v in base.items()})} ({time.perf_counter() - t:.0f} s per scheme)")
    for scheme in args.schemes.split(","):
        got = score_scheme(scorer, scheme)
        drift = {k: round(got[k] - base[k], 2) for k in got}
        print(f"{scheme:<10} drift {drift}  max |drift| {max(map(abs, drift.values())):.2f}  "
              f"mean |drift| {sum(map(abs, drift.values())) / len(drift):.2f}; {scorer.change}", flush=True)


if __name__ == "__main__":
    main()
