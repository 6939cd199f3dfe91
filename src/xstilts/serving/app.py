"""The ASGI app: several exported models in one process, over ONNX Runtime.

Endpoints (``/docs`` shows them, ``/openapi.json`` is the schema):

- ``POST /invocations`` -- MLflow's scoring protocol (``dataframe_split``, ``dataframe_records``,
  ``inputs``, ``instances``); answers ``{"predictions": [...]}`` as ``mlflow models serve`` does,
  plus the model's name and version. With several models, ``?model=NAME`` picks one.
- ``POST /models/{name}/{endpoint}`` -- task-shaped: ``classify`` (a sentence or pair),
  ``tag`` (words or raw text -> tokens with tags and character offsets, and entities),
  ``answer`` (question + context -> answer span with offsets), ``choose`` (multiple choice),
  ``embed`` (sentence embeddings); body ``{"inputs": [row, ...]}``.
- ``GET /ping``, ``/health``, ``/version``, ``/models``.

Every error is JSON ``{"error": {"status": N, "message": "..."}}``: malformed JSON, wrong
fields or types, unknown models, empty or over-long strings, control characters, a span QA
question too long for its window, a word longer than a window (422); too many rows or too large
a body (413). Span QA answers carry character offsets and a score. Concurrent requests to one
model are batched (:mod:`.batching`).
"""
from __future__ import annotations

import contextlib

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import Request

from xstilts.errors import XstiltsError
from xstilts.serving.batching import DynamicBatcher
from xstilts.serving.limits import Limits, RequestError, check_rows, rows_from_scoring
from xstilts.serving.schemas import SCORING_REQUEST, TaskRequest


@dataclass(frozen=True)
class ServeSettings:
    limits: Limits = field(default_factory=Limits)
    max_batch_rows: int = 32         # rows per ONNX Runtime call across concurrent requests
    max_wait_ms: float = 0.0         # how long a batch waits for more requests (0: only those waiting)
    intra_op_threads: int = 0        # ONNX Runtime threads per operator (0: its default)
    inter_op_threads: int = 0
    workers: int = 1                 # batches of one model running at once
    spinning: bool = False           # ONNX Runtime's busy-waiting threads


class _Served:
    """One model of the app with its batcher."""

    def __init__(self, model, settings: ServeSettings) -> None:
        self.model = model
        # a model that runs every row alone (blockwise or dynamic int8) gains nothing from joining
        # requests, which would only make the last row wait for the others: single-request batches
        rows = 1 if getattr(model.model, "row_wise", False) else settings.max_batch_rows
        kw = dict(max_batch_rows=rows, max_wait_s=settings.max_wait_ms / 1000, workers=settings.workers,
                  cost=model.cost)
        self.batcher = DynamicBatcher(model.predict, **kw)                  # /invocations: plain outputs
        self.described = DynamicBatcher(model.predict_described, **kw)      # task-shaped endpoints

    def checked(self, rows: Any, limits: Limits) -> list[dict[str, Any]]:
        """``rows`` checked against the schema, the limits and what the model can featurize (422 naming
        the row), so that a bad row never reaches a batch."""
        rows = check_rows(self.model.family, rows, limits)
        try:
            self.model.check(rows)
        except XstiltsError as exc:
            raise RequestError(422, str(exc)) from None
        return rows

    async def answer(self, batcher: DynamicBatcher, rows: list[dict[str, Any]]) -> list[Any]:
        """``rows`` through ``batcher``; a row the featurizer refuses (a word longer than a window) is a
        422 naming it (a failed joint batch is retried per request, so the row index is this request's)."""
        try:
            return await batcher.submit(rows)
        except XstiltsError as exc:
            raise RequestError(422, str(exc)[:2000]) from None

    def info(self) -> dict[str, Any]:
        m = self.model.manifest
        return {"name": self.model.name, "version": self.model.version, "task": m["task"], "family": m["family"],
                "endpoint": m["endpoint"], "precision": m["precision"],
                "int8_form": self.model.int8_form, "max_length": m["max_length"],
                "labels": m.get("labels"), "inputs": m["serving"]["inputs"]}


def _stats(plain: dict[str, Any], described: dict[str, Any]) -> dict[str, Any]:
    """Both batchers of a model as one: batches and rows summed."""
    return {**plain, **{k: plain[k] + described[k] for k in ("batches", "rows")}}


def _error(status: int, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)


async def _json_body(request) -> Any:
    body = await request.body()
    if not body:
        raise RequestError(422, "empty request body; send JSON")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None
    except RecursionError:  # a body of nested brackets deeper than the parser's stack
        raise RequestError(400, "malformed JSON: nested too deeply") from None


def _install_errors(app) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(RequestError)
    async def request_error(request, exc: RequestError):
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):
        return _error(500, f"internal error: {type(exc).__name__}")


def create_app(models: list, settings: ServeSettings = ServeSettings()):
    """The FastAPI app serving ``models`` (:class:`~xstilts.export.runtime.ServedModel` objects)."""
    from fastapi import FastAPI

    from xstilts import __version__
    from xstilts.serving.limits import BodyLimit

    served = {m.name: _Served(m, settings) for m in models}
    app = FastAPI(title="xstilts serving", version=__version__, lifespan=_lifespan,
                  description="Cross-lingual inference with exported xstilts models (ONNX Runtime).")
    app.state.served, app.state.settings = served, settings
    _install_errors(app)
    _add_meta_routes(app)
    _add_predict_routes(app, sorted(served), sorted({s.model.manifest["endpoint"] for s in served.values()}))
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_body_bytes)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app):
    """At shutdown every batcher ends its worker threads, which let go of the models."""
    yield
    for s in app.state.served.values():
        for batcher in (s.batcher, s.described):
            await batcher.aclose()


def _served_of(request: Request) -> dict[str, _Served]:
    """The app's models. Routes read them from the app rather than close over them: FastAPI keeps
    every endpoint function it has seen in a process-wide cache, so a closure would keep an app's
    ONNX Runtime sessions alive after the app is gone (the export tests' 11 apps: 6 GB)."""
    return request.app.state.served


def _add_meta_routes(app) -> None:
    import onnxruntime

    from xstilts import __version__

    @app.get("/ping")
    async def ping() -> dict:
        return {"status": "ok"}

    @app.get("/health")
    async def health(request: Request) -> dict:
        models = {n: _stats(s.batcher.stats(), s.described.stats()) for n, s in _served_of(request).items()}
        return {"status": "ok", "models": models,
                "settings": asdict(request.app.state.settings)}

    @app.get("/version")
    async def version(request: Request) -> dict:
        return {"xstilts": __version__, "onnxruntime": onnxruntime.__version__,
                "models": [{"name": n, "version": s.model.version} for n, s in _served_of(request).items()]}

    @app.get("/models")
    async def list_models(request: Request) -> dict:
        return {"models": [s.info() for s in _served_of(request).values()]}


def _pick(served: dict[str, _Served], name: str | None) -> _Served:
    if name is None:
        if len(served) == 1:
            return next(iter(served.values()))
        raise RequestError(422, f"several models are served ({sorted(served)}); pass ?model=NAME")
    if name not in served:
        raise RequestError(404, f"unknown model {name!r}; served: {sorted(served)}")
    return served[name]


def _add_predict_routes(app, model_names: list[str], endpoint_names: list[str]) -> None:
    from fastapi import Path

    # the schema lists what is served, so clients (and schemathesis) see the valid names
    names = Path(description="a served model (GET /models)", json_schema_extra={"enum": model_names})
    endpoints = Path(description="the model's task endpoint", json_schema_extra={"enum": endpoint_names})

    @app.post("/invocations", openapi_extra=SCORING_REQUEST)
    async def invocations(request: Request, model: str | None = None) -> dict:
        """MLflow's scoring protocol; the predictions are the model family's plain outputs."""
        s = _pick(_served_of(request), model)
        rows = s.checked(rows_from_scoring(await _json_body(request)), request.app.state.settings.limits)
        predictions = await s.answer(s.batcher, rows)
        return {"predictions": predictions, "model": s.model.name, "version": s.model.version}

    @app.post("/models/{name}/{endpoint}")
    async def task_endpoint(request: Request, body: TaskRequest, name: str = names,
                            endpoint: str = endpoints) -> dict:
        """Task-shaped answers: ``classify``, ``tag``, ``answer``, ``choose`` or ``embed``
        (each model answers its family's one; ``GET /models`` lists them)."""
        s = _pick(_served_of(request), name)
        if endpoint != s.model.manifest["endpoint"]:
            raise RequestError(404, f"model {name!r} ({s.model.manifest['task']}) answers "
                                    f"/models/{name}/{s.model.manifest['endpoint']}, not {endpoint!r}")
        rows = s.checked(body.inputs, request.app.state.settings.limits)
        return {"model": s.model.name, "version": s.model.version, "task": s.model.manifest["task"],
                "predictions": await s.answer(s.described, rows)}
