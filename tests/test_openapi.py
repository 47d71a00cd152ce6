"""The OpenAPI document (issue 11, item 4): served without a login, valid OpenAPI 3.1,
and in step with the routes the application serves."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from dispatch.settings import Settings
from web.app import create_app
from web.openapi import PATH_PARAMS, ROUTES, document

SAMPLE = {"code": "511703000000", "action": "start", "kind": "screening"}


def concrete(path: str) -> str:
    """`path` with a sample value for each parameter."""
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "1"), path)


async def test_the_document_is_served_without_a_login_and_validates(
    client: TestClient,
) -> None:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    patch = doc["paths"]["/api/v1/centers/{code}"]["patch"]
    ref = patch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False and "director" in schema["properties"]


def test_every_api_route_is_documented_and_every_documented_one_is_served(
    settings: Settings,
) -> None:
    app = create_app(settings)
    served: set[tuple[str, str]] = set()
    for route in app.router.routes():
        canonical = route.resource.canonical if route.resource else ""
        if canonical.startswith("/api/v1/") and route.method != "HEAD":
            served.add((route.method, canonical))
    documented: set[tuple[str, str]] = set()
    for op in ROUTES:
        for name in re.findall(r"\{(\w+)\}", op.path):
            assert name in PATH_PARAMS, op.path
        resolved = _resolve(app, op.method.upper(), concrete(op.path))
        assert resolved is not None, (op.method, op.path)
        documented.add((op.method.upper(), resolved))
    assert served == documented, (served - documented, documented - served)
    assert len(document()["paths"]) >= len({op.path for op in ROUTES})


def _resolve(app: web.Application, method: str, path: str) -> str | None:
    """The canonical path of the route that serves `method path`, or None."""
    for resource in app.router.resources():  # in order, as the router tries them
        info = resource.get_info()
        pattern = info.get("pattern")
        hit = pattern.fullmatch(path) if pattern is not None else info.get("path") == path
        if hit:
            if any(route.method == method for route in resource):
                return resource.canonical
    return None
