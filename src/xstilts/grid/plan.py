"""The grid as a plan: keyed jobs with explicit dependencies, plus the grid-wide leakage check.

:func:`plan_grid` turns a grid config into a :class:`Plan`: one training job per
(intermediate setting, condition, seed), one per target cell (needing its intermediate
job), one evaluation job per trained target model or encoder (needing the job
that made it), and the cells that map evaluation results to rows of the table.
An executor (:mod:`xstilts.grid.executor`) runs the jobs; nothing here runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from xstilts.config import PhaseConfig, TaskData
from xstilts.grid.config import GridConfig, IntermediateData, IntermediateGrid, TargetGrid


def intermediate_specs(inter: IntermediateGrid, condition: str, seed: int) -> list:
    """The data specs of one intermediate cell, one per task of ``inter`` (``en``/``en+mlm``
    English, ``multi`` size-matched; an English-only task of a mixture stays English)."""
    from xstilts.grid.config import multi_is_english

    return [_data_spec(d, condition, seed) if not multi_is_english(d) else _data_spec(d, "en", seed)
            for d in inter.data]


def _data_spec(d: IntermediateData, condition: str, seed: int):
    from xstilts.data.intermediate_spec import english_spec, matched_multilingual
    from xstilts.tasks import get_task

    english = english_spec(d.task, d.size, split=d.split, seed=seed, kind=d.source_kind, source=d.source)
    if condition in ("en", "en+mlm"):
        return english
    langs = d.languages or list(get_task(d.task).languages)
    return matched_multilingual(english, {lang: 1.0 for lang in langs}, kind=d.source_kind,
                                include_english=d.include_english, split=d.multi_split, source=d.multi_source)


def intermediate_spec(cfg: GridConfig, condition: str, seed: int, inter: IntermediateGrid | None = None):
    """The data spec of a single-task intermediate cell (default: the grid's first intermediate)."""
    return intermediate_specs(inter or cfg.intermediates[0], condition, seed)[0]


def spec_hash(inter: IntermediateGrid, condition: str, seed: int) -> str:
    """The cell's ``intermediate_spec`` value: its spec's hash, or the mixture's hashes joined by '+'."""
    return "+".join(s.stable_hash() for s in intermediate_specs(inter, condition, seed))


def intermediate_config(cfg: GridConfig, condition: str, seed: int,
                        inter: IntermediateGrid | None = None) -> PhaseConfig:
    """The training config of one intermediate model (default: the grid's first intermediate)."""
    inter = inter or cfg.intermediates[0]
    tasks = [TaskData(task=spec.task, languages=[s.lang for s in spec.languages], split=d.split,
                      spec=spec.to_dict(), dev_languages=["en"], source=d.source)
             for d, spec in zip(inter.data, intermediate_specs(inter, condition, seed))]
    return PhaseConfig(
        phase="intermediate", condition=condition, seed=seed, selection=inter.selection, tasks=tasks,
        mixture=inter.mixture, temperature=inter.temperature,
        mlm=cfg.mlm if condition == "en+mlm" else None, base_model=cfg.base_model,
        num_hidden_layers=cfg.num_hidden_layers,
        training=replace(inter.training, threads=cfg.threads, device=cfg.device), experiment=cfg.experiment)


def train_task_of(target: TargetGrid) -> str:
    from xstilts.grid.config import train_task_name

    return train_task_name(target)


def target_config(cfg: GridConfig, target: TargetGrid, condition: str, seed: int,
                  init_from: str | None) -> PhaseConfig:
    return PhaseConfig(
        phase="target", condition=condition, seed=seed, selection=target.selection, init_from=init_from,
        tasks=[TaskData(task=train_task_of(target), languages=["en"], split="train",
                        max_examples=target.max_train_examples, max_dev_examples=target.max_dev_examples,
                        dev_languages=["en"], source=target.source)],
        base_model=cfg.base_model, num_hidden_layers=cfg.num_hidden_layers,
        training=replace(target.training, threads=cfg.threads, device=cfg.device), experiment=cfg.experiment)


def is_retrieval(target: TargetGrid) -> bool:
    """A target scored with the (intermediate) encoder itself: its family has no head to train."""
    from xstilts.tasks import get_task

    return not get_task(target.task).family.needs_head


@dataclass(frozen=True)
class EvalPlan:
    task: str
    split: str
    langs: tuple[str, ...]


def eval_plan(target: TargetGrid) -> EvalPlan:
    from xstilts.evaluation.runner import resolve_languages, resolve_split
    from xstilts.tasks import get_task

    task = get_task(target.task)
    split = resolve_split(task, target.eval_split, target.eval_langs)
    return EvalPlan(target.task, split, tuple(resolve_languages(task, split, target.eval_langs)))


def check_grid_leakage(cfg: GridConfig) -> None:
    """Every training use against every evaluation use in the whole grid (refuses e.g.
    evaluating on XNLI dev when XNLI dev items train the intermediate models)."""
    from xstilts.data.leakage import SplitUse, check_no_leakage

    uses = []
    for inter in cfg.intermediates:
        for condition in cfg.conditions_of(inter):
            if condition != "none":
                uses += intermediate_config(cfg, condition, cfg.seeds[0], inter).split_uses()
                if cfg.tunes and cfg.tuning.intermediate:
                    from xstilts.tuning.study import tuning_uses

                    uses += tuning_uses(intermediate_config(cfg, condition, cfg.seeds[0], inter))
    for target in cfg.targets:
        if not is_retrieval(target):
            uses += target_config(cfg, target, "none", cfg.seeds[0], None).split_uses()
            if cfg.tunes:
                from xstilts.tuning.study import tuning_uses

                uses += tuning_uses(target_config(cfg, target, "none", cfg.seeds[0], None))
        plan = eval_plan(target)
        uses.append(SplitUse(plan.task, plan.split, plan.langs, "evaluation"))
    check_no_leakage(uses)


# -- the plan ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """One (target, condition, seed): which evaluation job's scores become its rows."""

    eval_job: str
    task: str
    condition: str
    seed: int
    intermediate_spec: str
    selection: str
    intermediate: str = "none"       # the intermediate setting's label (``none`` for condition none)
    train_job: str | None = None     # the target training job (its English dev score selects models)


@dataclass
class Plan:
    jobs: dict = field(default_factory=dict)       # id -> TrainJob | EvalJob, in dependency order
    cells: list[Cell] = field(default_factory=list)

    def add(self, job) -> str:
        """Add ``job`` unless a job with its id is planned already (same work); its id."""
        missing = [d for d in job.needs if d not in self.jobs]
        if missing:
            raise ValueError(f"job {job.id} needs {missing}, which are not planned before it")
        self.jobs.setdefault(job.id, job)
        return job.id

    def count(self, kind: type) -> int:
        return sum(isinstance(j, kind) for j in self.jobs.values())


def eval_spec(cfg: GridConfig, target: TargetGrid, bf16: bool):
    from xstilts.evaluation.spec import EvalSpec

    plan = eval_plan(target)
    return EvalSpec(task=target.task, split=plan.split, langs=plan.langs, max_examples=target.max_eval_examples,
                    bf16=bf16, encoder_layers=cfg.num_hidden_layers)


def plan_grid(cfg: GridConfig) -> Plan:
    """Every job of the grid, in the order (seed, intermediate, condition, target).

    Each intermediate model is trained once per (intermediate, condition, seed) and reused
    for every target; condition ``none`` does not depend on the intermediate, so its cells
    are planned once per seed (first), whichever conditions the settings list."""
    from xstilts.runtime.cpu import resolve_bf16

    plan = Plan()
    bf16 = resolve_bf16(None)
    specs = {t.task: eval_spec(cfg, t, bf16) for t in cfg.targets}
    for seed in cfg.seeds:
        if "none" in cfg.conditions:
            _plan_cells(plan, cfg, None, "none", seed, specs)
        for inter in cfg.intermediates:
            for condition in cfg.conditions_of(inter):
                if condition != "none":
                    _plan_cells(plan, cfg, inter, condition, seed, specs)
    return plan


def _plan_cells(plan: Plan, cfg: GridConfig, inter: IntermediateGrid | None, condition: str, seed: int,
                specs: dict) -> None:
    """The intermediate job of (inter, condition, seed) and every target's cell on it."""
    job = _plan_intermediate(plan, cfg, inter, condition, seed) if inter is not None else None
    shash, label = (spec_hash(inter, condition, seed), inter.label) if job else ("none", "none")
    for target in cfg.targets:
        eval_id, selection = _plan_target(plan, cfg, target, condition, seed, job, specs[target.task], inter)
        train_id = plan.jobs[eval_id].needs[0] if plan.jobs[eval_id].needs else None
        plan.cells.append(Cell(eval_id, target.task, condition, seed, shash, selection, label,
                               train_id if train_id != job else None))


def _plan_intermediate(plan: Plan, cfg: GridConfig, inter: IntermediateGrid, condition: str,
                       seed: int) -> str | None:
    from xstilts.grid.jobs import TrainJob

    c = intermediate_config(cfg, condition, seed, inter)
    tune = _plan_intermediate_tuning(plan, cfg, inter, condition)
    return plan.add(TrainJob(f"train:{c.run_key()}", c, needs=(tune,) if tune else (), tune_job=tune,
                             label=f"intermediate {inter.label} {condition} s{seed}",
                             tags=cell_tags(cfg, condition, seed, inter)))


def _plan_intermediate_tuning(plan: Plan, cfg: GridConfig, inter: IntermediateGrid, condition: str) -> str | None:
    """The tuning job an intermediate model waits for (None unless ``tuning.intermediate``).

    ``per_task``: one study per intermediate setting, its trials trained on the English-only
    data (the baseline condition's), its values shared by every condition; ``per_condition``:
    one study per (setting, condition), each with the same budget. The objective is the
    English dev score of the intermediate task, so the setting needs held-out English dev
    data (the leakage check refuses tuning on the items it trains on)."""
    from xstilts.grid.jobs import TuneJob

    if not (cfg.tunes and cfg.tuning.intermediate):
        return None
    cond = condition if cfg.tuning.scope == "per_condition" else "en"
    job_id = f"tune:intermediate:{inter.label}:{cond}"
    if job_id not in plan.jobs:
        base = intermediate_config(cfg, cond, cfg.seeds[0], inter)
        plan.add(TuneJob(job_id, base, cfg.tuning, label=f"tune intermediate {inter.label} {cond}",
                         subject=f"the intermediate phase {inter.label}",
                         start=f"the bare encoder on the {cond} data"))
    return job_id


def cell_tags(cfg: GridConfig, condition: str, seed: int | None,
              inter: IntermediateGrid | None = None) -> dict[str, str]:
    """Tags a user filters and groups a grid's runs by in the MLflow UI (seed ``all``: a
    run shared by every seed, the bare encoder's evaluation)."""
    return {"grid": cfg.name, "condition": condition, "seed": "all" if seed is None else str(seed),
            "intermediate": "none" if condition == "none" or inter is None else inter.label}


def _plan_target(plan: Plan, cfg: GridConfig, target: TargetGrid, condition: str, seed: int,
                 inter: str | None, spec, setting: IntermediateGrid | None = None) -> tuple[str, str]:
    """Plan the target cell's training (unless retrieval) and evaluation; (eval job id, selection)."""
    from xstilts.grid.jobs import EvalJob, TrainJob

    several = len(cfg.intermediates) > 1 and inter is not None
    label = f"{target.task} {condition}{f' ({setting.label})' if several else ''} s{seed}"
    tags = cell_tags(cfg, condition, seed, setting)
    if is_retrieval(target):
        if inter is None:
            job = EvalJob(f"eval:{target.task}:{cfg.base_model}", spec, model=cfg.base_model, label=f"eval {label}",
                          tags=cell_tags(cfg, condition, None))
        else:
            job = EvalJob(f"eval:{target.task}:{inter}", spec, needs=(inter,), label=f"eval {label}", tags=tags)
        return plan.add(job), "none (encoder)"
    # a target trained on an intermediate model: its run_key is known once that model is
    # registered, so the plan id stands in the intermediate job's id for the model
    c = target_config(cfg, target, condition, seed, f"<{inter}>" if inter else None)
    tune = _plan_tuning(plan, cfg, target, condition, inter, setting.label if several else None)
    needs = ((inter,) if inter else ()) + ((tune,) if tune else ())
    train_id = plan.add(TrainJob(f"train:{c.run_key()}", c, needs=needs, label=f"target {label}", tune_job=tune,
                                 tags=tags))
    job = EvalJob(f"eval:{target.task}:{train_id}", spec, needs=(train_id,), label=f"eval {label}", tags=tags)
    return plan.add(job), target.selection


def _plan_tuning(plan: Plan, cfg: GridConfig, target: TargetGrid, condition: str, inter: str | None,
                 setting: str | None = None) -> str | None:
    """The tuning job a target cell waits for (None without tuning).

    ``per_task``: one study per target, its trials trained from the bare encoder;
    ``per_condition``: one per (target, condition), trials trained from that condition's
    first-seed intermediate model, each with the same budget. Planned once, at the first
    cell that needs it (the first seed's, whose intermediate job is then ``inter``).
    """
    from xstilts.grid.jobs import TuneJob

    if not cfg.tunes:
        return None
    per_condition = cfg.tuning.scope == "per_condition"
    cond = condition if per_condition else "none"
    if per_condition and setting:  # one study per (intermediate, condition) when there are several
        cond = f"{setting}/{condition}"
    job_id = f"tune:{target.task}:{cond}"
    if job_id in plan.jobs:
        return job_id
    needs = (inter,) if per_condition and inter else ()
    base = target_config(cfg, target, cond, cfg.seeds[0], f"<{inter}>" if needs else None)
    plan_eval = eval_plan(target)
    from xstilts.data.leakage import SplitUse

    evaluation = (SplitUse(plan_eval.task, plan_eval.split, plan_eval.langs, "evaluation"),)
    start = "the bare encoder" if cond == "none" else f"the {cond} intermediate model"
    return plan.add(TuneJob(job_id, base, cfg.tuning, needs=needs, label=f"tune {target.task} {cond}",
                            evaluation_uses=evaluation, subject=target.task, start=start))
