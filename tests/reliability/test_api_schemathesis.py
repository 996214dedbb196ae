"""schemathesis against the responder API of a running `beacon serve`, with a token for every role.

The schema is the server's own /api/v1/openapi.json. For every operation, generated requests are sent once
per role (admin, responder, analyst, auditor, partner): no answer may be a 5xx, and every answer must be one the
document lists for that operation, with a JSON body that matches its schema. A role that may not do
something must get the documented 403, not an undocumented status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import BaseSchema, Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from beacon.openapi import document
from domain.vocabulary import Role
from tests.reliability.harness import Server, create_token, record_arrangement, seed, server_env

EXAMPLES = 12  # per operation; each example is sent once per role
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schemathesis.serializer("audio/mpeg", "audio/wav")
def audio(_ctx: object, value: object) -> bytes:
    """A recorded prompt's body: whatever was generated, as bytes (the server must cope with any)."""
    return value if isinstance(value, bytes) else repr(value).encode()


class Api:
    def __init__(self, server: Server, tokens: dict[str, str]) -> None:
        self.server, self.tokens = server, tokens


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home: Path = tmp_path_factory.mktemp("schemathesis")
    env = server_env(home, BEACON_MIN_CELL="3")
    asyncio.run(seed(env, 40))
    arrangement = asyncio.run(record_arrangement(env))
    tokens = {role.value: create_token(env, home, role.value, f"fuzz-{role.value}",
                                       arrangement if role == Role.PARTNER else None) for role in Role}
    server = Server(env, home)
    asyncio.run(server.start())
    try:
        yield Api(server, tokens)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(api: Api) -> BaseSchema:
    schema = schemathesis.openapi.from_url(api.server.url + "/api/v1/openapi.json",
                                           headers={"Authorization": f"Bearer {api.tokens['admin']}"})
    schema.config.base_url = api.server.url
    return schema


# The operations to test, named from the document the app serves (collected without a running server).
OPERATIONS = [(path, method) for path, methods in document()["paths"].items() for method in methods]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_api_conforms_for_every_role(path: str, method: str, api: Api, api_schema: BaseSchema) -> None:
    operation = api_schema[path][method.upper()]

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    def check(case: Case) -> None:
        for role, secret in api.tokens.items():
            try:
                case.call_and_validate(base_url=api.server.url, headers={"Authorization": f"Bearer {secret}"},
                                       checks=CHECKS, timeout=30)
            except Exception as exc:
                exc.add_note(f"role: {role}")
                raise

    check()
