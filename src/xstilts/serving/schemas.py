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


#: ``POST /invocations``' body in the OpenAPI schema (the route parses it itself: MLflow's four formats)
SCORING_REQUEST = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {
        "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
        "description": "exactly one of MLflow's scoring formats; rows have the model's fields (GET /models)",
        "properties": {
            "dataframe_records": {"type": "array", "items": {"type": "object"}},
            "dataframe_split": {"type": "object", "required": ["columns", "data"],
                                "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                                               "data": {"type": "array", "items": {"type": "array"}}}},
            "inputs": {"type": ["array", "object"]},
            "instances": {"type": ["array", "object"]},
        }},
    "examples": {"records": {"value": {"dataframe_records": [{"text": "Rais Samia Suluhu Hassan alizuru Nairobi."}]}},
                 "split": {"value": {"dataframe_split": {"columns": ["words"],
                                                         "data": [[["Olusegun", "Obasanjo", "wa", "Abeokuta"]]]}}}},
}}}}
