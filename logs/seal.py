"""Sign-off seals: a signed journal becomes a link of its district's hash chain.

Hash rules (the bytes hashed are UTF-8):
- canonical(journal) = JSON of the journal without its seal and amendments: keys
  sorted, separators (",", ":"), ensure_ascii=False, times as UTC ISO 8601
  ("2026-11-20T02:03:04.123456+00:00"), tuples as arrays.
- A district's sealed journals are numbered seq = 1, 2, 3 … with no gaps. For seq n:
  prev_sha256 = the sha256 of seq n-1 (64 zeros for seq 1) and
  sha256 = hex(sha256(prev_sha256 + canonical)). The canonical text is stored, so the
  chain is checked without re-deriving; re-deriving from the events is a second check.
- Amendments chain off their journal: amendment 1 has prev_sha256 = the journal's
  sha256, amendment n the sha256 of amendment n-1; sha256 = hex(sha256(prev_sha256 +
  canonical amendment)), the canonical amendment being {at, author, call_id, n, reason,
  text} under the same JSON rules. They never change the district chain.
- The chain head (seq, sha256) of each district is what the weekly report publishes:
  deleting the newest journals leaves a shorter chain that is still consistent, so only
  a head kept outside the system reveals it (`verify_chain(..., published=...)`).

Invariants:
- seq = max(seq) + 1 within the write transaction; the service has one writer thread
  (dispatch/db.py), and UNIQUE(district_code, seq) makes a concurrent sign-off on
  PostgreSQL fail instead of forking the chain.
- The database refuses UPDATE and DELETE of sealed journal rows, of amendment rows and
  of attendance events of sealed calls (`install_triggers`). Someone who can drop the
  triggers can still edit rows; `verify_chain` is what catches that.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from dispatch import calls, recordings
from dispatch.calls import AttendanceRow, Call, Invitation
from dispatch.clock import utcnow
from dispatch.errors import Conflict, InvalidInput

from .journal import (
    Journal,
    JournalAmendment,
    JournalEntry,
    build_journal,
    entry_for,
    iso,
    jsonable,
    load_journal,
)

GENESIS = "0" * 64
MAX_REASON, MAX_AMENDMENT = 500, 20_000
_BATCH = 500  # ids per IN (...) when verifying


# --- hashing ----------------------------------------------------------------------------


def canonical_dumps(value: Any) -> str:
    return json.dumps(
        jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        allow_nan=False,
    )  # fmt: skip


def canonical_json(journal: Journal) -> str:
    """The sealed text of a journal: everything but the seal and the amendments."""
    body = asdict(journal)
    del body["seal"], body["amendments"]
    return canonical_dumps(body)


def chain_hash(prev_sha256: str, canonical: str) -> str:
    return hashlib.sha256((prev_sha256 + canonical).encode("utf-8")).hexdigest()


def canonical_amendment(a: JournalAmendment) -> str:
    return canonical_dumps(
        {"at": iso(a.at), "author": a.author, "call_id": a.call_id, "n": a.n,
         "reason": a.reason, "text": a.text}
    )  # fmt: skip


# --- sign-off and amendments -------------------------------------------------------------


def sign_off(
    session: Session, call_id: int, by: str, now: datetime | None = None
) -> JournalEntry:
    """Seal the journal of an ended or interrupted call, signed at `now` (the application's
    clock; default: the real time), as the next link of its district's chain. Conflict
    while the call is open or once it is sealed."""
    by = (by or "").strip()
    if not by:
        raise InvalidInput("by", "name who signs the journal off")
    call = calls.get_call(session, call_id)
    if call.state in calls.OPEN_STATES:
        raise Conflict(f"call {call_id} is still {call.state}; sign it off once it has ended")
    if recordings.unfinished(session, call_id):  # only a crash leaves one (call_recording)
        raise Conflict(f"call {call_id}'s recordings are still being closed; sign it off "
                       "in a moment, once their hashes are in the journal")  # fmt: skip
    entry = entry_for(session, call)
    if entry.sealed:
        raise Conflict(f"journal {call_id} was already signed off by {entry.signed_by}")
    entry.signed_by, entry.signed_at = by, now or utcnow()
    canonical = canonical_json(load_journal(session, call_id))
    head = session.exec(
        select(JournalEntry)
        .where(JournalEntry.district_code == entry.district_code)
        .where(col(JournalEntry.seq).is_not(None))
        .order_by(col(JournalEntry.seq).desc())
        .limit(1)
    ).first()
    entry.seq = (head.seq or 0) + 1 if head else 1
    entry.prev_sha256 = (head.sha256 or GENESIS) if head else GENESIS
    entry.canonical = canonical
    entry.sha256 = chain_hash(entry.prev_sha256, canonical)
    entry.sealed = True
    session.add(entry)
    session.flush()
    return entry


def amend(
    session: Session, call_id: int, author: str, reason: str, text: str, *,
    now: datetime | None = None,
) -> JournalAmendment:  # fmt: skip
    """Append a correction to a sealed journal at `now`; the reason is required."""
    author, reason, body = (author or "").strip(), (reason or "").strip(), (text or "").strip()
    if not author:
        raise InvalidInput("author", "name who writes the amendment")
    if not reason:
        raise InvalidInput("reason", "say why the sealed journal is amended")
    if len(reason) > MAX_REASON:
        raise InvalidInput("reason", f"longer than {MAX_REASON} characters")
    if not body:
        raise InvalidInput("text", "write the correction")
    if len(body) > MAX_AMENDMENT:
        raise InvalidInput("text", f"longer than {MAX_AMENDMENT} characters")
    calls.get_call(session, call_id)
    entry = session.get(JournalEntry, call_id)
    if entry is None or not entry.sealed:
        raise Conflict(f"journal {call_id} is not signed off; edit its notes instead")
    last = session.exec(
        select(JournalAmendment)
        .where(JournalAmendment.call_id == call_id)
        .order_by(col(JournalAmendment.n).desc())
        .limit(1)
    ).first()
    amendment = JournalAmendment(
        call_id=call_id, n=(last.n + 1) if last else 1, author=author, reason=reason,
        text=body, at=now or utcnow(), prev_sha256=last.sha256 if last else (entry.sha256 or ""),
        sha256="",
    )  # fmt: skip
    amendment.sha256 = chain_hash(amendment.prev_sha256, canonical_amendment(amendment))
    session.add(amendment)
    session.flush()
    return amendment


# --- triggers ------------------------------------------------------------------------------

SEALED_JOURNAL = "sealed journal rows are read-only"
AMENDMENT = "journal amendments are read-only"
SEALED_EVENT = "attendance events of a sealed journal are read-only"
_SEALED_CALL = "SELECT 1 FROM journal WHERE journal.call_id = OLD.call_id AND journal.sealed"

# (name, table, operation, condition or "", message)
SQLITE_TRIGGERS = (
    ("journal_sealed_no_update", "journal", "UPDATE", "OLD.sealed = 1", SEALED_JOURNAL),
    ("journal_sealed_no_delete", "journal", "DELETE", "OLD.sealed = 1", SEALED_JOURNAL),
    ("journal_amendment_no_update", "journal_amendment", "UPDATE", "", AMENDMENT),
    ("journal_amendment_no_delete", "journal_amendment", "DELETE", "", AMENDMENT),
    ("attendance_sealed_no_update", "attendance_event", "UPDATE", f"EXISTS ({_SEALED_CALL})",
     SEALED_EVENT),
    ("attendance_sealed_no_delete", "attendance_event", "DELETE", f"EXISTS ({_SEALED_CALL})",
     SEALED_EVENT),
)  # fmt: skip

# One function raises for every refusal; the refusal message is the trigger's argument.
# ERRCODE restrict_violation (23001) reaches Python as an IntegrityError, as SQLite's
# RAISE(ABORT) does.
_PG_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION dispatch_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'restrict_violation';
    END $$""",
    f"""CREATE OR REPLACE FUNCTION dispatch_refuse_sealed_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS ({_SEALED_CALL}) THEN
        RAISE EXCEPTION USING MESSAGE = '{SEALED_EVENT}', ERRCODE = 'restrict_violation';
      END IF;
      IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
      RETURN NEW;
    END $$""",
    # TRUNCATE skips row triggers: refuse it while any journal is sealed.
    """CREATE OR REPLACE FUNCTION dispatch_refuse_truncate() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM journal WHERE sealed) THEN
        RAISE EXCEPTION USING MESSAGE = 'sealed records cannot be truncated',
                              ERRCODE = 'restrict_violation';
      END IF;
      RETURN NULL;
    END $$""",
)
PG_TRIGGERS = (
    ("journal_sealed_read_only", "journal",
     "BEFORE UPDATE OR DELETE ON journal FOR EACH ROW WHEN (OLD.sealed) "
     f"EXECUTE FUNCTION dispatch_refuse('{SEALED_JOURNAL}')"),
    ("journal_amendment_read_only", "journal_amendment",
     "BEFORE UPDATE OR DELETE ON journal_amendment FOR EACH ROW "
     f"EXECUTE FUNCTION dispatch_refuse('{AMENDMENT}')"),
    ("attendance_sealed_read_only", "attendance_event",
     "BEFORE UPDATE OR DELETE ON attendance_event FOR EACH ROW "
     "EXECUTE FUNCTION dispatch_refuse_sealed_event()"),
    *((f"{table}_no_truncate", table,
       f"BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION dispatch_refuse_truncate()")
      for table in ("journal", "journal_amendment", "attendance_event")),
)  # fmt: skip


def install_triggers(engine: sa.Engine) -> None:
    """Create (or replace) the triggers that keep sealed records read-only. Idempotent;
    the journal, amendment and attendance tables must exist. SQLite and PostgreSQL
    (≥ 14, for CREATE OR REPLACE TRIGGER)."""
    dialect = engine.dialect.name
    with engine.begin() as conn:
        if dialect == "sqlite":
            for name, table, op, when, message in SQLITE_TRIGGERS:
                cond = f" WHEN {when}" if when else ""
                conn.execute(sa.text(
                    f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {op} ON {table}{cond} "
                    f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
                ))  # fmt: skip
        elif dialect == "postgresql":
            for sql in _PG_FUNCTIONS:
                conn.execute(sa.text(sql))
            for name, _table, body in PG_TRIGGERS:
                conn.execute(sa.text(f"CREATE OR REPLACE TRIGGER {name} {body}"))
        else:
            raise InvalidInput("db", f"no sealing triggers for {dialect!r}")


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    district: str
    seq: int
    what: str


@dataclass(frozen=True)
class ChainHead:
    seq: int
    sha256: str


@dataclass(frozen=True)
class VerifyReport:
    districts: int
    journals: int
    heads: dict[str, ChainHead]
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}

    def lines(self) -> list[str]:
        """What `dispatch journal verify` prints: problems first, then each head."""
        out = [f"district {p.district} seq {p.seq}: {p.what}" for p in self.problems]
        out += [f"district {d} head seq {h.seq} sha256 {h.sha256}" for d, h in self.heads.items()]
        verdict = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        out.append(f"{verdict}: {self.journals} sealed journal(s) in {self.districts} district(s)")
        return out


@dataclass(frozen=True)
class _SlotTimes:
    start: datetime
    end: datetime


def verify_chain(
    session: Session,
    district: str | None = None,
    *,
    published: Mapping[str, tuple[int, str]] | None = None,
) -> VerifyReport:
    """Walk each district's sealed journals by seq: links, gaps (漏号), the stored text
    against what the events give now, and each journal's amendments. `published` maps
    a district to a head (seq, sha256) published earlier, which must still be there."""
    if district is not None:
        districts = [district]
    else:
        stmt = select(JournalEntry.district_code).where(col(JournalEntry.seq).is_not(None))
        districts = sorted(set(session.exec(stmt.distinct())))
    heads: dict[str, ChainHead] = {}
    problems: list[Problem] = []
    journals = 0
    for code in districts:
        rows = list(session.exec(
            select(JournalEntry)
            .where(JournalEntry.district_code == code,
                   col(JournalEntry.seq).is_not(None) | col(JournalEntry.sealed))
            .order_by(col(JournalEntry.seq))
        ))  # fmt: skip
        journals += len(rows)
        problems += _walk(code, rows)
        problems += _rederive(session, code, rows)
        numbered = [r for r in rows if r.seq is not None]
        if numbered:
            heads[code] = ChainHead(numbered[-1].seq or 0, numbered[-1].sha256 or "")
        if published and code in published:
            problems += _published(code, published[code], numbered)
    problems.sort(key=lambda p: (p.district, p.seq))
    return VerifyReport(len(districts), journals, heads, problems)


def _walk(district: str, rows: Sequence[JournalEntry]) -> list[Problem]:
    out: list[Problem] = []
    expected, prev = 1, GENESIS
    for row in rows:
        if row.seq is None:
            out.append(Problem(district, 0, f"journal {row.call_id} is sealed without a seq"))
            continue
        seq = row.seq
        if not row.sealed:
            out.append(Problem(district, seq, f"journal {row.call_id} has a seq but is not sealed"))
        if seq < expected:
            out.append(Problem(district, seq, f"seq {seq} is used twice"))
            continue
        if seq > expected:
            gap = f"{expected}" if seq == expected + 1 else f"{expected}–{seq - 1}"
            out.append(Problem(district, expected, f"missing sequence number {gap} (漏号)"))
        elif row.prev_sha256 != prev:
            what = f"broken link: prev_sha256 is not the sha256 of seq {seq - 1}"
            out.append(Problem(district, seq, what))
        if chain_hash(row.prev_sha256 or "", row.canonical or "") != row.sha256:
            what = "broken link: sha256 ≠ sha256(prev_sha256 + sealed text)"
            out.append(Problem(district, seq, what))
        expected, prev = seq + 1, row.sha256 or ""
    return out


def _published(district: str, head: tuple[int, str], rows: Sequence[JournalEntry]) -> list[Problem]:
    seq, sha = head
    found = next((r for r in rows if r.seq == seq), None)
    if found is None:
        return [Problem(district, seq, f"the published head seq {seq} is gone")]
    if found.sha256 != sha:
        return [Problem(district, seq, f"seq {seq} differs from the published head")]
    return []


def _rederive(session: Session, district: str, rows: Sequence[JournalEntry]) -> list[Problem]:
    """Compare each sealed text with the journal its rows give now. Centre names and
    slot times are labels kept in other tables that may change later: they are taken
    from the sealed text, so only the facts of the call are compared."""
    out: list[Problem] = []
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        ids = [r.call_id for r in batch]
        found = {c.id: c for c in session.exec(select(Call).where(col(Call.id).in_(ids)))}
        invites = _grouped(session.exec(select(Invitation).where(col(Invitation.call_id).in_(ids))))
        events = _grouped(session.exec(
            select(AttendanceRow).where(col(AttendanceRow.call_id).in_(ids))
            .order_by(col(AttendanceRow.id))
        ))  # fmt: skip
        amendments = _grouped(session.exec(
            select(JournalAmendment).where(col(JournalAmendment.call_id).in_(ids))
        ))  # fmt: skip
        for row in batch:
            seq = row.seq or 0
            out += _amendment_problems(district, row, amendments.get(row.call_id, []))
            call = found.get(row.call_id)
            try:
                sealed = json.loads(row.canonical or "")
            except ValueError:
                out.append(Problem(district, seq, "the sealed text is not JSON"))
                continue
            if call is None:
                out.append(Problem(district, seq, f"call {row.call_id} is gone"))
                continue
            names = {c["centre"]: c["name"] for c in sealed.get("centres", [])}
            names[sealed.get("caller", "")] = sealed.get("caller_name", "")
            slot = None
            if sealed.get("slot_start") and sealed.get("slot_end"):
                slot = _SlotTimes(datetime.fromisoformat(sealed["slot_start"]),
                                  datetime.fromisoformat(sealed["slot_end"]))  # fmt: skip
            journal = build_journal(call, invites.get(row.call_id, []),
                                    events.get(row.call_id, []), names, slot, row,
                                    district=row.district_code)  # fmt: skip
            if canonical_json(journal) != row.canonical:
                what = _difference(sealed, json.loads(canonical_json(journal)))
                out.append(Problem(district, seq, f"journal {row.call_id}: {what}"))
    return out


def _grouped(rows: Iterable[Any]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        out[row.call_id].append(row)
    return out


def _difference(sealed: dict[str, Any], now: dict[str, Any]) -> str:
    """Which rows differ between the sealed journal and the one derived now."""
    before = {e.get("id"): e for e in sealed.get("events", [])}
    after = {e.get("id"): e for e in now.get("events", [])}
    changes = [f"event {i} deleted" for i in before if i not in after]
    changes += [f"event {i} edited" for i in before if i in after and before[i] != after[i]]
    changes += [f"event {i} added after sealing" for i in after if i not in before]
    fields = sorted(
        k for k in set(sealed) | set(now) if k != "events" and sealed.get(k) != now.get(k)
    )
    if fields:
        changes.append("changed: " + ", ".join(fields))
    return "the events no longer give the sealed journal (" + "; ".join(changes) + ")"


def _amendment_problems(
    district: str, entry: JournalEntry, amendments: list[JournalAmendment]
) -> list[Problem]:
    out: list[Problem] = []
    seq, prev, expected = entry.seq or 0, entry.sha256 or "", 1
    for a in sorted(amendments, key=lambda a: a.n):
        where = f"journal {entry.call_id} amendment {a.n}"
        if a.n != expected:
            missing = f"journal {entry.call_id}: amendment {expected} is missing"
            out.append(Problem(district, seq, missing))
        elif a.prev_sha256 != prev:
            out.append(Problem(district, seq, f"{where}: prev_sha256 breaks the chain"))
        if chain_hash(a.prev_sha256, canonical_amendment(a)) != a.sha256:
            out.append(Problem(district, seq, f"{where}: sha256 does not match its text"))
        prev, expected = a.sha256, a.n + 1
    return out


def chain_head(session: Session, district: str) -> ChainHead | None:
    """The newest sealed journal of a district: what to publish outside the system."""
    stmt = (
        select(JournalEntry)
        .where(JournalEntry.district_code == district, col(JournalEntry.sealed).is_(True))
        .order_by(col(JournalEntry.seq).desc())
    )
    entry = session.exec(stmt).first()
    if entry is None or entry.seq is None or entry.sha256 is None:
        return None
    return ChainHead(entry.seq, entry.sha256)
