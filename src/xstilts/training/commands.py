"""``xstilts intermediate`` and ``xstilts target``: one training phase each.

A run is described by a :class:`~xstilts.config.PhaseConfig`; the flags below
cover the common fields, ``--config FILE`` loads a full YAML config, and
``--set a.b=value`` overrides any field (YAML syntax for the value). The final
config is logged with the run as ``config.yaml``.
"""
from __future__ import annotations

import json

import click
import yaml

from xstilts.config import yaml_load
from xstilts.errors import XstiltsError
from xstilts.runtime.cpu import THREADS_HELP
from xstilts.runtime.device import DEVICE_HELP


def _apply_set(data: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise XstiltsError(f"--set {assignment!r}: expected KEY=VALUE (e.g. training.learning_rate=3e-5)")
    key, raw = assignment.split("=", 1)
    value = yaml_load(raw) if raw else None
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value


def _common(f):
    options = [
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     help="YAML run config (fields of PhaseConfig); flags and --set override it."),
        click.option("--task", default=None, help="Task to train (see `xstilts tasks list`)."),
        click.option("--langs", default=None, help="Comma-separated training languages (default: en)."),
        click.option("--split", default=None, help="Training split (default: train)."),
        click.option("--max-examples", type=int, default=None, help="Use at most N training examples per language."),
        click.option("--max-dev-examples", type=int, default=None, help="Dev examples per language for model selection."),
        click.option("--condition", default=None, help="Experimental condition label: none, en, multi, en+mlm."),
        click.option("--seed", type=int, default=None, help="Random seed (default 0)."),
        click.option("--selection", type=click.Choice(["english_dev", "last", "target_dev"]), default=None,
                     help="Model selection: best English dev score (default, strict zero-shot), the last step, "
                          "or best target-language dev score (an oracle, tagged as such)."),
        click.option("--epochs", type=float, default=None), click.option("--max-steps", type=int, default=None),
        click.option("--learning-rate", type=float, default=None), click.option("--batch-size", type=int, default=None),
        click.option("--max-length", type=int, default=None),
        click.option("--num-layers", type=int, default=None, help="Keep only the first N encoder layers (quick tests)."),
        click.option("--set", "sets", multiple=True, help="Override any config field: --set training.warmup_ratio=0.06"),
        click.option("--threads", type=int, default=None, help=THREADS_HELP),
        click.option("--device", default=None, help=DEVICE_HELP + " Default: the config's training.device."),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def build_config(phase: str, *, config_file, task, langs, split, max_examples, max_dev_examples, condition, seed,
                 selection, epochs, max_steps, learning_rate, batch_size, max_length, num_layers, sets, threads,
                 model=None, init_from=None, device=None):
    from xstilts.config import PhaseConfig

    if config_file:
        data = PhaseConfig.from_file(config_file).to_dict()
    else:
        data = {"phase": phase, "tasks": []}
    data["phase"] = phase
    if task:
        entry = {"task": task}
        if data.get("tasks"):
            data["tasks"][0]["task"] = task
        else:
            data["tasks"] = [entry]
    if not data.get("tasks"):
        raise XstiltsError("no task: pass --task NAME or a --config file with tasks")
    t0 = data["tasks"][0]
    if langs:
        t0["languages"] = [x.strip() for x in langs.split(",") if x.strip()]
    for key, value in (("split", split), ("max_examples", max_examples), ("max_dev_examples", max_dev_examples)):
        if value is not None:
            t0[key] = value
    for key, value in (("condition", condition), ("seed", seed), ("selection", selection),
                       ("num_hidden_layers", num_layers), ("base_model", model), ("init_from", init_from)):
        if value is not None:
            data[key] = value
    training = data.setdefault("training", {})
    for key, value in (("epochs", epochs), ("max_steps", max_steps), ("learning_rate", learning_rate),
                       ("batch_size", batch_size), ("max_length", max_length), ("threads", threads),
                       ("device", device)):
        if value is not None:
            training[key] = value
    for s in sets:
        _apply_set(data, s)
    return PhaseConfig.from_dict(data, source=config_file or "command line").validate()


def _run(cfg, progress: bool, as_json: bool) -> None:
    from xstilts.training.phase import run_phase

    result = run_phase(cfg, progress=progress)
    payload = {"run_id": result.run_id, "model": result.model_uri, "reused": result.reused,
               "dev_scores": result.dev_scores, "run_key": cfg.run_key(), "selection": cfg.selection}
    if result.loop is not None:
        payload |= {"steps": result.loop.steps, "seconds": round(result.loop.seconds, 1),
                    "examples_per_second": round(result.loop.examples_per_second, 2),
                    "resumed_from_step": result.loop.resumed_from}
    if as_json:
        click.echo(json.dumps(payload, indent=2))
        return
    verb = "reused" if result.reused else "trained"
    click.echo(f"{verb} {result.model_uri or '(not registered)'} (run {result.run_id}, selection {cfg.selection})")
    for k, v in result.dev_scores.items():
        click.echo(f"  {k}: {v:.2f}")


@click.command("intermediate")
@click.option("--model", default=None, help="Base encoder: omit for the offline default, or a local dir / Hub id.")
@click.option("--spec", default=None, help="Intermediate data spec as JSON or a YAML/JSON file "
              "(task, languages with weights and sources, size, seed); replaces --langs/--split.")
@click.option("--mlm-langs", default=None, help="Add a masked-LM loss on XNLI dev text in these languages (+MLM).")
@_common
def intermediate_command(model, spec, mlm_langs, config_file, task, langs, split, max_examples, max_dev_examples,
                         condition, seed, selection, epochs, max_steps, learning_rate, batch_size, max_length,
                         num_layers, sets, threads, device, no_progress, as_json):
    """Intermediate-task training (X-STILTs phase 2), registered as xstilts-intermediate-TASK.

    One task, or several (a --config with a tasks list; --set mixture=temperature),
    on English or multilingual data; optionally with masked-LM on multilingual text.
    """
    extra = list(sets)
    if spec:
        from pathlib import Path

        text = Path(spec).read_text() if Path(spec).is_file() else spec
        try:
            spec_data = yaml_load(text)
        except yaml.YAMLError as exc:
            raise XstiltsError(f"--spec: invalid JSON/YAML ({exc})") from None
        extra.append("tasks.0.spec=" + json.dumps(spec_data))
    if mlm_langs:
        extra.append("mlm=" + json.dumps({"languages": [x for x in mlm_langs.split(",") if x]}))
    cfg = build_config("intermediate", config_file=config_file, task=task, langs=langs, split=split,
                       max_examples=max_examples, max_dev_examples=max_dev_examples, condition=condition, seed=seed,
                       selection=selection, epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
                       batch_size=batch_size, max_length=max_length, num_layers=num_layers, sets=extra,
                       threads=threads, model=model, device=device)
    _run(cfg, not no_progress, as_json)


@click.command("target")
@click.option("--init-from", default=None, help="Registered intermediate model (models:/NAME/VERSION) or a model "
              "directory; omit for the no-intermediate baseline (the bare pretrained encoder).")
@click.option("--model", default=None, help="Base encoder when --init-from is omitted.")
@_common
def target_command(init_from, model, config_file, task, langs, split, max_examples, max_dev_examples, condition,
                   seed, selection, epochs, max_steps, learning_rate, batch_size, max_length, num_layers, sets,
                   threads, device, no_progress, as_json):
    """Target-task training on English (X-STILTs phase 3), registered as xstilts-target-TASK.

    Takes the encoder of an intermediate model (heads dropped) or the bare encoder,
    adds a fresh head and fine-tunes on the task's English training data.
    """
    cfg = build_config("target", config_file=config_file, task=task, langs=langs, split=split,
                       max_examples=max_examples, max_dev_examples=max_dev_examples, condition=condition, seed=seed,
                       selection=selection, epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
                       batch_size=batch_size, max_length=max_length, num_layers=num_layers, sets=sets,
                       threads=threads, model=model, init_from=init_from, device=device)
    if cfg.init_from is None and cfg.condition != "none":
        cfg.condition = "none"  # no intermediate model: by definition the baseline
    _run(cfg, not no_progress, as_json)
