"""``xstilts export`` (a checked ONNX bundle, registered as ``xstilts-serve-TASK``) and ``xstilts champion``."""
from __future__ import annotations

import json
import tempfile

import click


@click.command("export")
@click.option("--model", "model_ref", default=None,
              help="models:/NAME/VERSION or models:/NAME@ALIAS (or a model directory; a bare encoder such as "
                   "'default' for --task tatoeba). Omit it with --task to export that task's champion.")
@click.option("--task", "task_name", default=None,
              help="The task to export (default: the model's only head). Without --model: the best "
                   "xstilts-target-TASK version (see `xstilts champion`).")
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none", show_default=True,
              help="int8: int8 weights per output channel and int8 activations per token on ONNX Runtime's "
                   "int8 GEMM (MatMulIntegerToFloat), calibrated on 512 English Tatoeba sentences: each "
                   "input's 8 loudest channels stay fp32 and the weights are rounded by GPTQ; the word "
                   "embeddings stay fp32. Its 7-bit-activation form is checked too: x86 CPUs without VNNI "
                   "serve that form when it passes (faster there), else the 8-bit graph as u8 x u8.")
@click.option("--max-examples", type=int, default=1000, show_default=True,
              help="Examples per language of the metric check (English dev and two low-resource languages "
                   "whose gold holds >= 500 examples where the task has them): with 1,000 PAN-X sentences one "
                   "entity moves F1 by about 0.1 point, so the 0.5-point int8 limit is resolvable.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Keep the bundle here (default: a temporary folder, removed after registering).")
@click.option("--no-register", is_flag=True, help="Only write and check the bundle (needs --out).")
def export_command(model_ref, task_name, quantize, max_examples, out_dir, no_register):
    """Export a model to ONNX (dynamic batch and sequence axes), check it against PyTorch and register it.

    Checks (their figures become tags of the registered version): max abs logit difference on
    real sentences in 12 languages (fp32: <= 1e-3) and the task metric on an English dev subset and
    two low-resource languages (drift: fp32 <= 0.01 point, int8 <= 0.5 point). Registered as
    xstilts-serve-TASK (ONNX graph, tokenizer, manifest, signature, input example; a
    models-from-code pyfunc that `mlflow models serve` serves) and printed as JSON. The export of a
    task's champion (`xstilts champion`) gets the alias `champion` (int8: `champion-int8`), so
    `xstilts serve --model models:/xstilts-serve-TASK@champion` serves it.
    """
    from xstilts.errors import XstiltsError
    from xstilts.export.exporter import export_model
    from xstilts.tracking.store import CHAMPION_ALIAS, RunStore, model_name

    if no_register and not out_dir:
        raise XstiltsError("--no-register needs --out (where to keep the bundle)")
    store = RunStore.open()
    if model_ref is None:
        if not task_name:
            raise XstiltsError("give --model, or --task to export the task's best target model")
        model_ref = store.set_champion(model_name("target", task_name)).uri
    precision = "fp32" if quantize == "none" else quantize
    with tempfile.TemporaryDirectory(prefix="xstilts-export-") as tmp:
        result = export_model(model_ref, task_name=task_name, precision=precision,
                              out_dir=out_dir or f"{tmp}/bundle", max_examples=max_examples, store=store)
        out = {"bundle": str(result.bundle) if out_dir else None, "checks": result.manifest["checks"]}
        if not no_register:
            task = result.manifest["task"]
            rows = _example_rows(task)
            registered = store.register_export(result.bundle, name=model_name("serve", task), tags=result.tags,
                                               input_example=rows, parent_run_id=result.source.run_id)
            out["registered_model"] = registered.uri
            if store.is_champion(model_ref):  # the task's champion, exported: serve it by the same alias
                alias = CHAMPION_ALIAS if precision == "fp32" else f"{CHAMPION_ALIAS}-{precision}"
                store.set_alias(registered, alias)
                out["alias"] = f"models:/{registered.name}@{alias}"
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


def _example_rows(task_name: str) -> list[dict]:
    """Two request rows of the task's family from real Swahili and German sentences."""
    from xstilts.export.checks import parity_sentences
    from xstilts.tasks import get_task

    lines = parity_sentences(("sw", "de"), per_lang=1)
    return get_task(task_name).family.rows_from_sentences([lines["sw"][0], lines["de"][0]])


@click.command("champion")
@click.option("--task", "task_name", required=True, help="Target task: ranks the xstilts-target-TASK versions.")
@click.option("--phase", default="target", show_default=True, help="Registered model phase (target, intermediate).")
def champion_command(task_name, phase):
    """Alias `champion` on the best registered model of a task.

    Policy: the highest selected.dev_score (the English dev score that selected the model), among
    versions not selected on target-language dev (oracle_selection=true are skipped); ties go to
    the newer version.
    """
    from xstilts.tracking.store import CHAMPION_ALIAS, CHAMPION_POLICY, RunStore, model_name

    best = RunStore.open().set_champion(model_name(phase, task_name))
    click.echo(json.dumps({"alias": f"models:/{best.name}@{CHAMPION_ALIAS}", "version": best.version,
                           "policy": CHAMPION_POLICY}, indent=2))
