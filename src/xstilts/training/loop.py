"""The training loop: length-grouped dynamic batches, bf16 weights with fp32 master
copies (``training.master_weights``; or bf16 autocast), fused AdamW, fast dropout
masks (``models.fast_dropout``), periodic dev evaluation for model selection, and
resumable checkpoints. It runs where the model is: each batch goes to the model's
device (a CUDA GPU or the CPU; see ``runtime.device``)."""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from xstilts.config import TrainingArgs
from xstilts.models.fast_dropout import use_fast_dropout
from xstilts.runtime.device import autocast, model_device, to_device
from xstilts.training.checkpoint import CheckpointDir, set_rng_state, trainable_state
from xstilts.training.master_weights import Bf16MasterWeights
from xstilts.training.schedule import Step, build_schedule


@dataclass
class TrainSet:
    """One training stream: a task (or the MLM text) and its features.

    ``units`` groups feature indices that must share a batch (the choices of one
    multiple-choice example); for other families each unit is one feature.
    """

    name: str
    features: Sequence[Any]
    collate: Callable[[Sequence[Any]], dict[str, torch.Tensor]]
    units: list[list[int]]
    weight: float = 1.0

    @property
    def lengths(self) -> list[int]:
        return [max(len(self.features[i].input_ids) for i in u) for u in self.units]

    def batch(self, unit_ids: Sequence[int]) -> dict[str, torch.Tensor]:
        return self.collate([self.features[i] for u in unit_ids for i in self.units[u]])


@dataclass
class LoopResult:
    steps: int
    history: list[dict] = field(default_factory=list)  # one entry per evaluation
    best_step: int | None = None
    best_score: float | None = None
    resumed_from: int = 0
    seconds: float = 0.0
    train_examples: int = 0  # units processed in this process (for throughput)
    train_tokens: int = 0
    stopped_early: bool = False  # a ``should_stop`` callback ended training (``steps`` = steps done)

    @property
    def examples_per_second(self) -> float:
        return self.train_examples / self.seconds if self.seconds else float("nan")


def _param_groups(named: Sequence[tuple[str, torch.Tensor]], weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in named:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(named: Sequence[tuple[str, torch.Tensor]], args: TrainingArgs) -> torch.optim.Optimizer:
    """AdamW over ``named`` (name, parameter) pairs: no weight decay on biases and norms."""
    groups = _param_groups(named, args.weight_decay)
    try:  # the fused CPU kernel does the whole update in one pass per tensor
        return torch.optim.AdamW(groups, lr=args.learning_rate, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=args.learning_rate, foreach=True)


def linear_schedule(optimizer: torch.optim.Optimizer, total: int, warmup_ratio: float):
    warmup = int(math.ceil(total * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class _Run:
    """The state one call of :func:`train` works on."""

    model: Any
    sets: Sequence[TrainSet]
    schedule: list[Step]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    trainable: list[torch.Tensor]
    masters: Bf16MasterWeights | None
    eval_every: int
    ckpt_every: int
    result: LoopResult
    device: torch.device = torch.device("cpu")  # the model's: batches go there
    best: dict | None = None
    best_state: dict | None = None  # in memory when there is no checkpoint directory
    start: int = 0

    def weights(self) -> dict[str, torch.Tensor]:
        return self.masters.state() if self.masters else trainable_state(self.model)


def _prepare(model, sets: Sequence[TrainSet], args: TrainingArgs, *, seed: int, mixture: str, temperature: float,
             bf16: bool, checkpoints: CheckpointDir | None) -> _Run:
    """Schedule, optimizer and scheduler, restored from the last checkpoint when there is one."""
    torch.manual_seed(seed)
    use_fast_dropout(model)
    schedule: list[Step] = build_schedule([s.lengths for s in sets], batch_size=args.batch_size, epochs=args.epochs,
                                          max_steps=args.max_steps, seed=seed, mixture=mixture,
                                          temperature=temperature, weights=[s.weight for s in sets])
    total = len(schedule)
    per_epoch = max(1, int(sum(math.ceil(len(s.units) / args.batch_size) for s in sets)))
    eval_every = args.eval_every or min(per_epoch, total)
    resume = checkpoints.load_last() if checkpoints is not None else None
    if resume is not None:
        model.load_state_dict(resume["model"], strict=False)
    masters = Bf16MasterWeights(model) if bf16 and args.bf16_mode == "weights" else None
    named = masters.named_masters() if masters else [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = make_optimizer(named, args)
    run = _Run(model, sets, schedule, optimizer, linear_schedule(optimizer, total, args.warmup_ratio),
               [p for _, p in named], masters, eval_every, args.checkpoint_every or eval_every, LoopResult(steps=total),
               model_device(model))
    if resume is not None:
        run.optimizer.load_state_dict(resume["optimizer"])  # moves the CPU-saved state to the parameters' device
        run.scheduler.load_state_dict(resume["scheduler"])
        set_rng_state(resume["rng"], run.device)
        run.result.history, run.best, run.start = resume["history"], resume["best"], resume["step"]
        run.result.resumed_from = run.start
    return run


def _step(run: _Run, step: int, args: TrainingArgs, cast) -> tuple[float, int, int]:
    """One optimizer step; (loss, units, real tokens) of its batch."""
    run.model.train()
    item = run.schedule[step]
    train_set = run.sets[item.source]
    batch = to_device(train_set.batch(item.units), run.device)
    with cast():
        out = run.model(train_set.name, batch)
    out.loss.backward()
    if run.masters is not None:
        run.masters.grads_to_masters()
    if args.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(run.trainable, args.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    if run.masters is not None:
        run.masters.masters_to_model()
    return float(out.loss.detach()), len(item.units), int(batch["attention_mask"].sum())


def _evaluate(run: _Run, done: int, evaluate, keep_best: bool, checkpoints: CheckpointDir | None,
              on_metrics) -> float:
    """Score the model at step ``done``, record it, and keep the weights when it is the best so far."""
    score = float(evaluate(run.model))
    run.result.history.append({"step": done, "score": score})
    if on_metrics is not None:
        on_metrics({"dev.score": score}, done)
    if run.best is None or score > run.best["score"]:
        run.best = {"step": done, "score": score}
        if keep_best and checkpoints is not None:
            checkpoints.save_best(run.weights())
        elif keep_best:
            run.best_state = run.weights()
    return score


def _finish(run: _Run, keep_best: bool, checkpoints: CheckpointDir | None) -> LoopResult:
    """fp32 weights back in the model, and the selected ones when the best was not the last step."""
    result, best = run.result, run.best
    if run.masters is not None:
        run.masters.restore_fp32()
    if best is not None:
        result.best_step, result.best_score = best["step"], best["score"]
        if keep_best and best["step"] != result.steps:
            if checkpoints is not None:
                checkpoints.load_best_into(run.model)
            elif run.best_state is not None:
                run.model.load_state_dict(run.best_state, strict=False)
    return result


def train(model, sets: Sequence[TrainSet], args: TrainingArgs, *, seed: int, mixture: str = "proportional",
          temperature: float = 2.0, bf16: bool = False, checkpoints: CheckpointDir | None = None,
          evaluate: Callable[[Any], float] | None = None, keep_best: bool = True,
          on_metrics: Callable[[dict[str, float], int], None] | None = None,
          on_step: Callable[[int, int, int], None] | None = None, progress: bool = True,
          should_stop: Callable[[int, float], bool] | None = None, timings=None) -> LoopResult:
    """Train ``model`` over ``sets`` (a mixture when several) and return the loop's record.

    ``model`` trains on the device it is on (its batches are moved there); ``bf16``
    without bf16 weights (``args.bf16_mode`` autocast) is autocast on that device.

    ``evaluate(model) -> score`` (higher is better) runs every ``eval_every`` steps
    (default once per epoch) and at the end; with ``keep_best`` the best-scoring
    weights are restored into ``model`` before returning. A resumable checkpoint is
    written at every evaluation (or every ``checkpoint_every`` steps); if
    ``checkpoints`` holds one for this run, training continues from it.
    ``on_step(step, examples, tokens)`` is called after every optimizer step
    (benchmarks time steps with it). ``should_stop(step, score)`` sees every dev
    score; when it returns True training ends there (Optuna's pruning). ``timings`` (a
    :class:`~xstilts.runtime.timing.Timings`) is charged with the steps and checkpoint writes.
    """
    from tqdm.auto import tqdm

    from xstilts.runtime.timing import Timings

    timings = timings or Timings()

    run = _prepare(model, sets, args, seed=seed, mixture=mixture, temperature=temperature, bf16=bf16,
                   checkpoints=checkpoints)
    result, total = run.result, len(run.schedule)
    cast = (lambda: autocast(run.device, True)) if bf16 and run.masters is None else contextlib.nullcontext
    t0 = time.perf_counter()
    bar = tqdm(total=total, initial=run.start, desc="train", unit="step", disable=not progress, dynamic_ncols=True)
    running = 0.0
    for step in range(run.start, total):
        with timings.phase("train_steps"):
            loss, units, tokens = _step(run, step, args, cast)
        running = loss if step == run.start else 0.9 * running + 0.1 * loss
        result.train_examples += units
        result.train_tokens += tokens
        if on_step is not None:
            on_step(step + 1, units, tokens)
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}", task=run.sets[run.schedule[step].source].name)
        done = step + 1
        if on_metrics is not None and (done % 10 == 0 or done == total):
            on_metrics({"train.loss": running, "train.lr": run.scheduler.get_last_lr()[0]}, done)
        if evaluate is not None and (done % run.eval_every == 0 or done == total):
            with timings.phase("model_load"):  # what the evaluation leaves uncharged: keeping the best weights
                score = _evaluate(run, done, evaluate, keep_best, checkpoints, on_metrics)
            if should_stop is not None and done < total and should_stop(done, score):
                result.steps, result.stopped_early = done, True
                break
        if checkpoints is not None and (done % run.ckpt_every == 0 or done == total) and done < total:
            with timings.phase("model_load"):
                checkpoints.save(weights=run.weights(), optimizer=run.optimizer, scheduler=run.scheduler,
                                 step=done, history=result.history, best=run.best, device=run.device)
    bar.close()
    result.seconds = time.perf_counter() - t0
    with timings.phase("model_load"):
        return _finish(run, keep_best, checkpoints)
