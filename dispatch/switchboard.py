"""The switchboard runs calls: it writes every attendance event, then publishes it;
rings invited centres; ends rings nobody answers in time; and, on start, marks calls
the previous process left open as interrupted.

Invariants:
- `publish` is only ever called with events whose rows have committed (the
  `Database.write` that made them has returned).
- Every time a call stores (created, rang, answered, started, ended, each attendance
  event's `at`) is the switchboard's `clock` (the application's, dispatch/clock.py), so a
  test that sets the clock sees its calls stamped by it. The answer deadline's timer runs
  on the real time: a set clock runs at the real pace, so the two agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from . import calls
from .accounts import Scope
from .calls import Attendance, Launched
from .clock import SYSTEM, Clock
from .db import Database
from .events import Event, EventBus

log = logging.getLogger(__name__)


class Switchboard:
    def __init__(
        self, db: Database, bus: EventBus, secret: bytes, token_ttl: int = 4 * 3600,
        *, clock: Clock = SYSTEM,
    ) -> None:  # fmt: skip
        self.db, self.bus, self.secret, self.token_ttl = db, bus, secret, token_ttl
        self.clock = clock
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # strong references while they run

    def _publish(self, events: Iterable[Event]) -> None:
        for event in events:
            self.bus.publish(event)

    async def write(self, fn: Callable[..., list[Attendance]], *args: Any) -> list[Attendance]:
        """Run a domain function that records events; publish them once committed."""
        recorded = await self.db.write(fn, *args)
        self._publish(recorded)
        return recorded

    async def recover(self) -> int:
        """Calls left open by a process that died are interrupted, with an event each."""
        recorded = await self.write(calls.interrupt_open_calls, self.clock.now())
        if recorded:
            log.warning("%d call(s) were open when the server stopped: interrupted", len(recorded))
        return len(recorded)

    async def launch(
        self,
        scope: Scope,
        callees: list[str],
        *,
        kind: str,
        slot_id: int | None,
        answer_deadline_seconds: int,
        min_verified_seconds: int,
    ) -> tuple[Launched, dict[str, str]]:
        """Create the call, ring every callee; returns it with a join token per callee."""

        def run(session: Session) -> Launched:
            return calls.launch(session, scope, callees, kind=kind, slot_id=slot_id,
                                answer_deadline_seconds=answer_deadline_seconds,
                                min_verified_seconds=min_verified_seconds,
                                now=self.clock.now())  # fmt: skip

        launched = await self.db.write(run)
        call_id = launched.call.id or 0
        self._publish(launched.recorded)
        self._publish(launched.ringing)
        loop = asyncio.get_running_loop()
        # A little after the deadline, so an answer sent at the last second wins.
        self._timers[call_id] = loop.call_later(
            answer_deadline_seconds + 0.5, self._spawn_expire, call_id
        )
        tokens = {i.centre_code: self.token_for(call_id, i.centre_code) for i in launched.invites}
        log.info("call %s launched by %s to %d centre(s)", call_id, scope.username, len(tokens))
        return launched, tokens

    def _spawn_expire(self, call_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._expire(call_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def token_for(self, call_id: int, centre: str) -> str:
        return calls.join_token(self.secret, call_id, centre, self.token_ttl)

    def centre_for_token(self, token: str, call_id: int) -> str:
        return calls.check_join_token(self.secret, token, call_id)

    async def _expire(self, call_id: int) -> None:
        self._timers.pop(call_id, None)
        try:
            await self.write(calls.expire_rings, call_id, self.clock.now())
        except Exception:
            log.exception("call %s: expiring unanswered rings failed", call_id)

    async def answer(self, call_id: int, centre: str, *, accept: bool) -> list[Attendance]:
        return await self.write(_answer, call_id, centre, accept, self.clock.now())

    async def end(self, call_id: int, reason: str) -> list[Attendance]:
        timer = self._timers.pop(call_id, None)
        if timer is not None:
            timer.cancel()
        return await self.write(calls.end, call_id, reason, self.clock.now())

    async def record(self, call_id: int, kind: str, centre: str | None, **data: Any) -> Attendance:
        at = self.clock.now()

        def run(session: Session) -> list[Attendance]:
            call = calls.get_call(session, call_id)
            return [calls.record(session, call, kind, centre, at=at, **data)]

        (event,) = await self.write(run)
        return event

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


def _answer(
    session: Session, call_id: int, centre: str, accept: bool, now: datetime
) -> list[Attendance]:
    return calls.answer(session, call_id, centre, accept=accept, now=now)
