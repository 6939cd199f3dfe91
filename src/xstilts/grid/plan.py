"""The grid's cells and the PhaseConfig of each, plus the grid-wide leakage check."""
from __future__ import annotations

from dataclasses import dataclass, replace

from xstilts.config import PhaseConfig, TaskData
from xstilts.grid.config import GridConfig, TargetGrid


def intermediate_spec(cfg: GridConfig, condition: str, seed: int):
    """The data spec of one intermediate cell (``en``/``en+mlm`` English, ``multi`` size-matched)."""
    from xstilts.data.intermediate_spec import english_spec, matched_multilingual
    from xstilts.tasks import get_task

    inter = cfg.intermediate
    english = english_spec(inter.task, inter.size, split=inter.split, seed=seed, kind=inter.source_kind)
    if condition in ("en", "en+mlm"):
        return english
    langs = inter.languages or list(get_task(inter.task).languages)
    return matched_multilingual(english, {lang: 1.0 for lang in langs}, kind=inter.source_kind,
                                include_english=inter.include_english)


def intermediate_config(cfg: GridConfig, condition: str, seed: int) -> PhaseConfig:
    inter = cfg.intermediate
    spec = intermediate_spec(cfg, condition, seed)
    return PhaseConfig(
        phase="intermediate", condition=condition, seed=seed, selection=inter.selection,
        tasks=[TaskData(task=inter.task, languages=[s.lang for s in spec.languages], split=inter.split,
                        spec=spec.to_dict(), dev_languages=["en"])],
        mlm=cfg.mlm if condition == "en+mlm" else None, base_model=cfg.base_model,
        num_hidden_layers=cfg.num_hidden_layers, training=replace(inter.training, threads=cfg.threads),
        experiment=cfg.experiment)


def train_task_of(target: TargetGrid) -> str:
    from xstilts.tasks import get_task

    return target.train_task or get_task(target.task).train_task or target.task


def target_config(cfg: GridConfig, target: TargetGrid, condition: str, seed: int,
                  init_from: str | None) -> PhaseConfig:
    return PhaseConfig(
        phase="target", condition=condition, seed=seed, selection=target.selection, init_from=init_from,
        tasks=[TaskData(task=train_task_of(target), languages=["en"], split="train",
                        max_examples=target.max_train_examples, max_dev_examples=target.max_dev_examples,
                        dev_languages=["en"])],
        base_model=cfg.base_model, num_hidden_layers=cfg.num_hidden_layers,
        training=replace(target.training, threads=cfg.threads), experiment=cfg.experiment)


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
    for condition in cfg.conditions:
        if condition == "none":
            continue
        uses += intermediate_config(cfg, condition, cfg.seeds[0]).split_uses()
    for target in cfg.targets:
        if not is_retrieval(target):
            uses += target_config(cfg, target, "none", cfg.seeds[0], None).split_uses()
        plan = eval_plan(target)
        uses.append(SplitUse(plan.task, plan.split, plan.langs, "evaluation"))
    check_no_leakage(uses)
