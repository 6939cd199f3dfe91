"""The two kinds of job a plan holds, and how one runs against the run store.

A :class:`TrainJob` trains one model (keyed by its config's ``run_key``); an
:class:`EvalJob` scores one model on one task (keyed by
:meth:`~xstilts.evaluation.spec.EvalSpec.key`). Either may wait on a training job
whose model it needs: a target starts from an intermediate model, an evaluation
scores a trained model. Because registry versions are only known once a model is
registered, a job's complete key is computed when its dependencies are done; its
plan id (``job.id``) is fixed up front.

Running a job: find it done in the store (reuse), else claim it, look again,
and do the work under the claim (:meth:`~xstilts.tracking.store.RunStore.run_once`).
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from xstilts.config import PhaseConfig
from xstilts.evaluation.spec import EvalSpec

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """Where and how jobs run: the store, the grid's parent run, local folders."""

    store: Any                              # xstilts.tracking.store.RunStore
    parent_run_id: str | None = None
    checkpoint_root: Path = Path(".xstilts/checkpoints")
    eval_dir: Path = Path(".")
    progress: bool = True
    adopt_launch: bool = False              # the job's run may be the one `mlflow run` created
    poll_seconds: float = 2.0
    on_evaluation: Any | None = None        # training's per-evaluation callback (pruning)
    timings: Any | None = None              # xstilts.runtime.timing.Timings: where the time goes
    models_dir: Path | None = None          # keep registered models here for later jobs (else: discarded)
    heartbeat: Any | None = None            # xstilts.grid.heartbeat.Heartbeat: lines while a job runs
    checkpoint_sync: Any | None = None      # grid.checkpoint_sync.ArtifactCheckpoints on a cluster
    # where evaluations run (training: its config's training.device); a Ray worker keeps auto:
    # evaluation tasks ask Ray for no GPU, so a device the grid named may not be there
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.timings is None:
            from xstilts.runtime.timing import Timings

            self.timings = Timings()

    @classmethod
    def create(cls, store, **kw) -> JobContext:
        from xstilts.paths import checkpoint_root

        kw.setdefault("checkpoint_root", checkpoint_root())
        return cls(store, **kw)


@dataclass
class EvalOutcome:
    key: str
    model_ref: str
    record: dict                            # {"languages": {lang: {metric: value}}, "run_id": ...}
    reused: bool

    @property
    def run_id(self) -> str:
        return self.record.get("run_id") or ""


# -- training --------------------------------------------------------------------------------

def run_train(ctx: JobContext, cfg: PhaseConfig, *, wait: bool = False, tags: dict[str, str] | None = None):
    """The registered model of ``cfg`` (a ``PhaseResult``): reused, or trained now.

    None when another live process holds the job's claim, unless ``wait``. ``tags`` go
    on the training run (e.g. the tuning study whose values it trains with).
    """
    from xstilts.training.phase import PhaseResult, registry_name

    name, key = registry_name(cfg), cfg.run_key()

    def find():
        found = ctx.store.find_model(name, key) if cfg.register else None
        if found is None:
            return None
        log.info("reusing registered model %s (same config and seed, run %s)", found.uri, found.run_id)
        return PhaseResult(found.run_id, found.uri, reused=True)

    return _until_done(ctx, f"train-{key}", find, lambda claim: _train_and_register(ctx, cfg, claim, tags), wait)


def _train_and_register(ctx: JobContext, cfg: PhaseConfig, claim, extra_tags: dict[str, str] | None = None):
    from xstilts.runtime.cpu import resolve_bf16
    from xstilts.training.phase import run_tags

    previous = ctx.store.fail_running("run_key", cfg.run_key())  # attempts that died (we hold the claim)
    tags = run_tags(cfg) | {"bf16": str(resolve_bf16(cfg.training.bf16)).lower()} | (extra_tags or {})
    if previous:
        tags["previous_attempt"] = previous[0]
    with contextlib.ExitStack() as scope:  # a downloaded model to start from lives as long as the training
        with ctx.timings.phase("tracking"):
            init_dir = scope.enter_context(ctx.store.fetched(cfg.init_from)) if cfg.init_from else None
        return _train_in_run(ctx, cfg, claim, tags, init_dir)


def _train_in_run(ctx: JobContext, cfg: PhaseConfig, claim, tags: dict[str, str], init_dir: Path | None):
    """Train ``cfg`` in a new run tagged ``tags``, register its model, then drop its checkpoint."""
    from xstilts.grid.heartbeat import tap
    from xstilts.training.phase import head_name, registry_name, run_tags, train_phase

    key = cfg.run_key()
    run_name = f"{cfg.phase}-{head_name(cfg)}-{cfg.condition}-s{cfg.seed}"
    with ctx.store.job_run(run_name, tags, parent_id=ctx.parent_run_id, adopt_launch=ctx.adopt_launch) as run:
        ctx.store.claims.set_run(claim, run.run_id)
        synced = (ctx.checkpoint_sync.attach(run, Path(ctx.checkpoint_root) / key, key) if ctx.checkpoint_sync
                  else contextlib.nullcontext())
        with synced, _model_home(ctx) as home:
            result = train_phase(cfg, tap(run, ctx.heartbeat), model_dir=home / "model",
                                 checkpoint_dir=ctx.checkpoint_root, init_dir=init_dir, progress=ctx.progress,
                                 on_evaluation=ctx.on_evaluation, timings=ctx.timings)
            if cfg.register:
                with ctx.timings.phase("tracking"):
                    result.model_uri = run.register(result.model_dir, name=registry_name(cfg),
                                                    tags=run_tags(cfg)).uri
                if ctx.models_dir is not None:  # the jobs that need it read it here, not from the store
                    ctx.store.keep_local(result.model_uri, result.model_dir)
        if result.checkpoint is not None:
            with ctx.timings.phase("model_load"):
                result.checkpoint.remove()  # only once the model is safely registered
    result.run_id, result.model_dir = run.run_id, None
    return result


@contextlib.contextmanager
def _model_home(ctx: JobContext):
    """Where a trained model is saved: the context's kept folder, else a temporary one."""
    if ctx.models_dir is not None:
        ctx.models_dir.mkdir(parents=True, exist_ok=True)
        yield Path(tempfile.mkdtemp(prefix="model-", dir=ctx.models_dir))
        return
    with tempfile.TemporaryDirectory(prefix="xstilts-save-") as tmp:
        yield Path(tmp)


# -- evaluation ------------------------------------------------------------------------------

def run_eval(ctx: JobContext, spec: EvalSpec, model_ref: str, *, tags: dict[str, str] | None = None,
             wait: bool = False) -> EvalOutcome | None:
    """``spec`` scored on ``model_ref``: found in the store, or evaluated and logged now."""
    key = spec.key(model_ref)

    def find():
        record = ctx.store.find_evaluation(key)
        return None if record is None else EvalOutcome(key, model_ref, record, reused=True)

    def work(claim):
        from xstilts.evaluation.runner import eval_record, evaluate_model, load_eval_model, log_report

        ctx.store.fail_running("eval_key", key)
        with ctx.timings.phase("model_load"):
            em = load_eval_model(model_ref, needs_head=_needs_head(spec.task),
                                 store=ctx.store, num_hidden_layers=spec.encoder_layers)
        report = evaluate_model(model_ref, spec.task, langs=list(spec.langs), split=spec.split,
                                max_examples=spec.max_examples, batch_size=spec.batch_size, bf16=spec.bf16,
                                out_dir=ctx.eval_dir / key, layer=spec.layer, max_length=spec.max_length,
                                bucc_threshold_policy=spec.bucc_threshold_policy, max_tokens=spec.max_tokens,
                                log_to_mlflow=False, progress=ctx.progress, model=em, timings=ctx.timings,
                                device=ctx.device)
        # a trained model's evaluation is a child of its training run (log_report's default);
        # a bare encoder's, of the grid's run
        with ctx.timings.phase("tracking"):
            run_id = log_report(report, em, ctx.store, parent_id=None if em.run_id else ctx.parent_run_id,
                                tags={"eval_key": key, **(tags or {})}, adopt_launch=ctx.adopt_launch)
        return EvalOutcome(key, model_ref, eval_record(report) | {"run_id": run_id}, reused=False)

    return _until_done(ctx, f"eval-{key}", find, work, wait)


def _needs_head(task_name: str) -> bool:
    from xstilts.tasks import get_task

    return get_task(task_name).family.needs_head


def _until_done(ctx: JobContext, key: str, find, work, wait: bool):
    while True:
        out = ctx.store.run_once(key, find, work)
        if out is not None or not wait:
            return out
        log.info("job %s is being run by %s; waiting", key, ctx.store.claims.holder(key))
        time.sleep(ctx.poll_seconds)


# -- the jobs of a plan ----------------------------------------------------------------------

@dataclass(frozen=True)
class TrainJob:
    """Train ``config``; a target's ``init_from`` comes from the job it ``needs``."""

    id: str
    config: PhaseConfig
    needs: tuple[str, ...] = ()
    label: str = ""
    tune_job: str | None = None  # the TuneJob (among ``needs``) whose best values it trains with
    tags: dict[str, str] = field(default_factory=dict, hash=False, compare=False)  # on its run

    def run(self, ctx: JobContext, done: dict[str, Any]):
        cfg, tags = self.config, dict(self.tags)
        models = [n for n in self.needs if n != self.tune_job]
        if models:
            cfg = replace(cfg, init_from=done[models[0]].model_uri)
        if self.tune_job:
            from xstilts.tuning.space import apply_params

            tuned = done[self.tune_job]
            cfg = replace(cfg, training=apply_params(cfg.training, tuned.best_params))
            tags |= tuned.tags()
        return run_train(ctx, cfg, tags=tags)


@dataclass(frozen=True)
class TuneJob:
    """Tune ``config``'s training values with an Optuna study (``tuning``); per condition, its
    trials start from the intermediate model of the job it ``needs``.

    Not claimed: the study's RDB storage shares its trials between processes."""

    id: str
    config: PhaseConfig
    tuning: Any                              # xstilts.tuning.config.TuningConfig
    needs: tuple[str, ...] = ()
    label: str = ""
    evaluation_uses: tuple = ()              # the evaluation the tuned models get (leakage check)
    subject: str = ""                        # what is tuned, for the report ("panx", "the intermediate phase xnli")
    start: str = ""                          # what its trials train from, for the report

    def run(self, ctx: JobContext, done: dict[str, Any]):
        from xstilts.tuning.run import tune_target

        cfg, init_dir = self.config, None
        with contextlib.ExitStack() as scope:  # a downloaded model to start from lives as long as the study
            if self.needs:
                cfg = replace(cfg, init_from=done[self.needs[0]].model_uri)
                init_dir = str(scope.enter_context(ctx.store.fetched(cfg.init_from)))
            return tune_target(ctx.store, self.tuning, cfg, init_dir=init_dir, parent_run_id=ctx.parent_run_id,
                               progress=ctx.progress, evaluation_uses=self.evaluation_uses)


@dataclass(frozen=True)
class EvalJob:
    """Score the model of the job it ``needs`` (or the fixed ``model``) as ``spec`` says."""

    id: str
    spec: EvalSpec
    model: str | None = None
    needs: tuple[str, ...] = ()
    label: str = ""
    tags: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def run(self, ctx: JobContext, done: dict[str, Any]) -> EvalOutcome | None:
        ref = done[self.needs[0]].model_uri if self.needs else self.model
        return run_eval(ctx, self.spec, ref, tags=self.tags)
