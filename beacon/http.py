"""What every web handler shares: the caller, the role rule, JSON errors, body and id parsing.

The API and the console both build on this module; it imports neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from beacon.context import BEACON
from domain.vocabulary import Role
from registry import arrangements
from registry.tokens import Caller, authenticate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CALLER = web.RequestKey("caller", Caller)
MAX_ID = 2**63 - 1  # the largest id a BIGINT column holds
Model = TypeVar("Model", bound=BaseModel)


def may(role: str, allowed: Collection[str]) -> bool:
    """The one role rule of the API and the console: admin may do everything, others what they are allowed."""
    return role == Role.ADMIN or role in allowed


def record_id(raw: str) -> int | None:
    """A record id as it appears in a path; None for anything that cannot be one."""
    if not (raw.isascii() and raw.isdecimal()) or not 0 < int(raw) <= MAX_ID:
        return None
    return int(raw)


def api_error(status: int, code: str, message: str, detail: Any = None) -> web.HTTPException:
    """A JSON error response to raise."""
    body: dict[str, Any] = {"error": code, "message": message}
    if detail is not None:
        body["detail"] = detail
    exc = web.HTTPException(text=web.json_response(body).text, content_type="application/json")
    exc.set_status(status)
    return exc


def path_id(request: web.Request, what: str, name: str = "id") -> int:
    """The id in the path of an API request; a JSON 404 naming ``what`` when there cannot be one."""
    found = record_id(request.match_info[name])
    if found is None:
        raise api_error(404, "not_found", f"no such {what}")
    return found


def requires(*roles: Role) -> Callable[[Handler], Handler]:
    """Allow an API handler to the given roles (admin always)."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            caller = request.get(CALLER)
            if caller is None:
                raise api_error(401, "unauthorized", "a valid bearer token is required")
            if not may(caller.role, roles):
                if caller.role == Role.PARTNER:  # every attempt of a partner is audited with its arrangement
                    async with request.app[BEACON].db.write() as conn:
                        await arrangements.audit_use(conn, caller.name, caller.arrangement_id, "endpoint",
                                                     {"path": request.path, "method": request.method})
                raise api_error(403, "forbidden", f"role {caller.role!r} may not do this")
            return await handler(request)

        guarded.__doc__ = handler.__doc__
        return guarded

    return wrap


async def parse(request: web.Request, model: type[Model]) -> Model:
    """Validate a JSON body; 422 naming each wrong field."""
    try:
        raw = await request.json()
    except ValueError:
        raise api_error(422, "invalid_json", "the body must be a JSON object") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        detail = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()]
        fields = ", ".join(d["field"] for d in detail)
        raise api_error(422, "validation_error", f"invalid field(s): {fields}", detail) from None


@web.middleware
async def authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the caller of a valid bearer token to API requests."""
    if request.path.startswith("/api/") and request.path != "/api/v1/openapi.json":
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise api_error(401, "unauthorized", "a valid bearer token is required")
        caller = await authenticate(request.app[BEACON].db, token.strip())
        if caller is None:
            raise api_error(401, "unauthorized", "a valid bearer token is required")
        request[CALLER] = caller
    return await handler(request)
