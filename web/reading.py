"""Reading what a client sends — JSON bodies, integers in paths and queries, ISO weeks —
into typed values, or refusing it with `InvalidInput(field, …)` (400, web/errors.py).

Invariants:
- Nothing here writes; a refused request has changed nothing.
- A JSON body is read no further than MAX_JSON_BYTES (413), must be UTF-8, has no
  NaN/Infinity, nests at most MAX_DEPTH deep, and no text in it (key or value) holds a
  lone surrogate or a NUL — neither can be stored — before a model sees it.
- Integers from a path or query are ASCII digits and fit a signed 64-bit column.
- A week lies between MIN_YEAR and MAX_YEARS_AHEAD years after the current one: the
  rota, calendar and report code below never meets a week it cannot place.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from dispatch.errors import InvalidInput
from schedules.workdays import IsoWeek

from .bodies import INT64_MAX
from .offers import read_capped

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 1024 * 1024
MAX_DEPTH = 16
MIN_YEAR = 2000
MAX_YEARS_AHEAD = 2
DIGITS = re.compile(r"[0-9]{1,19}")
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_tree(doc: Any) -> None:
    """Depth and text checks without recursion (a hostile body cannot exhaust the stack)."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list) and depth > MAX_DEPTH:
            top = path.split(".")[0] or "body"  # the field the client sent, not a long path
            raise InvalidInput(top, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{key}" if path else key
                if BAD_TEXT.search(key):
                    raise InvalidInput(path or "body", "a key holds a NUL or a lone surrogate")
                stack.append((value, where, depth + 1))
        elif isinstance(node, list):
            stack.extend((v, f"{path}.{i}", depth + 1) for i, v in enumerate(node))
        elif isinstance(node, str) and BAD_TEXT.search(node):
            raise InvalidInput(path or "body", "text holds a NUL or a lone surrogate")


def field_of(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the client's field name, e.g. `director.phone`;
    union branch tags (`str`, `list[...]`, `function-after[...]`) are not fields."""
    parts = [str(p) for p in loc if not (isinstance(p, str) and _is_tag(p))]
    return ".".join(parts) or "body"


def _is_tag(part: str) -> bool:
    return "[" in part or part in {"str", "int", "float", "bool", "list", "dict", "none"}


def validate(model: type[M], doc: Any) -> M:
    """`doc` (already parsed and checked) as `model`, or InvalidInput naming the field."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field = field_of(tuple(first["loc"]))
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "not a field of this request"
        elif first["type"] == "missing":
            message = "required"
        raise InvalidInput(field, message) from None


async def read_doc(request: web.Request) -> dict[str, Any]:
    """The body as a checked JSON object (see the module's invariants)."""
    if request.content_type != "application/json":
        raise InvalidInput("Content-Type", "send application/json")
    raw = await read_capped(request, MAX_JSON_BYTES, "body")
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InvalidInput("body", "not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidInput("body", "must be a JSON object")
    _check_tree(doc)
    return doc


async def read_body(request: web.Request, model: type[M]) -> M:
    """POST/PATCH bodies of the API: `model` from the checked JSON."""
    return validate(model, await read_doc(request))


def parse_int(raw: str | None, field: str, *, lo: int = 1, hi: int = INT64_MAX) -> int:
    """An integer a client wrote in a path, query or form: ASCII digits, lo..hi."""
    raw = (raw or "").strip()
    if not DIGITS.fullmatch(raw):
        raise InvalidInput(field, f"must be a whole number, got {raw[:40]!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise InvalidInput(field, f"must be between {lo} and {hi}")
    return value


def path_int(request: web.Request, name: str) -> int:
    return parse_int(request.match_info[name], name)


def parse_week(raw: str, today: date) -> IsoWeek:
    """An ISO week the service can place: from MIN_YEAR to MAX_YEARS_AHEAD years after
    `today`'s (the application's clock)."""
    week = IsoWeek.parse(raw)
    this_year = today.year
    if not MIN_YEAR <= week.year <= this_year + MAX_YEARS_AHEAD:
        raise InvalidInput(
            "week", f"{week} is too far off: weeks from {MIN_YEAR} to {this_year + MAX_YEARS_AHEAD}"
        )
    return week
