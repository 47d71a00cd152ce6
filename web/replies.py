"""What the API answers, for the operations whose answers the OpenAPI document spells
out (web/openapi.py); the others are documented as JSON objects. Each model mirrors an
`as_dict` of the domain: a test that the answers match (tests/test_openapi_fuzz.py)
keeps the two in step."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountOut(Reply):
    id: int
    username: str
    display_name: str
    role: str
    centre: str | None
    active: bool


class ScopeOut(Reply):
    username: str
    role: str
    centre: str | None


class MeOut(Reply):
    account: AccountOut
    scope: ScopeOut


class TokenOut(Reply):
    token: str
    token_type: str
    expires_at: str
    account: AccountOut


class DirectorOut(Reply):
    name: str
    phone: str


class CentreOut(Reply):
    model_config = ConfigDict(extra="allow")  # the one-centre answer adds path and counts

    code: str
    name: str
    level: str
    parent: str | None
    class_: str = Field(alias="class")
    target_year: int | None
    director: DirectorOut
    grid_workers: list[dict[str, str]]
    active: bool


class CentrePage(Reply):
    total: int
    limit: int
    offset: int
    centers: list[CentreOut]


class CentreList(Reply):
    centers: list[CentreOut]


class AccountList(Reply):
    accounts: list[AccountOut]


class PasswordChanged(Reply):
    changed: bool
    logged_out: bool


class Unlocked(Reply):
    unlocked: int
