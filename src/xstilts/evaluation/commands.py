"""``xstilts evaluate``: score a model on every language of a target task."""
from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator

import click

from xstilts.errors import XstiltsError
from xstilts.evaluation.metrics.bucc import ThresholdPolicy
from xstilts.runtime.cpu import THREADS_HELP
from xstilts.runtime.device import DEVICE_HELP


def _split_langs(value: str | None) -> list[str] | None:
    if value is None or value.strip() in ("", "all"):
        return None
    return [x.strip() for x in value.split(",") if x.strip()]


def format_report(report) -> str:
    """A per-language table with the task's averages below it."""
    keys = list(report.languages[0].scores) if report.languages else []
    header = f"{'lang':<6}{'n':>7}  " + "".join(f"{k:>18}" for k in keys) + f"{'seconds':>9}"
    lines = [f"{report.task} {report.split}, {report.model} ({report.metric}, "
             f"{'bf16' if report.settings['bf16'] else 'fp32'}"
             + (f", layer {report.settings['layer']}" if "layer" in report.settings else "")
             + (f", threshold {report.settings['bucc_threshold_policy']}"
                if "bucc_threshold_policy" in report.settings else "") + ")",
             header, "-" * len(header)]
    for r in report.languages:
        lines.append(f"{r.lang:<6}{r.num_examples:>7}  " + "".join(f"{r.scores[k]:>18.2f}" for k in keys)
                     + f"{r.seconds:>9.1f}")
    lines.append("-" * len(header))
    s = report.summary
    for label, suffix in (("avg", "avg"), ("no en", "avg_no_en")):
        if all(f"{report.task}.{k}.{suffix}" in s for k in keys):
            lines.append(f"{label:<6}{'':>7}  " + "".join(f"{s[f'{report.task}.{k}.{suffix}']:>18.2f}" for k in keys))
    score = f"score {s[f'{report.task}.score']:.2f}"
    if f"{report.task}.score_no_en" in s:
        score += f", without English {s[f'{report.task}.score_no_en']:.2f}"
    lines.append(f"{score}; predictions in {report.predictions_dir or 'the MLflow run'}; {report.seconds:.0f} s"
                 + (f"; MLflow run {report.run_id}" if report.run_id else ""))
    return "\n".join(lines)


@click.command("evaluate")
@click.option("--model", "model_ref", required=True,
              help="models:/NAME/VERSION, an xstilts model directory, or for tatoeba/bucc2018 a bare encoder "
                   "('default', a local HF directory or a Hub id).")
@click.option("--task", required=True, help="Target task (see `xstilts tasks list`).")
@click.option("--langs", default="all", show_default=True,
              help="Comma-separated languages, or 'all' (every language with local data for the split).")
@click.option("--split", type=click.Choice(["dev", "test", "auto"]), default="auto", show_default=True,
              help="auto: whichever of test/dev has local data for more languages (test on ties).")
@click.option("--max-examples", type=int, default=0, help="First N examples per language (0 = all).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="At most N examples per forward pass.")
@click.option("--max-tokens", type=int, default=1024, show_default=True,
              help="And at most N padded tokens per forward pass (0 = no token budget).")
@click.option("--bf16/--fp32", "bf16", default=None,
              help="bf16 inference: a bf16 copy of the model (retrieval: autocast). "
                   "Default: where the CPU has native bf16, e.g. AMX/AVX512-BF16.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Writes predictions/{task}/{split}-{lang}.{tsv|json} and eval-{task}-{split}.json here; "
                   "'' keeps them only as the MLflow run's artifacts.")
@click.option("--layer", type=int, default=None,
              help="Retrieval: hidden layer to pool (-1 = last; default per model: last for E5, else XTREME's).")
@click.option("--bucc-threshold", type=click.Choice([p.value for p in ThresholdPolicy]), default="dev_tuned",
              show_default=True, help="BUCC: tune the threshold on other gold pairs, or on the scored split (oracle).")
@click.option("--max-length", type=int, default=None, help="Tokens per input (default: 384 for QA, else 128).")
@click.option("--track/--no-track", default=True, show_default=True,
              help="Log to MLflow (a child run of the model's training run).")
@click.option("--run-id", default=None, help="Log into this existing MLflow run instead.")
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evaluate(model_ref, task, langs, split, max_examples, batch_size, max_tokens, bf16, out_dir, layer, bucc_threshold,
             max_length, track, run_id, threads, device, as_json):
    """Zero-shot evaluation of a model on every language of a target task.

    Predictions in XTREME's layout, XTREME's metrics per language, averages with
    and without English; scores logged to MLflow as {task}.{metric}.{lang}.
    Refuses splits whose gold labels are missing or placeholders.
    """
    from xstilts.evaluation.runner import evaluate_model
    from xstilts.runtime.cpu import set_threads

    set_threads(threads)
    with _out_folder(out_dir, track) as folder:
        report = evaluate_model(model_ref, task, langs=_split_langs(langs), split=None if split == "auto" else split,
                                max_examples=max_examples or None, batch_size=batch_size,
                                max_tokens=max_tokens or None, bf16=bf16,
                                out_dir=folder, layer=layer, bucc_threshold_policy=bucc_threshold,
                                max_length=max_length, log_to_mlflow=track, run_id=run_id, progress=not as_json,
                                device=device)
    if not out_dir:
        report.predictions_dir = ""  # the folder is gone; the files are the run's artifacts
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        click.echo(format_report(report))


@contextlib.contextmanager
def _out_folder(out_dir: str, track: bool) -> Iterator[str]:
    """``out_dir``, or for ``''`` a temporary folder removed once the files are logged to MLflow."""
    if out_dir:
        yield out_dir
        return
    if not track:
        raise XstiltsError("--out '' keeps the files only in MLflow: it needs --track")
    with tempfile.TemporaryDirectory(prefix="xstilts-evaluate-") as tmp:
        yield tmp
