"""Request bodies of the task-shaped endpoints (the OpenAPI schema shows them)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskRequest(BaseModel):
    """``{"inputs": [row, ...]}``: rows with the model's fields (``GET /models`` lists them)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"inputs": [{"text": "Rais wa Kenya alizuru Dar es Salaam mwezi Machi."}]},
        {"inputs": [{"question": "Who visited?", "context": "Angela Merkel visited Paris in May."}]}]})

    inputs: list[dict[str, Any]] = Field(description="request rows (classify: text[, text_pair]; tag: words "
                                                     "or text; answer: question, context; choose: question, "
                                                     "choices[, context]; embed: text)")
