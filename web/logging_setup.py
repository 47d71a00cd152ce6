"""How `dispatch serve` writes its log: the level (DISPATCH_LOG_LEVEL), plain lines or
one JSON object a line (DISPATCH_LOG_FORMAT), and secrets taken out of every line.

Invariant: whatever a line would have said, the handler installed here writes no join
token, API token, bearer credential, session cookie, CSRF or leave token, password or
TURN/database password: `redact` replaces them in the formatted message and in any
traceback before the line is written. The service does not log them on purpose
either; this catches what a library prints (aiohttp's access log writes the request
line, whose query may hold `?token=`, and the Referer).

Media worker processes log plain lines to the same standard error at the same level
(media/worker.py); their lines carry no credentials (centre codes and peer ids).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

from dispatch.errors import InvalidInput
from dispatch.settings import Settings

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
MASK = "[redacted]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # name=value pairs of a query string, a form or a cookie header
    (re.compile(r"(?i)\b([\w-]*(?:token|password|passwd|secret|session|credential)=)"
                r"[^&;\s\"',]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',]+"), rf"\1 {MASK}"),
    (re.compile(r"\bjt1\.[\w.~+/=-]+"), f"jt1.{MASK}"),  # join tokens (web/auth.py)
    (re.compile(r"\bpd_[\w-]{16,}"), f"pd_{MASK}"),  # API tokens (dispatch/accounts.py)
    (re.compile(r"(?i)(\bcookie:\s*)[^\r\n\"]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(\"?(?:password|passwd|token|secret)\"?\s*:\s*\"?)[^\s\"',}]+"),
     rf"\1{MASK}"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), rf"\1{MASK}@"),  # user:password@ in URLs
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class Redact(logging.Filter):
    """Rewrites a record's message (and traceback) with the secrets taken out."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad %-arguments: the formatter reports it (handleError)
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and the
    traceback as `exc` when there is one. No `extra` fields: aiohttp's access log puts
    the raw request line there."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_text:
            line["exc"] = record.exc_text
        elif record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def level_of(settings: Settings) -> int:
    name = settings.log_level.strip().upper()
    if name not in LEVELS:
        raise InvalidInput("DISPATCH_LOG_LEVEL", f"one of {', '.join(LEVELS)}, got {name!r}")
    return int(getattr(logging, name))


def format_of(settings: Settings) -> str:
    fmt = settings.log_format.strip().lower()
    if fmt not in FORMATS:
        raise InvalidInput("DISPATCH_LOG_FORMAT", f"text or json, got {fmt!r}")
    return fmt


def configure(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one that writes to `stream` (standard
    error), at the settings' level and format, secrets redacted. Returns the handler."""
    level, fmt = level_of(settings), format_of(settings)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(Redact())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
