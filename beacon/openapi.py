"""The OpenAPI 3.1 document, built from the request models so it cannot drift from validation."""

from __future__ import annotations

from typing import Any

from beacon.api import BroadcastIn

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "detail": {}},
}
_PREVIEW = {
    "type": "object",
    "required": ["recipients", "by_language", "by_channel", "missing_languages", "fallback_language",
                 "estimated_cost_usd"],
    "properties": {
        "recipients": {"type": "integer", "minimum": 0},
        "by_language": {"type": "array", "items": {
            "type": "object",
            "required": ["language", "recipients", "has_text", "encoding", "characters", "segments",
                         "estimated_cost_usd"],
            "properties": {
                "language": {"type": "string"}, "recipients": {"type": "integer"}, "has_text": {"type": "boolean"},
                "encoding": {"enum": ["GSM-7", "UCS-2"]}, "characters": {"type": "integer"},
                "segments": {"type": "integer"}, "estimated_cost_usd": {"type": "number"},
            },
        }},
        "by_channel": {"type": "object", "additionalProperties": {"type": "integer"}},
        "missing_languages": {"type": "array", "items": {"type": "string"}},
        "fallback_language": {"type": "string"},
        "estimated_cost_usd": {"type": "number"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"description": {401: "no valid token", 403: "role may not", 422: "invalid body"}[code],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for code in codes}


def document() -> dict[str, Any]:
    """The API description served at /api/v1/openapi.json."""
    broadcast = BroadcastIn.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = broadcast.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Beacon responder API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, "BroadcastIn": broadcast, "Preview": _PREVIEW, **definitions},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/broadcasts/preview": {"post": {
                "summary": "Who a broadcast would reach, in which languages and channels, and what it costs",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/BroadcastIn"}}}},
                "responses": {
                    "200": {"description": "the preview", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Preview"}}}},
                    **_errors(401, 403, 422),
                },
            }},
        },
    }
