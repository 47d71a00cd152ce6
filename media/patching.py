"""Replacing a library method process-wide, only over the body it was written against.

``media.sockets`` and ``media.consent`` each swap one method of asyncio or aioice for
their own. A replacement is correct only against the body it was checked with; a
library upgrade that changes that body must leave the library's own in place (with a
warning) rather than silently replace behaviour nobody re-read.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


def fingerprint(function: Callable[..., Any]) -> str | None:
    """The first 8 hex digits of the sha256 of ``function``'s source; None without source."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):  # a frozen build: no source to read
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:8]


def replace_method(
    owner: type, name: str, replacement: Callable[..., Any], known: frozenset[str]
) -> bool:
    """Set ``owner.name`` to ``replacement`` if the current body's fingerprint is in
    ``known`` (or it is already replaced); False, logged, and nothing changed otherwise."""
    current = getattr(owner, name)
    if current is replacement:
        return True
    if fingerprint(current) not in known:
        logger.warning("%s.%s is not the body this replacement was checked against; "
                       "left alone", owner.__qualname__, name)  # fmt: skip
        return False
    setattr(owner, name, replacement)
    return True
