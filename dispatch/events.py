"""Events: small frozen dataclasses with a name, published to subscribers in-process.

Features subscribe instead of importing each other (the journal subscribes to call
events, the web pushes reminders to pages), so imports keep pointing down the layers.
Invariant: a subscriber that raises is logged and skipped; it never stops the others
or the publisher.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    name: ClassVar[str] = "event"

    @property
    def centres(self) -> tuple[str, ...]:
        """Codes of the centres the event concerns: who may be told of it."""
        return ()

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.name, **asdict(self)}


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Add `fn`; returns a function that removes it again."""
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    def publish(self, event: Event) -> None:
        for fn in list(self._subscribers):
            try:
                fn(event)
            except Exception:
                log.exception("subscriber %r failed on %s", fn, event.name)
