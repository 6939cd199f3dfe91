"""Request limits and row validation: every bad request is a 4xx JSON error naming the problem.

MLflow's scoring formats (``dataframe_split``, ``dataframe_records``, ``inputs``,
``instances``) are turned into rows here; rows are then checked against the model's
family schema (``TaskFamily.serving``: field names and types, required fields) and the
limits (:class:`Limits`) before any row reaches the model.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xstilts.errors import XstiltsError

_ALLOWED_CONTROL = {"\t", "\n", "\r"}


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1_000_000     # 413 beyond
    max_rows: int = 64                  # rows per request, 413 beyond
    max_text_chars: int = 5_000         # characters per string field, 422 beyond
    max_list_items: int = 256           # words of a tagging row, choices of a multiple-choice row


def rows_from_scoring(payload: Any) -> list[Any]:
    """Rows of an MLflow scoring request (the four JSON formats ``mlflow models serve`` accepts)."""
    if not isinstance(payload, Mapping):
        raise RequestError(422, "the body must be a JSON object with one of the keys dataframe_split, "
                                "dataframe_records, inputs, instances")
    keys = [k for k in ("dataframe_split", "dataframe_records", "inputs", "instances") if k in payload]
    if len(keys) != 1:
        raise RequestError(422, f"give exactly one of dataframe_split, dataframe_records, inputs, instances "
                                f"(got {sorted(payload)})")
    body = payload[keys[0]]
    if keys[0] == "dataframe_split":
        if not isinstance(body, Mapping) or not isinstance(body.get("columns"), list) \
                or not isinstance(body.get("data"), list):
            raise RequestError(422, "dataframe_split needs 'columns' (a list) and 'data' (a list of rows)")
        cols = body["columns"]
        if not all(isinstance(r, list) and len(r) == len(cols) for r in body["data"]):
            raise RequestError(422, f"every dataframe_split row must be a list of {len(cols)} values")
        return [dict(zip(cols, r)) for r in body["data"]]
    if isinstance(body, Mapping):  # columnar: {"text": [...], ...}
        cols = list(body)
        if not all(isinstance(v, list) for v in body.values()) or len({len(v) for v in body.values()}) > 1:
            raise RequestError(422, f"{keys[0]} as columns needs lists of one length per column")
        return [dict(zip(cols, vals)) for vals in zip(*body.values())]
    if not isinstance(body, list):
        raise RequestError(422, f"{keys[0]} must be a list of records")
    return body


def _check_text(where: str, value: Any, limits: Limits) -> None:
    if not isinstance(value, str):
        raise RequestError(422, f"{where}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise RequestError(422, f"{where}: empty string")
    if len(value) > limits.max_text_chars:
        raise RequestError(422, f"{where}: {len(value)} characters, at most {limits.max_text_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(422, f"{where}: not valid Unicode text (a lone surrogate)") from None
    bad = next((c for c in value if c not in _ALLOWED_CONTROL and unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise RequestError(422, f"{where}: control character U+{ord(bad):04X}")


def _check_field(where: str, field, value: Any, limits: Limits) -> None:
    """``value`` of ``field`` (a :class:`~xstilts.families.base.ServingField`) within ``limits``."""
    if field.type != "list[string]":
        _check_text(where, value, limits)
        return
    if not isinstance(value, list) or not value:
        raise RequestError(422, f"{where}: expected a non-empty list of strings")
    if len(value) > limits.max_list_items:
        raise RequestError(422, f"{where}: {len(value)} items, at most {limits.max_list_items}")
    for j, item in enumerate(value):
        _check_text(f"{where}[{j}]", item, limits)
        if field.words and any(c.isspace() for c in item):  # a choice may be a phrase; a word may not
            raise RequestError(422, f"{where}[{j}]: a word may not contain whitespace")


def check_rows(family, rows: Any, limits: Limits) -> list[dict[str, Any]]:
    """Rows validated against ``family.serving`` and ``limits`` (``RequestError`` naming the first problem)."""
    if not isinstance(rows, list) or not rows:
        raise RequestError(422, "expected a non-empty list of input rows")
    if len(rows) > limits.max_rows:
        raise RequestError(413, f"{len(rows)} rows in one request, at most {limits.max_rows}")
    fields = {f.name: f for f in family.serving.inputs}
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RequestError(422, f"row {i}: expected an object with fields {sorted(fields)}")
        unknown = sorted(set(row) - set(fields))
        if unknown:
            raise RequestError(422, f"row {i}: unknown field(s) {unknown}; this model takes {sorted(fields)}")
        clean = {k: v for k, v in row.items() if v is not None}
        for name, value in clean.items():
            _check_field(f"row {i}: field {name!r}", fields[name], value, limits)
        try:
            family.check_row(i, clean)
        except XstiltsError as exc:
            raise RequestError(422, str(exc)) from None
        out.append(clean)
    return out


class _BodyTooLarge(RequestError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body over {max_bytes} bytes")


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` (declared or streamed) is answered 413."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_413(send, self.max_bytes)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_413(send, self.max_bytes)


async def _send_413(send, max_bytes: int) -> None:
    import json

    body = json.dumps({"error": {"status": 413, "message": f"request body over {max_bytes} bytes"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
