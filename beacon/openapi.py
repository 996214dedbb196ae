"""The OpenAPI 3.1 document, built from the request models so it cannot drift from validation."""

from __future__ import annotations

from typing import Any

from beacon import (
    api_arrangements,
    api_cap,
    api_hxl,
    api_polls,
    api_reports,
    api_sources,
    api_stats,
    api_webhooks,
)
from beacon.api_broadcasts import BroadcastIn
from domain.vocabulary import CaseStatus, CheckInStatus, Need

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
                "calls": {"type": "integer", "description": "recipients reached by a phone call"},
                "call_minutes": {"type": "integer", "description": "billed minutes one call is estimated at"},
            },
        }},
        "by_channel": {"type": "object", "additionalProperties": {"type": "integer"}},
        "missing_languages": {"type": "array", "items": {"type": "string"}},
        "fallback_language": {"type": "string"},
        "estimated_cost_usd": {"type": "number"},
    },
}


_COUNTS = {"type": "object", "required": ["recipients", "queued", "sent", "delivered", "failed"],
           "properties": {k: {"type": "integer", "minimum": 0} for k in
                          ("recipients", "queued", "sent", "delivered", "failed", *CheckInStatus)}
           | {"poll": {"type": "object", "description": "option number -> recipients whose latest answer it is",
                       "additionalProperties": {"type": "integer", "minimum": 0}}},
           "additionalProperties": False}
_BROADCAST = {
    "type": "object",
    "required": ["id", "status", "check_in", "texts", "audience", "send_at", "created_at", "created_by", "counts"],
    "properties": {
        "id": {"type": "integer"},
        "status": {"enum": ["draft", "scheduled", "sending", "sent", "cancelled", "withdrawn"]},
        "check_in": {"type": "boolean"}, "texts": {"type": "object", "additionalProperties": {"type": "string"}},
        "audience": {"type": "object"}, "send_at": {"type": "string", "format": "date-time"},
        "created_at": {"type": "string", "format": "date-time"}, "created_by": {"type": "string"},
        "remind_after_minutes": {"type": ["integer", "null"]}, "call_reminders": {"type": "boolean"},
        "counts": {"$ref": "#/components/schemas/Counts"},
        "poll": {"type": "object", "description": "the question and options, when the broadcast asks a poll"},
        "cap": {"type": "array", "items": {"type": "object"},
                "description": "the CAP messages that made or concern this broadcast"},
    },
}
_CASE = {
    "type": "object",
    "required": ["id", "registrant_id", "area", "category", "status", "assignee", "details", "notes", "created_at",
                 "updated_at"],
    "properties": {
        "id": {"type": "integer"}, "registrant_id": {"type": "integer"}, "broadcast_id": {"type": ["integer", "null"]},
        "area": {"type": ["string", "null"]},
        "category": {"enum": [*Need, None]},
        "status": {"enum": [*CaseStatus]}, "assignee": {"type": ["string", "null"]},
        "details": {"type": ["string", "null"]},
        "notes": {"type": "array", "items": {"type": "object", "required": ["at", "by", "text"]}},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"},
    },
}
_AUDIT = {
    "type": "object", "required": ["seq", "at", "actor", "action", "subject", "detail", "hash"],
    "properties": {"seq": {"type": "integer"}, "at": {"type": "string"}, "actor": {"type": "string"},
                   "action": {"type": "string"}, "subject": {"type": ["string", "null"]},
                   "detail": {"type": "string"}, "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
}
_CASE_CHANGE = {
    "type": "object", "additionalProperties": False,
    "properties": {"status": {"enum": [*CaseStatus]},
                   "assignee": {"type": "string", "maxLength": 64}, "note": {"type": "string", "maxLength": 2000}},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _items(name: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": _ref(name)}}}


_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"description": {401: "no valid token", 403: "role may not", 404: "not found",
                                        409: "the change does not apply", 413: "too large",
                                        415: "not an accepted media type", 422: "invalid input"}[code],
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
            "schemas": {"Error": _ERROR, "BroadcastIn": broadcast, "Preview": _PREVIEW, "Counts": _COUNTS,
                        "Broadcast": _BROADCAST, "Case": _CASE, "CaseChange": _CASE_CHANGE, "AuditEntry": _AUDIT,
                        **definitions, **api_reports.openapi_schemas(),
                        **api_arrangements.openapi_schemas(),
                        **api_sources.openapi_schemas()},
        },
        "security": [{"bearer": []}],
        "webhooks": api_webhooks.openapi_webhooks(),
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
            "/api/v1/broadcasts": {
                "post": {"summary": "Send a broadcast now or at send_at", "requestBody": {
                    "required": True, "content": {"application/json": {"schema": _ref("BroadcastIn")}}},
                    "responses": {"201": _json(_ref("Broadcast"), "created"), **_errors(401, 403, 422)}},
                "get": {"summary": "The latest broadcasts",
                        "responses": {"200": _json(_items("Broadcast"), "broadcasts"), **_errors(401, 403)}},
            },
            "/api/v1/broadcasts/{id}": {"get": {
                "summary": "A broadcast with its tallies", "parameters": _ID,
                "responses": {"200": _json(_ref("Broadcast"), "the broadcast"), **_errors(401, 403, 404)}}},
            "/api/v1/broadcasts/{id}/cancel": {"post": {
                "summary": "Stop what has not left", "parameters": _ID,
                "responses": {"200": _json(_ref("Broadcast"), "the broadcast"), **_errors(401, 403, 404)}}},
            "/api/v1/broadcasts/{id}/send": {"post": {
                "summary": "Send a draft now (a CAP alert's draft, after review)", "parameters": _ID,
                "responses": {"200": _json(_ref("Broadcast"), "the broadcast"), **_errors(401, 403, 404, 409)}}},
            "/api/v1/cases": {"get": {
                "summary": "Need-help cases (every read is audited)",
                "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                               for n in ("status", "area", "category")],
                "responses": {"200": _json(_items("Case"), "cases"), **_errors(401, 403, 422)}}},
            "/api/v1/cases/{id}": {"patch": {
                "summary": "Assign, annotate or move a case", "parameters": _ID,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CaseChange")}}},
                "responses": {"200": _json(_ref("Case"), "the case"), **_errors(401, 403, 404, 409, 422)}}},
            "/api/v1/audit": {"get": {
                "summary": "Audit log entries, newest first",
                "parameters": [
                    *({"name": n, "in": "query", "schema": {"type": "string"}} for n in ("actor", "action", "subject")),
                    {"name": "after", "in": "query", "description": "entries with a greater seq",
                     "schema": {"type": "integer", "minimum": 0}},
                    {"name": "before", "in": "query", "description": "entries with a smaller seq",
                     "schema": {"type": "integer", "minimum": 1}},
                    {"name": "since", "in": "query", "description": "entries at or after this time (ISO 8601 "
                     "with offset)", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "until", "in": "query", "description": "entries before this time",
                     "schema": {"type": "string", "format": "date-time"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": {"200": _json(_items("AuditEntry"), "entries"), **_errors(401, 403, 422)}}},
            "/api/v1/audit/head": {"get": {
                "summary": "The newest entry's seq and hash: a checkpoint to keep outside Beacon and pass to "
                           "`beacon audit verify --expect-seq --expect-hash` (seq 0 for an empty log)",
                "responses": {"200": _json({
                    "type": "object", "required": ["seq", "hash"], "additionalProperties": False,
                    "properties": {"seq": {"type": "integer", "minimum": 0},
                                   "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}, "the head"),
                    **_errors(401, 403)}}},
            "/api/v1/voice/prompts/{lang}/{key}": {"put": {
                "summary": "Store the recording of one voice prompt in one language (admin): played where Twilio "
                           "has no voice for the language",
                "parameters": [{"name": "lang", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "key", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,80}$"}}],
                "requestBody": {"required": True, "content": {"audio/mpeg": {"schema": {}},
                                                              "audio/wav": {"schema": {}}}},
                "responses": {
                    "201": _json({"type": "object", "required": ["language", "key", "format"],
                                  "properties": {"language": {"type": "string"}, "key": {"type": "string"},
                                                 "format": {"enum": ["mp3", "wav"]}}}, "stored"),
                    **_errors(401, 403, 404, 413, 415, 422)}}},
            **api_stats.openapi_paths(),
            **api_polls.openapi_paths(),
            **api_webhooks.openapi_paths(),
            **api_cap.openapi_paths(),
            **api_reports.openapi_paths(),
            **api_arrangements.openapi_paths(),
            **api_hxl.openapi_paths(),
            **api_sources.openapi_paths(),
        },
    }
