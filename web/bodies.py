"""The JSON request bodies of the API, as typed models.

Invariants:
- Every model forbids fields it does not name: a body is read whole or refused, so a
  field like `role` or `centre` that would speak for the caller is never ignored
  silently (identity comes from the session or token, never from a body).
- Integers are strict (no "3", no 3.0, no true) and bounded to a signed 64-bit column;
  texts are strict and bounded in length. What the domain checks further (a code's
  shape, a policy value's range, a date) it still checks, naming the same field.
- The models describe the API in the OpenAPI document (web/openapi.py): what is
  accepted and what is documented are one thing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

INT64_MAX = 2**63 - 1

Id = Annotated[StrictInt, Field(ge=1, le=INT64_MAX, description="a record's number")]
Code = Annotated[StrictStr, Field(max_length=12, description="a 12-digit area code")]
Week = Annotated[StrictStr, Field(max_length=10, description="an ISO week, e.g. 2026-W41")]
Day = Annotated[StrictStr, Field(max_length=10, description="a date, e.g. 2026-10-01")]
Minutes = Annotated[StrictInt, Field(ge=0, le=10_000)]


def bounded(max_length: int, *, min_length: int = 0) -> Any:
    """A strict string of at most `max_length` characters."""
    return Annotated[StrictStr, Field(min_length=min_length, max_length=max_length)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def sent(self) -> dict[str, Any]:
        """The fields the client sent, by their wire names, as JSON values."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --- accounts and centres --------------------------------------------------------------


class TokenRequest(Body):
    """POST /api/v1/auth/token."""

    username: bounded(64, min_length=1)  # type: ignore[valid-type]
    password: bounded(1024, min_length=1)  # type: ignore[valid-type]
    label: bounded(100) = ""  # type: ignore[valid-type]


class PasswordChange(Body):
    """POST /api/v1/me/password: ends every login and token of the account."""

    current_password: bounded(1024, min_length=1)  # type: ignore[valid-type]
    new_password: bounded(1024, min_length=1)  # type: ignore[valid-type]


class NewAccount(Body):
    """POST /api/v1/accounts. The new account's centre must lie below the caller's."""

    username: bounded(64, min_length=1)  # type: ignore[valid-type]
    password: bounded(1024, min_length=1)  # type: ignore[valid-type]
    role: Literal["admin", "district_operator", "town_operator", "village"]
    centre: Code | None = None
    display_name: bounded(100) = ""  # type: ignore[valid-type]


class Director(Body):
    name: bounded(50) = ""  # type: ignore[valid-type]
    phone: bounded(20) = ""  # type: ignore[valid-type]


class CentrePatch(Body):
    """PATCH /api/v1/centers/{code}: contacts (anyone in scope), managed fields (above).

    In this model and the other patches a field left out is unchanged; null is refused
    (defaults are not validated, so `= None` only marks the field optional)."""

    name: bounded(100) = None  # type: ignore[valid-type]
    class_: bounded(20) = Field(None, alias="class")  # type: ignore[valid-type]
    target_year: Annotated[StrictInt, Field(ge=2000, le=2100)] = None
    active: StrictBool = None
    director: Director = None
    grid_workers: (
        Annotated[list[dict[str, StrictStr]], Field(max_length=200)] | bounded(5000)  # type: ignore[valid-type]
    ) = None


# --- policy ----------------------------------------------------------------------------

Window = Annotated[list[bounded(5)], Field(min_length=2, max_length=2)]  # type: ignore[valid-type]


class PolicyPatch(Body):
    """PATCH /api/v1/policy[?district=]: admin only; each value checked by the domain."""

    district_mode: Literal["meeting", "inspection"] = None
    district_meeting_minutes: Minutes = None
    district_inspection_minutes: Minutes = None
    town_patrol_minutes: Minutes = None
    town_patrols_per_week: Minutes = None
    screening_minutes: Minutes = None
    screening_days: Annotated[list[Minutes], Field(max_length=31)] = None
    supervision_district_every_months: Minutes = None
    supervision_town_every_months: Minutes = None
    supervision_minutes: Minutes = None
    district_consoles: Minutes = None
    town_consoles: Minutes = None
    windows: Annotated[list[Window], Field(min_length=1, max_length=12)] = None
    slot_step_minutes: Minutes = None
    reserve_fraction: Annotated[float, Field(ge=0, le=1, strict=True)] = None
    spot_checks_per_week: Minutes = None
    spot_check_minutes: Minutes = None
    answer_deadline_seconds: Minutes = None
    min_verified_seconds: Minutes = None
    reminder_minutes: Minutes = None
    record_district_meetings: StrictBool = None


class NewBlackout(Body):
    """POST /api/v1/blackouts: a weekday, market days by last digit, or a date range."""

    centre: Code
    kind: Literal["weekday", "market_days", "date_range"]
    weekday: Annotated[StrictInt, Field(ge=0, le=6)] | None = None
    day_digits: Annotated[list[Annotated[StrictInt, Field(ge=0, le=9)]],
                          Field(min_length=1, max_length=10)] | None = None  # fmt: skip
    start: Day | None = None
    end: Day | None = None
    note: bounded(200) = ""  # type: ignore[valid-type]


# --- rota and calls --------------------------------------------------------------------


class RotaBuild(Body):
    """POST /api/v1/rota/build."""

    week: Week
    seed: Annotated[StrictInt, Field(ge=0, le=INT64_MAX)] | None = None
    district: Code | None = None


class CallLaunch(Body):
    """POST /api/v1/calls: a rota slot's call, or an ad-hoc one to `callees`."""

    slot_id: Id | None = None
    callees: Annotated[list[Code], Field(min_length=1, max_length=500)] | None = None
    kind: Literal["inspection", "meeting"] = "inspection"


class Leave(Body):
    leave_token: bounded(200) | None = None  # type: ignore[valid-type]


class Floor(Body):
    """Who every participant sees besides the operator; null: nobody."""

    centre: Code | None = None


class RecordingSwitch(Body):
    """POST /api/v1/calls/{id}/recording: record the call from now (true) or stop (false)."""

    on: StrictBool


class Snapshot(Body):
    centre: Code


class NewCamera(Body):
    """POST /api/v1/cameras: credentials apart, or inside the URL (not both)."""

    name: bounded(100, min_length=1)  # type: ignore[valid-type]
    centre: Code
    url: bounded(500, min_length=1)  # type: ignore[valid-type]
    username: bounded(200) | None = None  # type: ignore[valid-type]
    password: bounded(200) | None = None  # type: ignore[valid-type]


class CameraPatch(Body):
    """PATCH /api/v1/cameras/{id}: a new URL alone keeps the stored credentials."""

    name: bounded(100, min_length=1) | None = None  # type: ignore[valid-type]
    centre: Code | None = None
    url: bounded(500, min_length=1) | None = None  # type: ignore[valid-type]
    username: bounded(200) | None = None  # type: ignore[valid-type]
    password: bounded(200) | None = None  # type: ignore[valid-type]


class CallCamera(Body):
    """POST /api/v1/calls/{call_id}/cameras: show a camera in the call."""

    camera: Id


# --- issues and journals ---------------------------------------------------------------


class NewIssue(Body):
    """POST /api/v1/issues."""

    centre: Code
    category: bounded(20, min_length=1)  # type: ignore[valid-type]
    severity: bounded(20, min_length=1)  # type: ignore[valid-type]
    description: bounded(5000)  # type: ignore[valid-type]
    parties: bounded(2000) = ""  # type: ignore[valid-type]
    deadline: Day | None = None
    call_id: Id | None = None
    subcategory: bounded(200) = ""  # type: ignore[valid-type]
    assignee: Code | None = None


class IssueChanges(Body):
    category: bounded(20) = None  # type: ignore[valid-type]
    severity: bounded(20) = None  # type: ignore[valid-type]
    subcategory: bounded(200) = None  # type: ignore[valid-type]
    parties: bounded(2000) = None  # type: ignore[valid-type]
    description: bounded(5000) = None  # type: ignore[valid-type]
    deadline: Day = None


class IssueAction(Body):
    """POST /api/v1/issues/{id}/{action}: `assignee` for assign, `changes` for edit."""

    note: bounded(2000) = ""  # type: ignore[valid-type]
    assignee: Code | None = None
    changes: IssueChanges | None = None


class JournalNotes(Body):
    agenda: bounded(20_000) = ""  # type: ignore[valid-type]
    notes: bounded(20_000) = ""  # type: ignore[valid-type]


class Amendment(Body):
    reason: bounded(2000) = ""  # type: ignore[valid-type]
    text: bounded(20_000, min_length=1)  # type: ignore[valid-type]


class Offer(Body):
    """POST /api/v1/calls/{id}/sdp, as documented; web/offers.py reads it itself (its
    size capped before it is parsed, the SDP checked by web/sdp_checks.py)."""

    type: Literal["offer"]
    sdp: StrictStr
