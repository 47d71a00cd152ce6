"""iCalendar (RFC 5545) feeds of rota slots: one VEVENT per slot, stable UID, SEQUENCE
from the slot, times in TZID=Asia/Shanghai with the zone defined in the feed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from icalendar import Calendar, Event, Timezone, TimezoneStandard

from dispatch.clock import SHANGHAI, utcnow
from dispatch.wording import callees_phrase

from .plans import RotaSlot
from .slots import KIND_LABELS


def _shanghai_zone() -> Timezone:
    # China has kept +08:00 with no daylight saving since 1991: one STANDARD rule.
    zone = Timezone()
    zone.add("tzid", "Asia/Shanghai")
    std = TimezoneStandard()
    std.add("dtstart", datetime(1970, 1, 1))
    std.add("tzoffsetfrom", timedelta(hours=8))
    std.add("tzoffsetto", timedelta(hours=8))
    std.add("tzname", "CST")
    zone.add_component(std)
    return zone


def feed(
    slots: Iterable[RotaSlot],
    names: Mapping[str, str],
    *,
    title: str,
    join_url: str,
    viewer: str | None = None,
) -> bytes:
    """The calendar of `slots`. `join_url` is formatted with `slot_id`. For a `viewer`
    (a centre code) that is not the caller, spot checks are left out and a call lists
    only the viewer among those called."""
    cal = Calendar()
    cal.add("prodid", "-//Pingan Dispatch//平安调度//ZH")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", title)
    cal.add("x-wr-timezone", "Asia/Shanghai")
    cal.add_component(_shanghai_zone())
    stamp = utcnow()
    for slot in slots:
        if viewer is not None and slot.hidden and slot.caller_code != viewer:
            continue
        shown = list(slot.callees)
        if viewer is not None and slot.caller_code != viewer:
            shown = [viewer]
        url = join_url.format(slot_id=slot.id)
        cal.add_component(_event(slot, shown, names, url, stamp))
    data: bytes = cal.to_ical()
    return data


def _event(
    slot: RotaSlot, shown: list[str], names: Mapping[str, str], url: str, stamp: datetime
) -> Event:
    kind = KIND_LABELS.get(slot.kind, (slot.kind,))[0]
    callees = [names.get(c, c) for c in shown]
    who = callees_phrase(shown, names)[0]
    event = Event()
    event.add("uid", slot.uid)
    event.add("sequence", slot.sequence)
    event.add("dtstamp", stamp)
    event.add("last-modified", slot.updated_at)
    event.add("dtstart", slot.start.astimezone(SHANGHAI))
    event.add("dtend", slot.end.astimezone(SHANGHAI))
    event.add("summary", f"{kind}：{names.get(slot.caller_code, slot.caller_code)} → {who}")
    event.add("description", f"{kind}\n参加：{'、'.join(callees)}\n加入：{url}")
    event.add("url", url)
    event.add("location", url)
    event.add("status", "CANCELLED" if slot.status == "cancelled" else "CONFIRMED")
    event.add("categories", [slot.kind])
    return event
