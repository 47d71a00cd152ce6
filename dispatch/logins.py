"""Page logins that the server can end, and password changes that end them all.

Invariants:
- A cookie speaks for an account only while its login row here is open: the cookie
  carries the login's random id, the database keeps only its sha256. Logging out
  closes the row, so a copy of the old cookie is worth nothing afterwards.
- Changing an account's password closes every open login of the account and revokes
  every bearer token it has, in the same transaction as the new hash.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlmodel import Field, Session, SQLModel, col, select, update

from . import accounts
from .accounts import Account, ApiToken
from .clock import utcnow
from .errors import InvalidInput, NotAuthenticated


class Login(SQLModel, table=True):
    """One page login (a session cookie); `ended_at` set: logged out or ended."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    sid_sha256: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    ended_why: str = Field(default="", max_length=40)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start(session: Session, account_id: int, max_age: int) -> str:
    """Open a login for the account; the id to put in its cookie (shown only here).

    The account's rows that can no longer admit anyone — ended, or older than a cookie
    lives (`max_age`, the session lifetime) — go first, so the table stays as small as
    the logins in use."""
    cutoff = utcnow() - timedelta(seconds=max_age)
    session.exec(
        delete(Login).where(
            col(Login.account_id) == account_id,
            or_(col(Login.ended_at).is_not(None), col(Login.created_at) < cutoff),
        )
    )
    sid = secrets.token_urlsafe(32)
    session.add(Login(account_id=account_id, sid_sha256=_digest(sid)))
    session.flush()
    return sid


def account_for(session: Session, account_id: int, sid: str) -> Account:
    """The account a cookie speaks for, if its login is still open."""
    row = session.exec(select(Login).where(Login.sid_sha256 == _digest(sid))).first()
    if row is None or row.ended_at is not None or row.account_id != account_id:
        raise NotAuthenticated("this login has ended; log in again")
    return accounts.active_account(session, account_id)


def end(session: Session, sid: str, why: str = "logout") -> None:
    row = session.exec(select(Login).where(Login.sid_sha256 == _digest(sid))).first()
    if row is not None and row.ended_at is None:
        row.ended_at, row.ended_why = utcnow(), why
        session.add(row)


def end_all(session: Session, account_id: int, why: str) -> None:
    """Close every open login and revoke every live token of the account."""
    now = utcnow()
    session.exec(
        update(Login)
        .where(col(Login.account_id) == account_id, col(Login.ended_at).is_(None))
        .values(ended_at=now, ended_why=why)
    )
    session.exec(
        update(ApiToken)
        .where(col(ApiToken.account_id) == account_id, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )


def change_password(session: Session, account_id: int, current: str, new: str) -> Account:
    """The account's own change: the current password must be right; then every login
    and token of the account ends (the caller logs in again with the new one)."""
    account = accounts.active_account(session, account_id)
    try:
        accounts.authenticate(session, account.username, current)
    except NotAuthenticated:
        raise InvalidInput("current_password", "is not the account's password") from None
    return set_password(session, account, new, why="password changed", field="new_password")


def set_password(
    session: Session, account: Account, new: str, *, why: str, field: str = "password"
) -> Account:
    """Store a new password (the policy checked by `accounts.hash_password`) and end
    every login and token of the account."""
    account.password_hash = accounts.hash_password(new, field)
    session.add(account)
    session.flush()
    end_all(session, account.id or 0, why)
    return account
