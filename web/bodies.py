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


# Strict strings of at most N characters (TextN), and of 1 to N (FilledN).
Text5 = Annotated[StrictStr, Field(max_length=5)]
Text20 = Annotated[StrictStr, Field(max_length=20)]
Text50 = Annotated[StrictStr, Field(max_length=50)]
Text100 = Annotated[StrictStr, Field(max_length=100)]
Text200 = Annotated[StrictStr, Field(max_length=200)]
Text2000 = Annotated[StrictStr, Field(max_length=2000)]
Text5000 = Annotated[StrictStr, Field(max_length=5000)]
Text20k = Annotated[StrictStr, Field(max_length=20_000)]
Filled20 = Annotated[StrictStr, Field(min_length=1, max_length=20)]
Filled64 = Annotated[StrictStr, Field(min_length=1, max_length=64)]
Filled100 = Annotated[StrictStr, Field(min_length=1, max_length=100)]
Filled500 = Annotated[StrictStr, Field(min_length=1, max_length=500)]
Filled1024 = Annotated[StrictStr, Field(min_length=1, max_length=1024)]
Filled20k = Annotated[StrictStr, Field(min_length=1, max_length=20_000)]


# The default of a patch's fields: a field left out is unchanged (`Body.sent` drops it),
# and a null sent is refused by the field's type (pydantic validates no default). Typed
# Any because "left out" is no value of the field's type; read a patch through `sent`.
LEFT_OUT: Any = None


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def sent(self) -> dict[str, Any]:
        """The fields the client sent, by their wire names, as JSON values."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --- accounts and centres --------------------------------------------------------------


class TokenRequest(Body):
    """POST /api/v1/auth/token."""

    username: Filled64
    password: Filled1024
    label: Text100 = ""


class PasswordChange(Body):
    """POST /api/v1/me/password: ends every login and token of the account."""

    current_password: Filled1024
    new_password: Filled1024


class NewAccount(Body):
    """POST /api/v1/accounts. The new account's centre must lie below the caller's."""

    username: Filled64
    password: Filled1024
    role: Literal["admin", "district_operator", "town_operator", "village"]
    centre: Code | None = None
    display_name: Text100 = ""


class Director(Body):
    name: Text50 = ""
    phone: Text20 = ""


class CentrePatch(Body):
    """PATCH /api/v1/centers/{code}: contacts (anyone in scope), managed fields (above).

    In this model and the other patches a field left out is unchanged; null is refused
    (see `LEFT_OUT`)."""

    name: Text100 = LEFT_OUT
    class_: Text20 = Field(LEFT_OUT, alias="class")
    target_year: Annotated[StrictInt, Field(ge=2000, le=2100)] = LEFT_OUT
    active: StrictBool = LEFT_OUT
    director: Director = LEFT_OUT
    grid_workers: Annotated[list[dict[str, StrictStr]], Field(max_length=200)] | Text5000 = LEFT_OUT


# --- policy ----------------------------------------------------------------------------

Window = Annotated[list[Text5], Field(min_length=2, max_length=2)]


class PolicyPatch(Body):
    """PATCH /api/v1/policy[?district=]: admin only; each value checked by the domain."""

    district_mode: Literal["meeting", "inspection"] = LEFT_OUT
    district_meeting_minutes: Minutes = LEFT_OUT
    district_inspection_minutes: Minutes = LEFT_OUT
    town_patrol_minutes: Minutes = LEFT_OUT
    town_patrols_per_week: Minutes = LEFT_OUT
    screening_minutes: Minutes = LEFT_OUT
    screening_days: Annotated[list[Minutes], Field(max_length=31)] = LEFT_OUT
    supervision_district_every_months: Minutes = LEFT_OUT
    supervision_town_every_months: Minutes = LEFT_OUT
    supervision_minutes: Minutes = LEFT_OUT
    district_consoles: Minutes = LEFT_OUT
    town_consoles: Minutes = LEFT_OUT
    windows: Annotated[list[Window], Field(min_length=1, max_length=12)] = LEFT_OUT
    slot_step_minutes: Minutes = LEFT_OUT
    reserve_fraction: Annotated[float, Field(ge=0, le=1, strict=True)] = LEFT_OUT
    spot_checks_per_week: Minutes = LEFT_OUT
    spot_check_minutes: Minutes = LEFT_OUT
    answer_deadline_seconds: Minutes = LEFT_OUT
    min_verified_seconds: Minutes = LEFT_OUT
    reminder_minutes: Minutes = LEFT_OUT
    record_district_meetings: StrictBool = LEFT_OUT


class NewBlackout(Body):
    """POST /api/v1/blackouts: a weekday, market days by last digit, or a date range."""

    centre: Code
    kind: Literal["weekday", "market_days", "date_range"]
    weekday: Annotated[StrictInt, Field(ge=0, le=6)] | None = None
    day_digits: Annotated[list[Annotated[StrictInt, Field(ge=0, le=9)]],
                          Field(min_length=1, max_length=10)] | None = None  # fmt: skip
    start: Day | None = None
    end: Day | None = None
    note: Text200 = ""


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
    leave_token: Text200 | None = None


class Floor(Body):
    """Who every participant sees besides the operator; null: nobody."""

    centre: Code | None = None


class View(Body):
    """POST /api/v1/calls/{id}/view: the participants the operator's page shows in
    small tiles (its centres' codes, camera-<id> for cameras): their video comes at the
    base temporal layer only."""

    small: list[Annotated[StrictStr, Field(max_length=24)]] = Field(max_length=64)


class RecordingSwitch(Body):
    """POST /api/v1/calls/{id}/recording: record the call from now (true) or stop (false)."""

    on: StrictBool


class Snapshot(Body):
    centre: Code


class NewCamera(Body):
    """POST /api/v1/cameras: credentials apart, or inside the URL (not both)."""

    name: Filled100
    centre: Code
    url: Filled500
    username: Text200 | None = None
    password: Text200 | None = None


class CameraPatch(Body):
    """PATCH /api/v1/cameras/{id}: a new URL alone keeps the stored credentials."""

    name: Filled100 | None = None
    centre: Code | None = None
    url: Filled500 | None = None
    username: Text200 | None = None
    password: Text200 | None = None


class CallCamera(Body):
    """POST /api/v1/calls/{call_id}/cameras: show a camera in the call."""

    camera: Id


# --- issues and journals ---------------------------------------------------------------


class NewIssue(Body):
    """POST /api/v1/issues."""

    centre: Code
    category: Filled20
    severity: Filled20
    description: Text5000
    parties: Text2000 = ""
    deadline: Day | None = None
    call_id: Id | None = None
    subcategory: Text200 = ""
    assignee: Code | None = None


class IssueChanges(Body):
    category: Text20 = LEFT_OUT
    severity: Text20 = LEFT_OUT
    subcategory: Text200 = LEFT_OUT
    parties: Text2000 = LEFT_OUT
    description: Text5000 = LEFT_OUT
    deadline: Day = LEFT_OUT


class IssueAction(Body):
    """POST /api/v1/issues/{id}/{action}: `assignee` for assign, `changes` for edit."""

    note: Text2000 = ""
    assignee: Code | None = None
    changes: IssueChanges | None = None


class JournalNotes(Body):
    agenda: Text20k = ""
    notes: Text20k = ""


class Amendment(Body):
    reason: Text2000 = ""
    text: Filled20k


class Offer(Body):
    """POST /api/v1/calls/{id}/sdp, as documented; web/offers.py reads it itself (its
    size capped before it is parsed, the SDP checked by web/sdp_checks.py)."""

    type: Literal["offer"]
    sdp: StrictStr
