"""Accounts, roles, passwords, API tokens, and the scope rule.

Scope rule (the one security invariant every feature relies on): an account sees and
acts on its own centre and the centres below it, nothing else. The admin has no centre
and sees everything. A `Scope` is built from the authenticated account only — never
from anything in a request body.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Field, Session, SQLModel, col, select

from . import centres, passwords
from .centres import Centre, Level
from .clock import utcnow
from .errors import Conflict, InvalidInput, NotAuthenticated, NotAuthorised, NotFound


class Role(StrEnum):
    admin = "admin"
    district_operator = "district_operator"
    town_operator = "town_operator"
    village = "village"

    @property
    def level(self) -> Level | None:
        """The level of centre an account of this role belongs to (None: no centre)."""
        return {
            Role.admin: None,
            Role.district_operator: Level.district,
            Role.town_operator: Level.town,
            Role.village: Level.village,
        }[self]


# What pages call each role (Chinese, English).
ROLE_LABELS: dict[Role, tuple[str, str]] = {
    Role.admin: ("系统管理员", "Administrator"),
    Role.district_operator: ("区综治中心调度员", "District operator"),
    Role.town_operator: ("镇（街道）综治中心调度员", "Town operator"),
    Role.village: ("村（社区）综治中心", "Village centre"),
}

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")
_hasher = PasswordHasher()


class Account(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    display_name: str = Field(default="", max_length=100)
    role: str = Field(max_length=20)
    centre_code: str | None = Field(default=None, foreign_key="centre.code", index=True)
    password_hash: str
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "centre": self.centre_code,
            "active": self.active,
        }


class ApiToken(SQLModel, table=True):
    """A bearer token. Only its sha256 is stored; the token itself is shown once."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    token_sha256: str = Field(unique=True, max_length=64)
    label: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None


def hash_password(password: str, field: str = "password") -> str:
    """The only way a password is hashed for storing: the policy is checked first."""
    passwords.check(password, field)
    return _hasher.hash(password)


def _check_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A hash to verify against when the username is unknown, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("no such account, constant time")


def authenticate(session: Session, username: str, password: str) -> Account:
    account = session.exec(select(Account).where(Account.username == username)).first()
    if account is None:
        _check_password(_DUMMY_HASH, password)
        raise NotAuthenticated("wrong username or password")
    if not _check_password(account.password_hash, password) or not account.active:
        raise NotAuthenticated("wrong username or password")
    return account


def create_account(
    session: Session,
    *,
    username: str,
    password: str | None = None,
    password_hash: str | None = None,
    role: str,
    centre_code: str | None,
    display_name: str = "",
) -> Account:
    """Validate and add an account. Pass `password_hash` only for bulk demo loads."""
    if not USERNAME_RE.match(username or ""):
        raise InvalidInput("username", "3–64 letters, digits or _ . @ -")
    try:
        role_ = Role(role)
    except ValueError:
        raise InvalidInput("role", f"unknown role {role!r}: use {', '.join(Role)}") from None
    if role_ is Role.admin:
        if centre_code:
            raise InvalidInput("centre", "an admin account belongs to no centre")
    else:
        if not centre_code:
            raise InvalidInput("centre", f"a {role_.value} account needs its centre's code")
        centre = centres.get(session, centres.parse_code(centre_code, "centre"))
        if centre.level != role_.level:
            raise InvalidInput(
                "centre",
                f"{centre_code} is a {centre.level} centre; role {role_.value} needs a "
                f"{role_.level} centre",
            )
    if session.exec(select(Account.id).where(Account.username == username)).first():
        raise Conflict(f"username {username!r} is taken")
    if password_hash is None:
        password_hash = hash_password(password or "")
    account = Account(
        username=username,
        display_name=display_name,
        role=role_.value,
        centre_code=centre_code or None,
        password_hash=password_hash,
    )
    session.add(account)
    session.flush()
    return account


def display_name(session: Session, username: str) -> str:
    """The account's display name; "" when it has none or is gone."""
    stmt = select(Account).where(Account.username == username)
    account = session.exec(stmt).first()
    return account.display_name if account is not None else ""


def issue_token(
    session: Session, account: Account, max_age: int, label: str = ""
) -> tuple[str, ApiToken]:
    token = "pd_" + secrets.token_urlsafe(32)
    row = ApiToken(
        account_id=account.id or 0,
        token_sha256=hashlib.sha256(token.encode()).hexdigest(),
        label=label[:100],
        expires_at=utcnow() + timedelta(seconds=max_age),
    )
    session.add(row)
    session.flush()
    return token, row


def account_for_token(session: Session, token: str) -> Account:
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = session.exec(select(ApiToken).where(ApiToken.token_sha256 == digest)).first()
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        raise NotAuthenticated("the bearer token is unknown, revoked or expired")
    account = session.get(Account, row.account_id)
    if account is None or not account.active:
        raise NotAuthenticated("the bearer token's account is disabled")
    return account


def revoke_token(session: Session, token: str) -> None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = session.exec(select(ApiToken).where(ApiToken.token_sha256 == digest)).first()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)


def active_account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None or not account.active:
        raise NotAuthenticated("the account is gone or disabled; log in again")
    return account


# --- scope ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What one account may see: the subtree at `root_path`, or everything (admin)."""

    account_id: int
    username: str
    role: Role
    centre_code: str | None
    root_path: str | None  # None: the whole database (admin only)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    def covers(self, centre: Centre) -> bool:
        return self.root_path is None or centres.in_subtree(self.root_path, centre.path)

    def require(self, centre: Centre) -> Centre:
        if not self.covers(centre):
            raise NotAuthorised(f"centre {centre.code} is outside your scope")
        return centre

    def may_manage(self, centre: Centre) -> bool:
        """Managed fields (name, class, target year, active) of centres strictly below."""
        if self.is_admin:
            return True
        if self.role is Role.village or self.root_path is None:
            return False
        return centre.path != self.root_path and centres.in_subtree(self.root_path, centre.path)

    def as_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "role": self.role.value,
            "centre": self.centre_code,
        }


def scope_for(session: Session, account: Account) -> Scope:
    role = Role(account.role)
    root_path = None
    if role is not Role.admin:
        if account.centre_code is None:
            raise NotAuthorised("this account has no centre")
        root_path = centres.get(session, account.centre_code).path
    return Scope(account.id or 0, account.username, role, account.centre_code, root_path)


def get_centre_in_scope(session: Session, scope: Scope, code: str) -> Centre:
    """The centre by code if the scope covers it. Unknown and out-of-scope both say so."""
    code = centres.parse_code(code)
    centre = session.get(Centre, code)
    if centre is None:
        raise NotFound("centre", code)
    return scope.require(centre)


def update_centre(session: Session, scope: Scope, code: str, changes: dict[str, Any]) -> Centre:
    centre = get_centre_in_scope(session, scope, code)
    managed = sorted(set(changes) & centres.MANAGED_FIELDS)
    if managed and not scope.may_manage(centre):
        raise NotAuthorised(
            f"{managed[0]} of centre {code} can be changed only by a centre above it"
        )
    return centres.update(session, centre, changes)


def accounts_in_scope(session: Session, scope: Scope) -> list[Account]:
    stmt = select(Account).order_by(Account.username)
    if scope.root_path is not None:
        low, high = centres.below_range(scope.root_path)
        stmt = (
            select(Account)
            .join(Centre, col(Account.centre_code) == col(Centre.code))
            .where(Centre.path >= low, Centre.path < high)
            .order_by(Centre.path, Account.username)
        )
    return list(session.exec(stmt))


def require_admin(scope: Scope) -> None:
    if not scope.is_admin:
        raise NotAuthorised("only an admin may do this")
