"""Settings from a TOML file (`dispatch --config FILE`, or DISPATCH_CONFIG).

The file's keys are the settings' names in lower case without DISPATCH_ — the
`Settings` field names (`public_url`, `turn_secret`, …; README "Settings" lists them), at
the top level, no tables. Precedence: flags > environment > this file > defaults. An
unknown key, a value of the wrong TOML type, or a file that is missing or not TOML
raises InvalidInput naming the file and the key (the CLI exits with code 2).
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from .errors import InvalidInput

# str settings whose value is a number or a word ("auto"): a TOML number is taken too.
NUMBER_TEXT = frozenset({"media_workers", "media_span_at"})

_TOML_TYPE = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def load(path: Path) -> dict[str, object]:
    """The file's settings as field name → value, checked against `Settings`."""
    from .settings import Settings, check_value

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(str(path), f"cannot read the settings file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(str(path), "the settings file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(str(path), f"not a TOML file: {exc}") from None
    kinds = {f.name: _kind(f.type) for f in fields(Settings)}
    values: dict[str, object] = {}
    for key, value in raw.items():
        where = f"{path}: {key}"
        if key not in kinds:
            raise InvalidInput(where, "no such setting (keys are the names in README "
                                      "'Settings' in lower case without DISPATCH_)")  # fmt: skip
        values[key] = check_value(kinds[key], _typed(key, kinds[key], value, where), where)
    return values


def _kind(annotation: object) -> type:
    named = {"int": int, "float": float, "bool": bool, "str": str}
    if isinstance(annotation, str):
        return named[annotation]
    assert isinstance(annotation, type)
    return annotation


def _typed(key: str, kind: type, value: object, where: str) -> object:
    ok = (
        isinstance(value, bool)
        if kind is bool
        else (not isinstance(value, bool) and isinstance(value, int))
        if kind is int
        else (not isinstance(value, bool) and isinstance(value, int | float))
        if kind is float
        else isinstance(value, str)
        or (key in NUMBER_TEXT and not isinstance(value, bool) and isinstance(value, int))
    )
    if not ok:
        got = type(value).__name__
        raise InvalidInput(where, f"expected {_TOML_TYPE[kind]}, got a TOML {got}: {value!r}")
    if kind is float and isinstance(value, int | float):
        return float(value)
    if kind is str:
        return str(value)
    return value
