"""Typed run configs: the single source of truth for one training run.

A :class:`PhaseConfig` is built from CLI flags / MLflow params or a YAML file,
validated (unknown names, leakage), logged with the run as ``config.yaml`` and
hashed into a ``run_key``: two runs with the same key would train the same model,
so a finished one is reused instead of retrained.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

from xstilts.errors import XstiltsError

BF16_MODES = ("weights", "autocast")
TRAINING_VERSION = 3  # bump when the training code changes what a config produces
SELECTION_POLICIES = ("english_dev", "last", "target_dev")
CONDITIONS = ("none", "en", "multi", "en+mlm")
Phase = Literal["intermediate", "target"]


def as_section(cls, value: Any, where: str) -> Any:
    """A config section (a YAML mapping) as ``cls``; one that is already a ``cls`` as it is. Anything else
    (a list, a string, a number) is one error naming the section, not an AttributeError later."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise XstiltsError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(value).__name__} "
                           f"{value!r:.60}")
    return cls(**value)


def as_sections(cls, value: Any, where: str) -> list:
    """A config list of sections (``where[i]`` each) as ``cls`` objects."""
    if not isinstance(value, list):
        raise XstiltsError(f"{where}: expected a list of mappings, got {type(value).__name__} {value!r:.60}")
    return [as_section(cls, v, f"{where}[{i}]") for i, v in enumerate(value)]


@dataclass
class TrainingArgs:
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (linear warmup, linear decay)."})
    batch_size: int = field(default=32, metadata={"help": "Training examples per step."})
    epochs: float = field(default=3.0, metadata={"help": "Passes over the training data (ignored if max_steps > 0)."})
    max_steps: int = field(default=0, metadata={"help": "Total optimizer steps; 0 = derive from epochs."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of steps with linear warmup."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on biases/LayerNorm)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm; 0 = off."})
    max_length: int | None = field(default=None, metadata={
        "help": "Longest input in tokens (QA: window length); None = the task family's default "
                "(XTREME's: 384 for QA, else 128)."})
    doc_stride: int | None = field(default=None, metadata={
        "help": "QA: tokens shared by consecutive windows; None = the task family's default (128)."})
    bf16: bool | None = field(default=None, metadata={"help": "bf16 training; None = where the CPU has it natively."})
    bf16_mode: str = field(default="weights", metadata={
        "help": "How bf16 trains: 'weights' (bf16 model, fp32 master copies for the optimizer; no per-step "
                "casts) or 'autocast' (fp32 model under torch.autocast)."})
    freeze_word_embeddings: bool = field(default=True, metadata={
        "help": "Keep the word embeddings fixed: much faster on CPU and the stored model omits them."})
    eval_every: int = field(default=0, metadata={"help": "Steps between dev evaluations; 0 = once per epoch."})
    checkpoint_every: int = field(default=0, metadata={"help": "Steps between resumable checkpoints; 0 = at each eval."})
    eval_batch_size: int = field(default=64, metadata={"help": "Examples per evaluation batch."})
    threads: int = field(default=0, metadata={
        "help": "Torch threads; 0 = OMP_NUM_THREADS when set, else all available cores."})
    device: str = field(default="auto", metadata={
        "help": "Where to train: auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N. "
                "Like threads, not part of the run_key."})

    def check(self, where: str) -> None:
        """Each value in its range (types: :func:`check_types`), else one error naming the field."""
        import math

        finite = all(math.isfinite(v) for v in (self.learning_rate, self.epochs, self.warmup_ratio,
                                                 self.weight_decay, self.max_grad_norm))
        rules = [("learning_rate", self.learning_rate > 0, "> 0"), ("batch_size", self.batch_size >= 1, ">= 1"),
                 ("epochs", self.epochs > 0 or self.max_steps > 0, "> 0 (or max_steps > 0)"),
                 ("max_steps", self.max_steps >= 0, ">= 0"),
                 ("warmup_ratio", 0 <= self.warmup_ratio <= 1, "between 0 and 1"),
                 ("weight_decay", self.weight_decay >= 0, ">= 0"), ("max_grad_norm", self.max_grad_norm >= 0, ">= 0"),
                 ("max_length", self.max_length is None or self.max_length >= 1, ">= 1"),
                 ("doc_stride", self.doc_stride is None or self.doc_stride >= 1, ">= 1"),
                 ("eval_every", self.eval_every >= 0, ">= 0"), ("checkpoint_every", self.checkpoint_every >= 0, ">= 0"),
                 ("eval_batch_size", self.eval_batch_size >= 1, ">= 1"), ("threads", self.threads >= 0, ">= 0")]
        if not finite:
            raise XstiltsError(f"{where}: learning_rate, epochs, warmup_ratio, weight_decay and max_grad_norm "
                               f"must be finite numbers")
        for name, ok, rule in rules:
            if not ok:
                raise XstiltsError(f"{where}.{name}: {getattr(self, name)!r} is out of range (must be {rule})")


@dataclass
class TaskData:
    """One training task of a run and the dev data that selects its model."""

    task: str
    languages: list[str] = field(default_factory=lambda: ["en"])
    split: str = "train"
    max_examples: int | None = None
    spec: dict | None = None  # an IntermediateSpec as dict (multilingual or size-matched data)
    dev_split: str = "dev"
    dev_languages: list[str] = field(default_factory=lambda: ["en"])
    max_dev_examples: int | None = 500
    source: str | None = None  # None (vendored, else Hub), "local", "hub" or a directory


@dataclass
class MLMConfig:
    """Masked-LM loss on multilingual text mixed into intermediate training ("+MLM")."""

    task: str = "xnli"  # whose sentences are the text
    split: str = "dev"
    languages: list[str] = field(default_factory=lambda: ["sw", "ur", "hi", "th", "ar"])
    max_examples: int = 1000  # sentences per language
    mask_probability: float = 0.15
    weight: float = 1.0  # sampling weight relative to the task mixture


@dataclass
class PhaseConfig:
    phase: Phase
    tasks: list[TaskData]
    base_model: str = "default"
    init_from: str | None = None  # target phase: a registered intermediate model (models:/NAME/VERSION) or a dir
    condition: str = "en"
    seed: int = 0
    selection: str = "english_dev"
    mixture: str = "proportional"  # or "temperature"
    temperature: float = 2.0
    mlm: MLMConfig | None = None
    num_hidden_layers: int | None = None  # keep only the first N encoder layers (fast test models)
    store_dtype: str = "bfloat16"
    training: TrainingArgs = field(default_factory=TrainingArgs)
    experiment: str = "xstilts"
    register: bool = True
    # Datasets declared in a config (xstilts.tasks.declared), in recorded form; None: those of
    # the declared tasks this config uses, taken from the ones declared in this process.
    datasets: list[dict] | None = None

    def __post_init__(self) -> None:
        self.tasks = as_sections(TaskData, self.tasks, "tasks")
        self.training = as_section(TrainingArgs, self.training, "training")
        if self.mlm is not None:
            self.mlm = as_section(MLMConfig, self.mlm, "mlm")
        from xstilts.tasks.declared import declarations_for, declare_datasets

        if self.datasets:
            declare_datasets(self.datasets, source="config datasets")
        else:
            used = [t.task for t in self.tasks] + [self.mlm.task if self.mlm else None]
            self.datasets = declarations_for(used) or None

    # -- validation ---------------------------------------------------------
    def validate(self) -> PhaseConfig:
        from xstilts.tasks import get_task

        if self.phase not in ("intermediate", "target"):
            raise XstiltsError(f"config field phase: {self.phase!r} is not 'intermediate' or 'target'")
        if not self.tasks:
            raise XstiltsError("config field tasks: at least one task is needed")
        if self.selection not in SELECTION_POLICIES:
            raise XstiltsError(f"config field selection: {self.selection!r}; valid: {', '.join(SELECTION_POLICIES)}")
        if self.condition not in CONDITIONS:
            raise XstiltsError(f"config field condition: {self.condition!r}; valid: {', '.join(CONDITIONS)}")
        if self.mixture not in ("proportional", "temperature"):
            raise XstiltsError(f"config field mixture: {self.mixture!r}; valid: proportional, temperature")
        if self.phase == "target" and len(self.tasks) != 1:
            raise XstiltsError("config field tasks: the target phase trains exactly one task")
        if self.phase == "intermediate" and self.init_from:
            raise XstiltsError("config field init_from: only the target phase starts from an intermediate model")
        if self.mlm is not None and self.phase != "intermediate":
            raise XstiltsError("config field mlm: the masked-LM mixture belongs to the intermediate phase")
        from xstilts.runtime.device import check_device_setting

        check_device_setting(self.training.device, "config field training.device")
        self.training.check("config field training")
        if self.training.bf16_mode not in BF16_MODES:
            raise XstiltsError(f"config field training.bf16_mode: {self.training.bf16_mode!r}; "
                               f"valid: {', '.join(BF16_MODES)}")
        for i, t in enumerate(self.tasks):
            task = get_task(t.task)
            if not task.family.needs_head:
                raise XstiltsError(f"config field tasks[{i}].task: {t.task} has no training data "
                                   f"({task.family.name})")
            if t.spec is None:
                for lang in t.languages:
                    task.check_language(lang)
                task.check_split(t.split)
            for lang in t.dev_languages:
                task.check_language(lang)
            task.check_split(t.dev_split)
        from xstilts.data.leakage import check_no_leakage

        check_no_leakage(self.split_uses())
        return self

    def split_uses(self):
        from xstilts.data.intermediate_spec import spec_from_dict
        from xstilts.data.leakage import SplitUse, uses_from_spec

        role = "intermediate_train" if self.phase == "intermediate" else "target_train"
        uses = []
        for t in self.tasks:
            if t.spec is not None:
                uses += uses_from_spec(spec_from_dict(t.spec))
            else:
                uses.append(SplitUse(t.task, t.split, tuple(t.languages), role))
            if self.selection != "last":
                uses.append(SplitUse(t.task, t.dev_split, tuple(t.dev_languages), "model_selection"))
        if self.mlm is not None:
            uses.append(SplitUse(self.mlm.task, self.mlm.split, tuple(self.mlm.languages), role))
        return uses

    # -- serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> PhaseConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise XstiltsError(f"{source}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        try:
            cfg = cls(**data)
        except (TypeError, XstiltsError) as exc:  # a section of the wrong shape (see as_section)
            raise XstiltsError(f"{source}: {exc}") from None
        check_types(cfg, source)
        return cfg

    @classmethod
    def from_file(cls, path: str | Path) -> PhaseConfig:
        from xstilts.tasks.declared import declare_datasets

        data = load_yaml_mapping(path, "config")
        if data.get("datasets"):  # relative paths are relative to the config file
            data["datasets"] = declare_datasets(data["datasets"], base_dir=Path(path).parent,
                                                source=f"{path}: datasets")
        return cls.from_dict(data, source=str(path))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # -- identity ------------------------------------------------------------
    def run_key(self) -> str:
        """Hash of everything that determines the trained model (not threads, device, names or where it is logged)."""
        d = self.to_dict()
        for k in ("experiment", "register"):
            d.pop(k)
        from xstilts.tasks.declared import fingerprint

        datasets = d.pop("datasets")  # absent when none: run keys of built-in tasks stay as they were
        if datasets:
            d["datasets"] = sorted(fingerprint(x) for x in datasets)
        for k in ("threads", "eval_batch_size", "device"):  # where and how fast, not what is trained
            d["training"].pop(k)
        d["training"] |= self._resolved_lengths()
        d["training_version"] = TRAINING_VERSION
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _resolved_lengths(self) -> dict[str, Any]:
        """``max_length``/``doc_stride`` as training uses them: a left-out length is the tasks'
        family default, so a config that states the default keys the same model as one that
        leaves it out. One value when every task (and the MLM set) agrees, else one per task."""
        from xstilts.families import MASKED_LM, resolve_lengths
        from xstilts.tasks import get_task

        args = self.training
        per_task = [resolve_lengths(get_task(t.task), args.max_length, args.doc_stride) for t in self.tasks]
        if self.mlm is not None:
            per_task.append(MASKED_LM.lengths(args.max_length, args.doc_stride))
        out: dict[str, Any] = {}
        for k, key in enumerate(("max_length", "doc_stride") if per_task else ()):
            values = [v[k] for v in per_task]
            out[key] = values[0] if len(set(values)) == 1 else values
        return out

    def data_spec_hash(self) -> str:
        parts = [{"task": t.task, "languages": t.languages, "split": t.split, "max": t.max_examples, "spec": t.spec}
                 for t in self.tasks]
        if self.mlm is not None:
            parts.append(asdict(self.mlm))
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_types(obj: Any, source: str, path: str = "") -> None:
    """Every field of the config dataclass ``obj`` (and of those nested in it) holds a value of its annotated
    type, else one error naming the field (``source: path.field[i].sub: expected ..., got ...``): a YAML slip
    such as ``learning_rate: {}`` or ``seeds: 0`` is refused when the config loads, not minutes into a run."""
    import typing

    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        _check_value(getattr(obj, f.name), hints[f.name], source, f"{path}.{f.name}" if path else f.name)


def _check_value(value: Any, hint: Any, source: str, where: str) -> None:
    import typing

    if not _fits(value, hint):
        raise XstiltsError(f"{source}: {where}: expected {_type_name(hint)}, got {type(value).__name__} "
                           f"{value!r:.60}")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(hint):
        return _check_value(value, next(a for a in args if _fits(value, a)), source, where)
    if origin is list and args:
        for i, item in enumerate(value):
            _check_value(item, args[0], source, f"{where}[{i}]")
    elif origin is dict and args:
        for k, v in value.items():
            _check_value(v, args[1], source, f"{where}.{k}")
    elif is_dataclass(hint):
        check_types(value, source, where)


def _is_union(hint: Any) -> bool:
    import types
    import typing

    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the outer type of ``hint`` (any number for float; a bool is no int)."""
    import typing

    if hint is Any:
        return True
    if _is_union(hint):
        return any(_fits(value, a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is Literal:
        return value in typing.get_args(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typing.get_origin(hint) or hint)


def _type_name(hint: Any) -> str:
    import typing

    if _is_union(hint):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    return (origin or hint).__name__ if hasattr(origin or hint, "__name__") else str(hint)


@functools.cache
def _yaml_loader():
    """PyYAML's safe loader, reading ``3e-5`` as a number: YAML 1.1 (PyYAML's) wants a dot in the mantissa
    (``3.0e-5``) and reads ``3e-5`` as a string, the value people write for a learning rate."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                                 list("-+0123456789"))
    return Loader


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` of ``text``, with ``1e-4`` a float (see :func:`_yaml_loader`)."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)


def load_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping, with one-line errors naming the file."""
    import yaml

    path = Path(path)
    try:
        data = yaml_load(path.read_text())
    except FileNotFoundError:
        raise XstiltsError(f"{path}: {what} file not found") from None
    except yaml.YAMLError as exc:
        raise XstiltsError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise XstiltsError(f"{path}: expected a mapping of {what} fields at the top level")
    return data


def flatten_params(obj: Any, prefix: str = "") -> dict[str, str]:
    """Nested config -> flat ``a.b.c`` MLflow params (values as strings, lists JSON)."""
    if is_dataclass(obj):
        obj = asdict(obj)
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten_params(v, f"{prefix}{k}."))
        return out
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        for i, v in enumerate(obj):
            out.update(flatten_params(v, f"{prefix}{i}."))
        return out
    value = json.dumps(obj) if isinstance(obj, (list, tuple)) else str(obj)
    return {prefix.rstrip("."): value[:6000]}
